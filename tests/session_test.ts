// The session engine on the local transport: same code path as ssh (wrapper,
// start line, timeouts, group kill), no server needed.
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import { configure, type LogRecord, reset } from "npm:@logtape/logtape@^2";
import {
  ConfigurationError,
  FiwiError,
  type Line,
  SshNode,
  SshSession,
  TimeoutError,
} from "../mod.ts";
import { countCarrying, marker } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

const local = (opts: { silent?: boolean } = {}) =>
  new SshNode({ name: "here", host: "localhost", transport: "local", ...opts });

Deno.test("rexec() completes after exit and both EOFs, with streams kept apart", async () => {
  const lines: Line[] = [];
  const r = await local().rexec(
    "echo out1; echo err1 >&2; echo out2; printf 'tail'",
    { onLine: (l) => lines.push(l) },
  );
  assertEquals(r.code, 0);
  assertEquals(r.success, true);
  assertEquals(r.stdout, "out1\nout2\ntail");
  assertEquals(r.stderr, "err1\n");
  assertEquals(r.started, true);
  assertEquals(
    lines.filter((l) => l.stream === "stdout").map((l) => [l.text, l.partial]),
    [["out1", false], ["out2", false], ["tail", true]],
  );
  assertEquals(lines.filter((l) => l.stream === "stderr").map((l) => l.text), [
    "err1",
  ]);
  assert(lines.every((l) => l.node === "here" && l.time > 0));
});

Deno.test("rexec() strips the start line and reports the shell's pid", async () => {
  const r = await local().rexec("echo $$");
  assertEquals(r.remotePid, Number(r.stdout.trim()));
  assertEquals(r.stderr, "");
});

Deno.test("rexec() resolves a non-zero exit with success false", async () => {
  const r = await local().rexec("exit 7");
  assertEquals([r.code, r.success, r.error, r.timedOut], [
    7,
    false,
    null,
    null,
  ]);
});

Deno.test("rexec() with eof strict drops the trailing fragment", async () => {
  const r = await local().rexec("printf 'a\\nb'", { eof: "strict" });
  assertEquals(r.stdout, "a\n");
});

Deno.test("rexec() writes stdin then closes it; without stdin nothing waits", async () => {
  const fed = await local().rexec("cat; echo done", { stdin: "l1\nl2\n" });
  assertEquals(fed.stdout, "l1\nl2\ndone\n");
  const closed = await local().rexec("cat; echo eof", { cmdTimeout: 5000 });
  assertEquals([closed.stdout, closed.timedOut], ["eof\n", null]);
});

Deno.test("rexec() bounds kept output by maxOutput while every line streams", async () => {
  let count = 0;
  const r = await local().rexec("seq 1 10000", {
    maxOutput: 1000,
    onLine: () => count++,
  });
  assertEquals(count, 10000);
  assertEquals(r.truncated, true);
  assert(r.stdout.length <= 1000 && r.stdout.startsWith("1\n2\n3\n"));
  const small = await local().rexec("seq 1 3", { maxOutput: 1000 });
  assertEquals(small.truncated, false);
});

Deno.test("rexec() counts maxOutput in UTF-8 bytes and keeps whole lines", async () => {
  const line = "é€🚀"; // 2 + 3 + 4 bytes, then "\n"
  const cmd = `for i in 1 2 3 4 5; do echo '${line}'; done`;
  const exact = await local().rexec(cmd, { maxOutput: 30 });
  assertEquals([exact.stdout, exact.truncated], [`${line}\n`.repeat(3), true]);
  assertEquals(new TextEncoder().encode(exact.stdout).length, 30);
  const short = await local().rexec(cmd, { maxOutput: 29 });
  assertEquals(short.stdout, `${line}\n`.repeat(2));
  const all = await local().rexec(cmd, { maxOutput: 50 });
  assertEquals([all.stdout.length, all.truncated], [25, false]);
});

Deno.test("rexec() kills the process group on each timeout kind and on abort", async (t) => {
  const cases: [
    string,
    () => Parameters<SshNode["rexec"]>[1],
    "command" | "io" | null,
  ][] = [
    ["command timeout", () => ({ cmdTimeout: 300 }), "command"],
    ["io timeout", () => ({ ioTimeout: 300 }), "io"],
    ["abort", () => ({ signal: AbortSignal.timeout(300) }), null],
  ];
  for (const [name, opts, kind] of cases) {
    await t.step(name, async () => {
      const m = marker();
      const r = await local().rexec(
        `echo before; sh -c 'sleep ${m}; true' & sleep ${m}; wait`,
        opts(),
      );
      assertEquals(r.timedOut, kind);
      assertEquals(r.aborted, kind === null);
      assertEquals(r.success, false);
      assertEquals(r.stdout, "before\n");
      if (kind) {
        assert(r.error instanceof TimeoutError);
        assertEquals((r.error as TimeoutError).kind, kind);
      }
      // The wrapper, both shells and both sleeps, gone within the
      // lifeline's bound.
      assertEquals(await settlesToZero(() => countCarrying(m)), 0);
    });
  }
});

