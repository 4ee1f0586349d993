// Retries: the policy (pure), the retry loop with scripted results (pure),
// and rexec against the loopback sshd stopped and started again.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import { configure, type LogRecord, reset } from "npm:@logtape/logtape@^2";
import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  type RunResult,
  TimeoutError,
} from "../mod.ts";
import { isRetryable, retryRun } from "../src/connection/retry.ts";
import { resolveRetry, retryDelay } from "../src/process/backoff.ts";
import { skipReasonFor, startLoopbackRig } from "./_loopback.ts";
import { fakeResult } from "./_fake_result.ts";

function result(over: Partial<RunResult> = {}): RunResult {
  return fakeResult({ cmd: "true", argv: ["ssh"], ...over });
}

const refused = () =>
  result({
    code: 255,
    success: false,
    started: false,
    remotePid: null,
    killed: 0,
    notice: null,
    error: new ConnectionError('Cannot reach node "n": Connection refused'),
  });

Deno.test("resolveRetry() defaults to 3 attempts, 1 s then 2 s apart, 4 s cap", () => {
  const policy = resolveRetry(undefined);
  assertEquals(policy, {
    attempts: 3,
    delays: [1000, 2000],
    retryStarted: false,
  });
  const more = resolveRetry({ attempts: 5 });
  assertEquals([1, 2, 3, 4].map((k) => retryDelay(more, k)), [
    1000,
    2000,
    4000,
    4000,
  ]);
  assertEquals(resolveRetry(false).attempts, 1);
  const scaled = resolveRetry({ attempts: 4, baseDelay: 10, maxDelay: 25 });
  assertEquals(scaled.delays, [10, 20, 25]);
});

Deno.test("resolveRetry() takes explicit delays and repeats the last one", () => {
  const policy = resolveRetry({ delays: [5, 7] });
  assertEquals(policy.attempts, 3);
  const longer = resolveRetry({ delays: [5, 7], attempts: 5 });
  assertEquals([1, 2, 3, 4].map((k) => retryDelay(longer, k)), [5, 7, 7, 7]);
});

Deno.test("resolveRetry() rejects bad options with a ConfigurationError", () => {
  const bad: unknown[] = [
    { attempts: 0 },
    { attempts: 1.5 },
    { attempts: 1000 },
    { baseDelay: -1 },
    { maxDelay: Number.NaN },
    { delays: [] },
    { delays: [10, -5] },
    { retryStarted: "yes" },
    "often",
  ];
  for (const options of bad) {
    const e = assertThrows(
      () => resolveRetry(options as Parameters<typeof resolveRetry>[0]),
      ConfigurationError,
    );
    assert(/^Invalid retry /.test(e.message), e.message);
  }
});

Deno.test("isRetryable() allows only runs that never started on a connection error", () => {
  const policy = resolveRetry(undefined);
  const lost = result({ code: 255, success: false });
  const cases: [string, RunResult, boolean][] = [
    ["refused", refused(), true],
    [
      "auth",
      result({
        started: false,
        success: false,
        code: 255,
        error: new AuthenticationError("x"),
      }),
      false,
    ],
    [
      "connect timeout",
      result({
        started: false,
        success: false,
        timedOut: "connect",
        error: new TimeoutError("connect", "x"),
      }),
      false,
    ],
    [
      "aborted",
      result({ started: false, success: false, aborted: true }),
      false,
    ],
    ["started, exit 1", result({ code: 1, success: false }), false],
    ["started, lost connection", lost, false],
  ];
  for (const [what, r, want] of cases) {
    assertEquals(isRetryable(r, policy), want, what);
  }
  assertEquals(isRetryable(lost, resolveRetry({ retryStarted: true })), true);
});

Deno.test("retryRun() counts attempts and stops at the first success", async () => {
  const script = [refused(), refused(), result({ stdout: "ok\n" })];
  let calls = 0;
  const r = await retryRun(
    () => Promise.resolve(script[calls++]),
    resolveRetry({ attempts: 5, delays: [1] }),
  );
  assertEquals([r.success, r.attempts, r.stdout, calls], [true, 3, "ok\n", 3]);
});

