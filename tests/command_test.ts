// Command: the schedule on a manual clock with a scripted node (exact fire
// times, no sleeping), then real runs: log files and stop() on the local
// transport, deadline accuracy and remote kill on the loopback rig.
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import { configure, type LogRecord, reset } from "npm:@logtape/logtape@^2";
import {
  Command,
  CommandManager,
  type CommandOptions,
  ConfigurationError,
  FiwiError,
  type RunOptions,
  type RunRecord,
  type RunResult,
  SshNode,
  TimeoutError,
} from "../mod.ts";
import { fakeResult } from "./_fake_result.ts";
import { ManualClock, settle } from "./_manual_clock.ts";
import {
  countCarrying,
  countExact,
  marker,
  skipHere,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

interface Step {
  duration?: number;
  outcome?: Partial<RunResult>;
  throws?: Error;
}

/** A node whose runs take `plan(i).duration` ms of the manual clock. */
function scripted(clock: ManualClock, plan: (i: number) => Step = () => ({})) {
  const calls: { at: number; opts: RunOptions }[] = [];
  const node = {
    name: "fake",
    calls,
    async rexec(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
      const step = plan(calls.length);
      calls.push({ at: clock.now(), opts });
      const signal = opts.signal ?? new AbortController().signal;
      if (step.duration) await clock.sleep(step.duration, signal);
      if (step.throws) throw step.throws;
      const aborted = signal.aborted;
      return fakeResult({
        node: "fake",
        cmd,
        argv: ["fake"],
        code: aborted ? null : 0,
        signal: aborted ? "SIGTERM" : null,
        success: !aborted,
        aborted,
        startedAt: new Date(),
        durationMs: step.duration ?? 0,
        ...step.outcome,
      });
    },
  };
  return node;
}

/** Start a command on a manual clock; times in its records are from t0. */
async function scheduled(
  plan: (i: number) => Step,
  options: CommandOptions,
) {
  const clock = new ManualClock();
  const t0 = clock.now();
  const node = scripted(clock, plan);
  const cmd = new Command(node, "work", { clock, ...options });
  let ended = false;
  cmd.done.then(() => ended = true);
  await cmd.start();
  return {
    clock,
    node,
    cmd,
    ended: () => ended,
    starts: () => cmd.runs.map((r) => r.startedAt - t0),
    dues: () => cmd.runs.map((r) => r.scheduledAt - t0),
  };
}

const timedOut = (i: number, at: number): Step =>
  i === at
    ? {
      outcome: {
        success: false,
        timedOut: "io",
        error: new TimeoutError("io", "The io timeout of 5 ms expired"),
      },
    }
    : {};

Deno.test("Command with a count runs exactly that many times on the interval grid", async () => {
  const s = await scheduled(() => ({ duration: 10 }), {
    interval: 100,
    count: 3,
  });
  assertEquals(s.cmd.state, "running");
  await s.clock.advance(1000);
  assertEquals(s.ended(), true);
  assertEquals(s.cmd.state, "finished");
  assertEquals(s.cmd.runCount, 3);
  assertEquals(s.starts(), [0, 100, 200]);
  assertEquals(s.dues(), [0, 100, 200]);
  assertEquals(s.cmd.runs.map((r) => r.index), [0, 1, 2]);
  assertEquals(s.clock.sleeping, 0);
});

Deno.test("Command fires on deadlines: a run's duration does not shift later fires", async () => {
  const s = await scheduled(() => ({ duration: 60 }), {
    interval: 100,
    count: 5,
  });
  await s.clock.advance(1000);
  // A sleep-after-run loop would have started at 0, 160, 320, 480, 640.
  assertEquals(s.starts(), [0, 100, 200, 300, 400]);
});

Deno.test("Command without a positive interval runs once", async () => {
  for (const interval of [undefined, 0, -100]) {
    const s = await scheduled(() => ({ duration: 5 }), { interval, count: 5 });
    await s.clock.advance(1000);
    assertEquals([s.cmd.state, s.cmd.runCount, s.cmd.count], [
      "finished",
      1,
      1,
    ]);
  }
});

Deno.test("Command.COUNT_FOREVER runs until stop(), which ends the run in progress", async () => {
  assertEquals(Command.COUNT_FOREVER, -1);
  const s = await scheduled(() => ({ duration: 10 }), { interval: 100 });
  assertEquals(s.cmd.count, Command.COUNT_FOREVER);
  await s.clock.advance(1005);
  assertEquals(s.ended(), false);
  assertEquals(s.node.calls.length, 11);
  await s.cmd.stop();
  assertEquals(s.cmd.state, "stopped");
  assertEquals(s.cmd.runCount, 11);
  assertEquals(s.cmd.runs.at(-1)?.result.aborted, true);
  assertEquals(s.cmd.runs.slice(0, -1).every((r) => r.result.success), true);
  assertEquals(s.clock.sleeping, 0);
  await s.cmd.stop(); // harmless the second time
  assertEquals(s.cmd.state, "stopped");
});

Deno.test("Command stopped while waiting for its next fire ends without another run", async () => {
  const s = await scheduled(() => ({}), { interval: 100 });
  await s.clock.advance(150);
  assertEquals(s.node.calls.length, 2);
  await s.cmd.stop();
  assertEquals([s.cmd.state, s.cmd.runCount, s.clock.sleeping], [
    "stopped",
    2,
    0,
  ]);
});

Deno.test('Command with overrun "skip" moves a late fire to the next grid point', async () => {
  const durations = [250, 10, 10];
  const s = await scheduled((i) => ({ duration: durations[i] }), {
    interval: 100,
    count: 3,
  });
  await s.clock.advance(1000);
  assertEquals(s.starts(), [0, 300, 400]);
  assertEquals(s.dues(), [0, 300, 400]);
});

Deno.test('Command with overrun "immediate" fires a late run at once, without a backlog', async () => {
  const durations = [250, 10, 10, 1050, 10];
  const s = await scheduled((i) => ({ duration: durations[i] }), {
    interval: 100,
    count: 5,
    overrun: "immediate",
  });
  await s.clock.advance(3000);
  // Run 1 was due at 100 and 200; it starts when run 0 ends, then the grid
  // resumes. After the 1050 ms run only one late fire follows, not ten.
  assertEquals(s.starts(), [0, 250, 300, 400, 1450]);
  assertEquals(s.dues(), [0, 200, 300, 400, 1400]);
});

Deno.test("Command jitter delays each fire within [0, jitter) without accumulating", async () => {
  const draws = [0, 0.5, 0.999, 0.25];
  let i = 0;
  const s = await scheduled(() => ({ duration: 5 }), {
    interval: 100,
    count: 4,
    jitter: 40,
    random: () => draws[i++],
  });
  await s.clock.advance(1000);
  const starts = s.starts();
  [0, 120, 239.96, 310].forEach((want, k) =>
    assertAlmostEquals(starts[k], want, 1e-9)
  );

  const r = await scheduled(() => ({ duration: 5 }), {
    interval: 100,
    count: 50,
    jitter: 30,
  });
  await r.clock.advance(6000);
  assertEquals(r.cmd.runCount, 50);
  const offsets = r.starts().map((t, k) => t - k * 100);
  assert(
    offsets.every((o) => o >= 0 && o < 30),
    `offsets ${offsets.join(", ")}`,
  );
  assert(new Set(offsets).size > 1, "jitter varies between fires");
});

Deno.test("Command initialDelay postpones the first fire and the whole grid", async () => {
  const s = await scheduled(() => ({ duration: 5 }), {
    interval: 100,
    count: 3,
    initialDelay: 500,
  });
  await s.clock.advance(499);
  assertEquals(s.node.calls.length, 0);
  await s.clock.advance(1000);
  assertEquals(s.starts(), [500, 600, 700]);
});

Deno.test('Command with onError "stop" fails on a timed-out run', async () => {
  const s = await scheduled((i) => timedOut(i, 1), {
    interval: 100,
    count: 5,
  });
  await s.clock.advance(1000);
  assertEquals([s.cmd.state, s.cmd.runCount], ["failed", 2]);
  assertInstanceOf(s.cmd.error, TimeoutError);
});

Deno.test('Command with onError "continue" records a timed-out run and goes on', async () => {
  const s = await scheduled((i) => timedOut(i, 1), {
    interval: 100,
    count: 5,
    onError: "continue",
  });
  await s.clock.advance(1000);
  assertEquals([s.cmd.state, s.cmd.runCount, s.cmd.error], [
    "finished",
    5,
    null,
  ]);
  assertEquals(s.cmd.runs.map((r) => r.result.timedOut), [
    null,
    "io",
    null,
    null,
    null,
  ]);
});

Deno.test("Command whose run throws fails with that error", async () => {
  const boom = new ConfigurationError('Identity file "/nope" cannot be read');
  const s = await scheduled(() => ({ throws: boom }), { interval: 100 });
  await s.clock.advance(1000);
  assertEquals([s.cmd.state, s.cmd.runCount], ["failed", 1]);
  assertEquals(s.cmd.error, boom);
  assertEquals(s.cmd.runs[0].result.error, boom);
});

Deno.test("Command passes its per-run timeouts and onLine to every run", async () => {
  const onLine = () => {};
  const s = await scheduled(() => ({}), {
    interval: 10,
    count: 2,
    connectTimeout: 111,
    ioTimeout: 222,
    cmdTimeout: 333,
    onLine,
  });
  await s.clock.advance(100);
  assertEquals(s.node.calls.length, 2);
  for (const { opts } of s.node.calls) {
    assertEquals(
      [opts.connectTimeout, opts.ioTimeout, opts.cmdTimeout],
      [111, 222, 333],
    );
    assertInstanceOf(opts.signal, AbortSignal);
    assertEquals(typeof opts.onLine, "function");
  }
});

Deno.test("Command onRun gets each finished run's record once, after runs holds it", async (t) => {
  await t.step("every run, a failed one too, in order", async () => {
    const seen: { record: RunRecord; last?: RunRecord; count: number }[] = [];
    const s = await scheduled((i) => timedOut(i, 1), {
      interval: 100,
      count: 3,
      onError: "continue",
      onRun: (record) =>
        seen.push({ record, last: s.cmd.runs.at(-1), count: s.cmd.runCount }),
    });
    await s.clock.advance(1000);
    assertEquals(s.cmd.state, "finished");
    assertEquals(seen.map((x) => x.record), s.cmd.runs);
    for (const [i, { record, last, count }] of seen.entries()) {
      assertEquals([record.index, count], [i, i + 1]);
      assert(record === last, "runs holds the record before onRun sees it");
    }
    assertEquals(seen.map((x) => x.record.scheduledAt - 1000), [0, 100, 200]);
    assertEquals(seen.map((x) => x.record.result.timedOut), [null, "io", null]);
  });

  await t.step("the run that fails a command, before it fails", async () => {
    const seen: number[] = [];
    const s = await scheduled((i) => timedOut(i, 1), {
      interval: 100,
      count: 5,
      onRun: ({ index }) => seen.push(index),
    });
    await s.clock.advance(1000);
    assertEquals([s.cmd.state, seen], ["failed", [0, 1]]);
  });

  await t.step("the run stop() ended", async () => {
    const seen: RunRecord[] = [];
    const s = await scheduled(() => ({ duration: 500 }), {
      interval: 100,
      onRun: (record) => seen.push(record),
    });
    await s.clock.advance(50);
    await s.cmd.stop();
    assertEquals(seen.map((r) => [r.index, r.result.aborted]), [[0, true]]);
  });

  await t.step("only a function", () => {
    assertThrows(
      () =>
        new Command(scripted(new ManualClock()), "x", { onRun: 1 as never }),
      ConfigurationError,
      "Invalid onRun: give a function",
    );
  });
});

Deno.test("Command onRun that throws or rejects is logged, and the schedule goes on", async () => {
  const logged: LogRecord[] = [];
  await configure({
    sinks: { mem: (r: LogRecord) => logged.push(r) },
    loggers: [
      { category: ["fiwi", "command"], sinks: ["mem"], lowestLevel: "error" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    reset: true,
  });
  const seen: number[] = [];
  try {
    const s = await scheduled(() => ({}), {
      interval: 100,
      count: 3,
      onRun: ({ index }) => {
        seen.push(index);
        if (index === 0) throw new Error("sync boom");
        if (index === 1) return Promise.reject(new Error("async boom"));
      },
    });
    await s.clock.advance(1000);
    await settle();
    assertEquals([s.cmd.state, s.cmd.runCount, s.cmd.error], [
      "finished",
      3,
      null,
    ]);
  } finally {
    await reset();
  }
  assertEquals(seen, [0, 1, 2]);
  assertEquals(
    logged.map((r) => [
      r.level,
      r.properties.node,
      r.properties.index,
      (r.properties.error as Error).message,
    ]),
    [["error", "fake", 0, "sync boom"], ["error", "fake", 1, "async boom"]],
  );
});

Deno.test("CommandManager.addCommand passes onRun to its command", async () => {
  const clock = new ManualClock();
  const seen: number[] = [];
  await using manager = new CommandManager();
  await manager.addCommand({
    node: scripted(clock),
    cmd: "work",
    clock,
    interval: 100,
    count: 2,
    onRun: ({ index }) => seen.push(index),
  });
  await clock.advance(1000);
  assertEquals(seen, [0, 1]);
  assertEquals(manager.listActive(), []);
});

Deno.test("Command stopped before start never runs, and cannot be started again", async () => {
  const clock = new ManualClock();
  const node = scripted(clock);
  const cmd = new Command(node, "work", { clock, interval: 10 });
  await cmd.stop();
  assertEquals(cmd.state, "stopped");
  await cmd.done;
  await assertRejects(() => cmd.start(), FiwiError, "already started");
  assertEquals(node.calls.length, 0);

  const twice = new Command(node, "work", { clock });
  await twice.start();
  await assertRejects(() => twice.start(), FiwiError, "already started");
  await twice.stop();
});

Deno.test("Command rejects bad options up front", () => {
  const node = scripted(new ManualClock());
  const bad: [CommandOptions, string][] = [
    [{ interval: NaN }, "Invalid interval"],
    [{ interval: "100" as unknown as number }, "Invalid interval"],
    [{ count: 0 }, "Invalid count"],
    [{ count: 1.5 }, "Invalid count"],
    [{ count: -2 }, "Invalid count"],
    [{ initialDelay: -1 }, "Invalid initialDelay"],
    [{ jitter: -1 }, "Invalid jitter"],
    [{ overrun: "later" as "skip" }, 'Invalid overrun "later"'],
    [{ onError: "ignore" as "stop" }, 'Invalid onError "ignore"'],
    [{ logFile: "" }, "Invalid logFile"],
    [{ ioTimeout: -1 }, "Invalid ioTimeout"],
  ];
  for (const [options, message] of bad) {
    assertThrows(
      () => new Command(node, "work", options),
      ConfigurationError,
      message,
    );
  }
  assertThrows(() => new Command(node, " "), ConfigurationError, "command");
});

const local = () =>
  new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
    silent: true,
  });

Deno.test("Command logFile holds every run under a banner and is closed at the end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_cmd_" });
  try {
    const logFile = `${dir}/runs.log`;
    const cmd = new Command(local(), "echo hi; echo oops >&2", {
      interval: 20,
      count: 2,
      logFile,
    });
    await cmd.start();
    await cmd.done;
    const text = await Deno.readTextFile(logFile);
    const lines = text.trimEnd().split("\n");
    assertEquals(lines.length, 8);
    for (const [k, i] of [[0, 0], [1, 4]]) {
      assertMatch(
        lines[i],
        new RegExp(
          `^===== run ${k} \\| node here \\| \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\| echo hi; echo oops >&2$`,
        ),
      );
      assertEquals(
        [lines[i + 1], lines[i + 2]].sort(),
        ["[stderr] oops", "hi"],
      );
      assertMatch(
        lines[i + 3],
        new RegExp(
          `^===== end of run ${k} \\| node here \\| exit 0 \\| \\d+ ms$`,
        ),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Command logFile records a timed-out run and is closed when the command fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_cmd_" });
  try {
    const logFile = `${dir}/runs.log`;
    const m = marker();
    const cmd = new Command(local(), `echo begin; sleep ${m}`, {
      cmdTimeout: 200,
      logFile,
    });
    await cmd.start();
    await cmd.done;
    assertEquals(cmd.state, "failed");
    const text = await Deno.readTextFile(logFile);
    assertMatch(text, /^begin$/m);
    assertMatch(
      text,
      /^===== end of run 0 \| node here \| command timeout \| \d+ ms$/m,
    );
    assertEquals(await settlesToZero(() => countCarrying(m)), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Command with an unwritable logFile fails to start", async () => {
  const cmd = new Command(local(), "true", {
    logFile: "/nonexistent-dir/fiwi.log",
  });
  await assertRejects(
    () => cmd.start(),
    ConfigurationError,
    'Log file "/nonexistent-dir/fiwi.log" cannot be opened',
  );
  assertEquals(cmd.state, "failed");
  await cmd.done;
});

Deno.test({
  name: "Command on the loopback rig",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    const node = rig.node({ silent: true });

    await t.step({
      name: "10 runs at 200 ms that take 100 ms each start on their deadlines",
      // Each run must end well inside the period: a live node may be slower.
      ignore: skipHere("Command: 10 runs at 200 ms", "loopback-timing"),
      fn: async () => {
        // Typical lateness is the timer's (a few ms); one start may be
        // preempted on a loaded controller, but lateness never accumulates.
        const typical = 25;
        const worst = 150;
        await node.rexec("true"); // the master is up: runs take ~100 ms
        const cmd = new Command(node, "sleep 0.1", {
          interval: 200,
          count: 10,
        });
        await cmd.start();
        await cmd.done;
        assertEquals(cmd.state, "finished");
        const runs = cmd.runs;
        assertEquals(runs.length, 10);
        assert(runs.every((r) => r.result.success), "every run succeeded");
        assert(
          runs.every((r) => r.result.durationMs >= 100),
          "each run took at least 100 ms",
        );
        const lateness: number[] = [];
        for (const r of runs) {
          assertAlmostEquals(
            r.scheduledAt - runs[0].scheduledAt,
            r.index * 200,
            1e-6,
          );
          const late = r.startedAt - r.scheduledAt;
          lateness.push(late);
          assert(
            late >= 0 && late <= worst,
            `run ${r.index} late by ${late} ms`,
          );
        }
        const median = lateness.toSorted((a, b) => a - b)[5];
        assert(median <= typical, `median lateness ${median} ms`);
        const span = runs[9].startedAt - runs[0].startedAt;
        assert(span <= 9 * 200 + worst, `first to last start: ${span} ms`);
      },
    });

    await t.step("stop() during a run kills the remote process", async () => {
      let began!: () => void;
      const running = new Promise<void>((r) => began = r);
      const m = marker();
      const cmd = new Command(node, `echo begin; sleep ${m}`, {
        interval: 1000,
        onLine: (line) => line.text === "begin" && began(),
      });
      await cmd.start();
      try {
        await running;
        // The sleep starts just after "begin" is printed.
        const sleeping = () => countExact(`sleep ${m}`, rig);
        assertEquals(await settlesTo(sleeping, 1, GONE_WITHIN), 1);
      } finally {
        await cmd.stop();
      }
      assertEquals(cmd.state, "stopped");
      assertEquals(cmd.runs[0].result.aborted, true);
      assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
      assertEquals(await countCarrying(m), 0, "the ssh client is gone");
    });

    await node.close();
  },
});