Deno.test("rexec() io timeout is reset by output", async () => {
  const r = await local().rexec(
    "for i in 1 2 3 4 5; do echo $i; sleep 0.1; done",
    { ioTimeout: 400 },
  );
  assertEquals([r.timedOut, r.stdout], [null, "1\n2\n3\n4\n5\n"]);
});

Deno.test("rexec() with an already aborted signal runs nothing", async () => {
  const r = await local().rexec("echo ran", { signal: AbortSignal.abort() });
  assertEquals([r.aborted, r.stdout, r.success], [true, "", false]);
});

Deno.test("rexec() rejects bad input with ConfigurationError naming the value", async (t) => {
  const node = local();
  for (const cmd of ["", "   ", "a\0b"]) {
    await t.step(`command ${JSON.stringify(cmd)}`, async () => {
      const err = await assertRejects(
        () => node.rexec(cmd),
        ConfigurationError,
      );
      assertMatch(err.message, /^Invalid command/);
    });
  }
  await t.step("negative timeout", async () => {
    const err = await assertRejects(
      () => node.rexec("true", { cmdTimeout: -1 }),
      ConfigurationError,
    );
    assertMatch(err.message, /cmdTimeout -1/);
  });
  await t.step("option-like host", async () => {
    const bad = new SshNode({ name: "x", host: "-oProxyCommand=id" });
    const err = await assertRejects(
      () => bad.rexec("true"),
      ConfigurationError,
    );
    assertMatch(err.message, /"-oProxyCommand=id"/);
  });
  await t.step("missing identity file", async () => {
    const bad = new SshNode({
      name: "x",
      host: "127.0.0.1",
      identityFile: "/nonexistent/id_fiwi",
    });
    const err = await assertRejects(
      () => bad.rexec("true"),
      ConfigurationError,
    );
    assertMatch(err.message, /"\/nonexistent\/id_fiwi"/);
  });
  await t.step("missing ush binary", async () => {
    const bad = new SshNode({
      name: "x",
      host: "127.0.0.1",
      transport: "ush",
      ushPath: "/nonexistent/ush",
    });
    const err = await assertRejects(
      () => bad.rexec("true"),
      ConfigurationError,
    );
    assertMatch(err.message, /"\/nonexistent\/ush"/);
  });
});

Deno.test("SshSession runs one command at a time and refuses work once closed", async () => {
  const session = new SshSession(local());
  const first = session.postCmd("sleep 0.2; echo one");
  await assertRejects(
    () => session.postCmd("true"),
    FiwiError,
    "already running",
  );
  assertEquals((await first).stdout, "one\n");
  assertEquals((await session.postCmd("echo two")).stdout, "two\n");
  await session.close();
  await assertRejects(() => session.postCmd("true"), FiwiError, "closed");
});

Deno.test("SshSession.close() stops a running command and resolves it as aborted", async () => {
  const session = new SshSession(local());
  const lines: string[] = [];
  let sawFirst!: () => void;
  const first = new Promise<void>((r) => sawFirst = r);
  const m = marker();
  const run = session.postCmd(`echo go; sleep ${m}`, {
    onLine: (l) => {
      lines.push(l.text);
      sawFirst();
    },
  });
  await first;
  await session.close();
  const r = await run;
  assertEquals([r.aborted, lines], [true, ["go"]]);
  assertEquals(await settlesToZero(() => countCarrying(m)), 0);
});

Deno.test("SshNode.getInstances() holds nodes weakly", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    throw new Error("run with --v8-flags=--expose-gc (deno task test does)");
  }
  const kept = local();
  (() => {
    new SshNode({ name: "dropped-node", host: "x", transport: "local" });
  })();
  assert(SshNode.getInstances().some((n) => n.name === "dropped-node"));
  // WeakRef targets live until the current job ends: yield, then collect.
  for (
    let i = 0;
    i < 5 && SshNode.getInstances().some((n) => n.name === "dropped-node");
    i++
  ) {
    await new Promise((r) => setTimeout(r, 0));
    gc();
  }
  const names = SshNode.getInstances().map((n) => n.name);
  assertEquals(names.includes("dropped-node"), false);
  assert(SshNode.getInstances().includes(kept));
});

Deno.test("lines go to the logger unless the node is silent", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (r: LogRecord) => records.push(r) },
    loggers: [
      { category: ["fiwi", "session"], sinks: ["mem"], lowestLevel: "info" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    reset: true,
  });
  try {
    await local().rexec("echo loud-line");
    await local({ silent: true }).rexec("echo quiet-line");
  } finally {
    await reset();
  }
  const texts = records.map((r) => r.properties.text).filter((t) =>
    t !== undefined
  );
  assertEquals(texts, ["loud-line"]);
  const runs = records.filter((r) => r.properties.durationMs !== undefined);
  assertEquals(
    runs.map((r) => [r.properties.node, r.properties.cmd, r.properties.code]),
    [
      ["here", "echo loud-line", 0],
      ["here", "echo quiet-line", 0],
    ],
  );
});