Deno.test("retryRun() gives up after the last attempt with the last error", async () => {
  let calls = 0;
  const r = await retryRun(
    () => {
      calls++;
      return Promise.resolve(refused());
    },
    resolveRetry({ attempts: 3, delays: [1] }),
  );
  assertEquals([r.success, r.attempts, calls], [false, 3, 3]);
  assertInstanceOf(r.error, ConnectionError);
});

Deno.test("retryRun() never re-runs a command that started", async () => {
  let calls = 0;
  const r = await retryRun(
    () => {
      calls++;
      return Promise.resolve(result({ code: 255, success: false }));
    },
    resolveRetry({ attempts: 3, delays: [1] }),
  );
  assertEquals([r.code, r.attempts, calls], [255, 1, 1]);
});

Deno.test("retryRun() returns at once, aborted, when the signal fires during a wait", async () => {
  const ctl = new AbortController();
  let calls = 0;
  const t0 = performance.now();
  const r = await retryRun(
    () => {
      calls++;
      queueMicrotask(() => ctl.abort());
      return Promise.resolve(refused());
    },
    resolveRetry({ attempts: 3, delays: [60_000] }),
    { signal: ctl.signal },
  );
  assertEquals([r.aborted, r.success, r.attempts, calls], [true, false, 1, 1]);
  assert(performance.now() - t0 < 5000);
});

Deno.test("retryRun() retries a failure its onFailure hook repaired", async () => {
  const timeout = result({
    started: false,
    success: false,
    timedOut: "connect",
    error: new TimeoutError("connect", "x"),
  });
  const script = [timeout, result()];
  let calls = 0;
  const seen: number[] = [];
  const r = await retryRun(
    () => Promise.resolve(script[calls++]),
    resolveRetry({ delays: [1] }),
    {
      onFailure: (_r, n) => {
        seen.push(n);
        return Promise.resolve(true);
      },
    },
  );
  assertEquals([r.success, r.attempts, seen], [true, 2, [1]]);
});

// It stops and restarts sshd under running retries.
const ignore = skipReasonFor("retry tests", "sshd-control") !== null;

