// The units a run is made of, each tested without ssh: the watchdog on a
// manual clock, the start-line parser, the output router, result assembly,
// and the wrapper's stdin modes on a local shell.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  ConnectionError,
  type Line,
  SshNode,
  TimeoutError,
} from "../mod.ts";
import {
  CONFIRM_MS,
  type TimeoutKind,
  Watchdog,
} from "../src/process/watchdog.ts";
import {
  LIFELINE_NAME,
  parseStartLine,
  wrapCommand,
} from "../src/transport/wrapper.ts";
import { runRaw } from "../src/process/session.ts";
import { OutputRouter } from "../src/process/_output_router.ts";
import { buildResult, type RunFacts } from "../src/process/result.ts";
import { ManualClock } from "./_manual_clock.ts";

/** Real turns of the event loop: the confirmation waits a few of them. */
async function turns(): Promise<void> {
  for (let i = 0; i < 6; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("Watchdog: connect fires at its limit, once confirmed, unless the command began", async () => {
  const clock = new ManualClock(0);
  const fired: TimeoutKind[] = [];
  const dog = new Watchdog({ connect: 1000 }, (k) => fired.push(k), clock);
  await clock.advance(999);
  assertEquals(fired, []);
  await clock.advance(1);
  await turns();
  assertEquals(fired, [], "not before the confirmation wait");
  await clock.advance(CONFIRM_MS);
  await turns();
  assertEquals(fired, ["connect"]);
  dog.dispose();

  // The start line read during the confirmation wait wins over the timer.
  const saved: TimeoutKind[] = [];
  const slow = new Watchdog({ connect: 1000 }, (k) => saved.push(k), clock);
  await clock.advance(1000);
  slow.started();
  await clock.advance(CONFIRM_MS);
  await turns();
  assertEquals(saved, []);
  slow.dispose();

  const late: TimeoutKind[] = [];
  const ok = new Watchdog({ connect: 1000 }, (k) => late.push(k), clock);
  await clock.advance(500);
  ok.started();
  await clock.advance(5000);
  assertEquals(late, []);
  ok.dispose();
});

Deno.test("Watchdog: io counts silence from the last bytes, command counts wall clock", async () => {
  const clock = new ManualClock(0);
  const fired: [TimeoutKind, number][] = [];
  const dog = new Watchdog(
    { io: 100, command: 1000 },
    (k) => fired.push([k, clock.now()]),
    clock,
  );
  dog.started();
  for (let t = 0; t < 5; t++) {
    await clock.advance(60);
    dog.activity(); // bytes every 60 ms: never 100 ms of silence
  }
  assertEquals(fired, []);
  await clock.advance(100);
  await turns();
  // Bytes that were waiting to be read when the limit expired cancel it.
  dog.activity();
  await clock.advance(CONFIRM_MS);
  await turns();
  assertEquals(fired, []);
  await clock.advance(100);
  await turns();
  await clock.advance(CONFIRM_MS);
  await turns();
  assertEquals(fired, [["io", 400 + 2 * CONFIRM_MS + 100]]);
  dog.dispose();

  const wall: TimeoutKind[] = [];
  const busy = new Watchdog(
    { io: 100, command: 1000 },
    (k) => wall.push(k),
    clock,
  );
  busy.started();
  for (let t = 0; t < 20; t++) {
    await clock.advance(60);
    busy.activity();
  }
  assertEquals(wall, ["command"]);
  busy.dispose();
});

Deno.test("Watchdog: dispose() stops every timer and nothing fires after it", async () => {
  const clock = new ManualClock(0);
  const fired: TimeoutKind[] = [];
  const dog = new Watchdog(
    { connect: 10, io: 10, command: 10 },
    (k) => fired.push(k),
    clock,
  );
  dog.dispose();
  await clock.advance(100);
  assertEquals([fired, clock.sleeping], [[], 0]);
});

Deno.test("parseStartLine() accepts only the exact start line", () => {
  const table: [string, number | null][] = [
    ["__FIWI_START__ 1", 1],
    ["__FIWI_START__ 4194304", 4194304],
    ["__FIWI_START__ 0", null],
    ["__FIWI_START__ -1", null],
    ["__FIWI_START__ 12x", null],
    ["__FIWI_START__  12", null],
    ["__FIWI_START__", null],
    ["x __FIWI_START__ 12", null],
    ["", null],
  ];
  for (const [text, pid] of table) {
    assertEquals(parseStartLine(text), pid, text);
  }
});

Deno.test("OutputRouter: the start line and ssh's noise before it never reach output", () => {
  const lines: Line[] = [];
  let started = 0;
  const router = new OutputRouter({
    node: "n1",
    maxOutput: 8,
    logLines: false,
    onLine: (l) => lines.push(l),
    onStart: (pid) => started = pid,
  });
  const err = router.sink("stderr");
  const out = router.sink("stdout");
  err("ControlSocket /s already exists, disabling multiplexing", false);
  err("__FIWI_START__ 77", false);
  err("ControlSocket /s already exists, disabling multiplexing", false);
  out("héllo", false);
  out("tail", true);
  assertEquals([started, router.remotePid, router.started], [77, 77, true]);
  // After the start, the same text is the command's own stderr.
  assertEquals(lines.map((l) => [l.stream, l.text, l.partial]), [
    [
      "stderr",
      "ControlSocket /s already exists, disabling multiplexing",
      false,
    ],
    ["stdout", "héllo", false],
    ["stdout", "tail", true],
  ]);
  // 8 bytes kept: "héllo\n" is 7 bytes in UTF-8; "tail" does not fit.
  assertEquals([router.stdout.text(), router.stdout.truncated], [
    "héllo\n",
    true,
  ]);
});

function facts(over: Partial<RunFacts>): RunFacts {
  return {
    node: "n1",
    cmd: "x",
    argv: ["ssh"],
    status: { code: 0, signal: null, success: true },
    remotePid: 10,
    timedOut: null,
    aborted: false,
    stdout: "",
    stderr: "",
    truncated: false,
    startedAt: new Date(0),
    durationMs: 1,
    ...over,
  };
}

Deno.test("buildResult(): 255 before the start line is the connection's, after it the command's", () => {
  const lost = buildResult(facts({
    status: { code: 255, signal: null, success: false },
    remotePid: null,
    stderr: "ssh: connect to host 10.0.0.9 port 22: Connection refused\n",
  }));
  assertInstanceOf(lost.error, ConnectionError);
  assertEquals([lost.started, lost.success, lost.code], [false, false, 255]);
  const own = buildResult(facts({
    status: { code: 255, signal: null, success: false },
  }));
  assertEquals([own.error, own.started, own.success, own.code], [
    null,
    true,
    false,
    255,
  ]);
  const slow = buildResult(facts({
    timedOut: "io",
    limit: 50,
    status: { code: 0, signal: "SIGTERM", success: false },
  }));
  assertInstanceOf(slow.error, TimeoutError);
  assertEquals([slow.code, slow.signal, slow.success], [
    null,
    "SIGTERM",
    false,
  ]);
  const stopped = buildResult(facts({ aborted: true, remotePid: null }));
  assertEquals([stopped.error, stopped.success], [null, false]);
});

Deno.test("wrapCommand(): exit codes 0 to 255 come back exactly, and stdin is EOF at once", async () => {
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  const codes = await Promise.all(
    [0, 1, 2, 127, 128, 254, 255].map(async (c) =>
      (await node.rexec(`exit ${c}`)).code
    ),
  );
  assertEquals(codes, [0, 1, 2, 127, 128, 254, 255]);
  const r = await node.rexec("cat; echo eof", { cmdTimeout: 5000 });
  assertEquals([r.stdout, r.timedOut], ["eof\n", null]);
});

Deno.test("wrapCommand(): a binary payload arrives whole, then EOF, and the lifeline stays", async () => {
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  const payload = new Uint8Array(70_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 256;
  const r = await node.rexec("od -An -v -tu1 | wc -w; echo done", {
    stdin: payload,
    cmdTimeout: 10_000,
  });
  assertEquals([r.stdout, r.success], [`70000\ndone\n`, true]);
  const text = await node.rexec("cat", { stdin: "a\nb\nc" });
  assertEquals(text.stdout, "a\nb\nc");
  assert(wrapCommand("x", { payloadBytes: 3 }).includes("head -c 3"));
});

Deno.test("wrapCommand(): a direct stream is read by the command itself, to the EOF fiwi sends", async () => {
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  const bytes = new Uint8Array(300_000).fill(9);
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 65_536) {
          controller.enqueue(bytes.subarray(i, i + 65_536));
        }
        controller.close();
      },
    });
  // Only `size` bytes go, then EOF: `cat` ends by itself.
  const r = await runRaw(node, "cat | wc -c; echo done", {
    stdin: { size: 200_000, stream: stream(), direct: true },
    cmdTimeout: 10_000,
  });
  assertEquals([r.stdout.replace(/ +/g, ""), r.success], [
    "200000\ndone\n",
    true,
  ]);
  const wrapped = wrapCommand("x", "direct");
  assert(!wrapped.includes("head") && !wrapped.includes(LIFELINE_NAME));
});

Deno.test("rexec() refuses bad run options before anything runs", async () => {
  const node = new SshNode({ name: "here", host: "h", transport: "local" });
  for (
    const [opts, re] of [
      [{ eof: "bogus" }, /Invalid eof "bogus"/],
      [{ maxOutput: -1 }, /Invalid maxOutput -1: give a whole number of bytes/],
      [{ cmdTimeout: NaN }, /Invalid cmdTimeout NaN/],
      [{ ioTimeout: 2 ** 31 }, /Invalid ioTimeout 2147483648/],
      [{ stdin: 5 }, /Invalid stdin 5/],
    ] as const
  ) {
    const e = await assertRejects(
      // deno-lint-ignore no-explicit-any
      () => node.rexec("true", opts as any),
      ConfigurationError,
    );
    assert(re.test(e.message), e.message);
  }
});