Deno.test(
  { name: "rexec() retries against a real sshd", ignore },
  async (t) => {
    await using rig = await startLoopbackRig();
    const records: LogRecord[] = [];
    let onRecord: (r: LogRecord) => void = () => {};
    await configure({
      sinks: {
        test: (r) => {
          records.push(r);
          onRecord(r);
        },
      },
      loggers: [
        { category: ["fiwi"], lowestLevel: "info", sinks: ["test"] },
        { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
      ],
    });
    try {
      await t.step(
        "sshd down, then up again during the retry window: a later attempt succeeds",
        async () => {
          await using node = rig.node({ silent: true });
          await rig.stop();
          let restarting: Promise<void> | null = null;
          // The first retry log line is the moment the first attempt failed.
          onRecord = (r) => {
            if (r.category.join(".") === "fiwi.retry") {
              restarting ??= rig.start();
            }
          };
          records.length = 0;
          const r = await node.rexec("echo back", {
            retry: { attempts: 6, delays: [400] },
          });
          onRecord = () => {};
          await restarting;
          assertEquals([r.success, r.stdout], [true, "back\n"]);
          const retries = records.filter((x) =>
            x.category.join(".") === "fiwi.retry"
          );
          const ran = records.filter((x) =>
            x.category.join(".") === "fiwi.session" &&
            x.properties.cmd === "echo back"
          );
          assert(r.attempts! >= 2, `attempts ${r.attempts}`);
          assertEquals(retries.length, r.attempts! - 1);
          assertEquals(ran.length, r.attempts);
          assertEquals(ran.map((x) => x.properties.code), [
            ...Array(r.attempts! - 1).fill(255),
            0,
          ]);
        },
      );

      await t.step(
        "every execution is logged with time, node, command, exit code and duration",
        async () => {
          await using node = rig.node({ silent: true });
          records.length = 0;
          const before = Date.now();
          const r = await node.rexec("exit 3", { retry: false });
          const ran = records.filter((x) =>
            x.category.join(".") === "fiwi.session" &&
            x.properties.cmd === "exit 3"
          );
          assertEquals(ran.length, 1);
          const { properties, timestamp, level } = ran[0];
          assertEquals([level, properties.node, properties.code], [
            "info",
            "node0",
            3,
          ]);
          assertEquals(typeof properties.durationMs, "number");
          assert(timestamp >= before && timestamp <= Date.now());
          assertEquals(r.attempts, 1);
        },
      );

      await t.step(
        "a refused port fails after the configured attempts",
        async () => {
          const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
          const port = (probe.addr as Deno.NetAddr).port;
          probe.close();
          await using node = rig.node({
            port,
            controlMaster: false,
            silent: true,
          });
          const r = await node.rexec("true", {
            retry: { attempts: 3, delays: [20] },
          });
          assertEquals([r.started, r.attempts], [false, 3]);
          assertInstanceOf(r.error, ConnectionError);
          const once = await node.rexec("true", { retry: false });
          assertEquals(once.attempts, 1);
        },
      );

      await t.step(
        "a started command whose connection dropped is not run again",
        async () => {
          await using node = rig.node({ silent: true });
          const marker = `${rig.dir}/ran_once`;
          await Deno.writeTextFile(marker, "");
          await Deno.chmod(marker, 0o666);
          let stopping: Promise<void> | null = null;
          const r = await node.rexec(
            `echo x >> ${marker}; echo up; sleep 3521`,
            {
              retry: { attempts: 3, delays: [20] },
              onLine: () => {
                stopping ??= rig.stop();
              },
            },
          );
          await stopping;
          await rig.start();
          assertEquals([r.started, r.code, r.attempts], [true, 255, 1]);
          assertEquals(await Deno.readTextFile(marker), "x\n");
        },
      );

      await t.step(
        "retryStarted: true runs it again on a new connection",
        async () => {
          await using node = rig.node({ silent: true });
          const marker = `${rig.dir}/ran_twice`;
          await Deno.writeTextFile(marker, "");
          await Deno.chmod(marker, 0o666);
          let stopping: Promise<void> | null = null;
          let restarting: Promise<void> | null = null;
          const cmd =
            `echo x >> ${marker}; if [ "$(wc -l < ${marker})" -lt 2 ]; then echo up; sleep 3522; fi; echo done`;
          onRecord = (rec) => {
            if (rec.category.join(".") === "fiwi.retry") {
              restarting ??= stopping!.then(() => rig.start());
            }
          };
          const r = await node.rexec(cmd, {
            retry: { attempts: 4, delays: [300], retryStarted: true },
            onLine: (l) => {
              if (l.text === "up") stopping ??= rig.stop();
            },
          });
          onRecord = () => {};
          await restarting;
          assertEquals([r.success, r.stdout], [true, "done\n"]);
          assert(r.attempts! >= 2, `attempts ${r.attempts}`);
          // Attempts refused while sshd was down never reached the command.
          assertEquals(await Deno.readTextFile(marker), "x\nx\n");
        },
      );
    } finally {
      onRecord = () => {};
      await reset();
    }
  },
);

Deno.test("rexec() rejects bad retry options before anything runs", async () => {
  const { SshNode } = await import("../mod.ts");
  const node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  await assertRejects(
    () => node.rexec("true", { retry: { attempts: -1 } }),
    ConfigurationError,
    "Invalid retry attempts",
  );
});

Deno.test({
  name:
    "rexec() takes the node's retry when the run gives none, and streams a failed connection's message once",
  ignore,
}, async () => {
  const { SshNode } = await import("../mod.ts");
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const node = new SshNode({
    name: "dead",
    host: "127.0.0.1",
    port,
    controlMaster: false,
    silent: true,
    retry: { attempts: 3, delays: [10] },
  });
  const lines: string[] = [];
  const r = await node.rexec("true", {
    onLine: (l) => lines.push(`${l.stream}: ${l.text}`),
  });
  const refused =
    `ssh: connect to host 127.0.0.1 port ${port}: Connection refused`;
  assertEquals([r.started, r.attempts], [false, 3]);
  assertEquals(lines, [`stderr: ${refused}`]);
  assertEquals(r.stderr, `${refused}\n`);
  assertEquals((await node.rexec("true", { retry: false })).attempts, 1);
  assertEquals((await node.with({ retry: false }).rexec("true")).attempts, 1);
  await assertRejects(
    () => node.with({ retry: { attempts: 0 } }).rexec("true"),
    ConfigurationError,
    "Invalid retry attempts",
  );
});
