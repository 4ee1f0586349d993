// Issue 19, "one home for each concept": one outcome description, one
// bounded pool, one schedule grid. Each is tested here through mod.ts, and
// through the places that used to keep their own copy (collate, discover,
// Command, the fiwi command's JSON), plus a source scan that fails when a
// second outcome function appears.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "jsr:@std/assert@^1";
import { join } from "jsr:@std/path@^1";
import {
  AuthenticationError,
  collate,
  Command,
  ConfigurationError,
  ConnectionError,
  describeOutcome,
  discover,
  FiwiError,
  HostKeyError,
  mapPool,
  type RunOptions,
  type RunResult,
  scheduleTicks,
  type SshNode,
  TimeoutError,
  type TransferResult,
} from "../mod.ts";
import { resultJson } from "../scripts/_runs.ts";
import { transferJson } from "../scripts/_transfer.ts";
import { fakeResult } from "./_fake_result.ts";
import { ManualClock } from "./_manual_clock.ts";

const root = new URL("..", import.meta.url).pathname;

function transfer(over: Partial<TransferResult> = {}): TransferResult {
  return {
    node: "n",
    success: true,
    files: 1,
    bytes: 10,
    timedOut: null,
    aborted: false,
    error: null,
    durationMs: 1,
    ...over,
  };
}

Deno.test("describeOutcome() has one precedence and one wording for every result", async (t) => {
  const timeout = new TimeoutError("io", "The io timeout of 5 ms expired");
  const refused = new ConnectionError('Cannot reach node "n": refused');
  const cases: [string, Partial<RunResult>, string, string][] = [
    ["success", {}, "exit 0", "Exited with code 0"],
    [
      "a non-zero exit",
      { code: 3, success: false },
      "exit 3",
      "Exited with code 3",
    ],
    [
      "a signal",
      { code: null, signal: "SIGKILL", success: false },
      "killed by SIGKILL",
      "Killed by SIGKILL",
    ],
    [
      "a timeout, before the abort and the signal that came with it",
      {
        timedOut: "io",
        aborted: true,
        signal: "SIGTERM",
        code: null,
        success: false,
        error: timeout,
      },
      "io timeout",
      timeout.message,
    ],
    [
      "an abort, before the signal",
      { aborted: true, signal: "SIGTERM", code: null, success: false },
      "aborted",
      "Aborted",
    ],
    [
      "an unreachable node, before its exit 255",
      { code: 255, started: false, success: false, error: refused },
      "unreachable",
      refused.message,
    ],
    [
      "a refused login",
      {
        code: 255,
        started: false,
        success: false,
        error: new AuthenticationError("Permission denied"),
      },
      "auth failed",
      "Permission denied",
    ],
    [
      "a changed host key",
      {
        code: 255,
        started: false,
        success: false,
        error: new HostKeyError("Host key changed"),
      },
      "host key rejected",
      "Host key changed",
    ],
  ];
  for (const [name, over, key, sentence] of cases) {
    await t.step(name, () => {
      assertEquals(describeOutcome(fakeResult(over)), { key, sentence });
    });
  }
  await t.step("transfers, which have no exit status", () => {
    assertEquals(describeOutcome(transfer()), {
      key: "ok",
      sentence: "Succeeded",
    });
    const lost = new FiwiError('Verifying "a" on node "n" failed');
    assertEquals(
      describeOutcome(transfer({ success: false, error: lost })),
      { key: "failed", sentence: lost.message },
    );
    assertEquals(
      describeOutcome(transfer({ success: false, aborted: true })).key,
      "aborted",
    );
    assertEquals(
      describeOutcome(transfer({ success: false, error: refused })).key,
      "unreachable",
    );
  });
});

Deno.test("describeOutcome() is what --json, collation and discovery say", async () => {
  const aborted = fakeResult({
    node: "n2",
    aborted: true,
    code: null,
    signal: "SIGTERM",
    success: false,
  });
  assertEquals(resultJson(aborted).outcome, "aborted");
  assertEquals(
    transferJson(transfer({ success: false, aborted: true })).outcome,
    "aborted",
  );
  // Two nodes timed out: one group, whatever node their messages name.
  const late = (node: string) =>
    fakeResult({
      node,
      timedOut: "command",
      code: null,
      signal: "SIGTERM",
      success: false,
      error: new TimeoutError("command", `Timeout on node "${node}"`),
    });
  assertEquals(
    collate([late("n1"), late("n2"), aborted], { byStatus: true })
      .map((g) => g.label),
    ["n[1-2]", "n2"],
  );
  const node = {
    name: "n1",
    rexec: (cmd: string, opts: RunOptions = {}) =>
      Promise.resolve(fakeResult({
        node: "n1",
        cmd,
        aborted: opts.signal?.aborted ?? false,
        code: null,
        signal: "SIGTERM",
        success: false,
      })),
  } as unknown as SshNode;
  const [inventory] = await discover([node], { signal: AbortSignal.abort() });
  assertEquals([inventory.ok, inventory.error], [false, "Aborted"]);
});

Deno.test("one function describes an outcome in src/ and scripts/", async () => {
  const found: string[] = [];
  const scan = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await scan(path);
      else if (e.name.endsWith(".ts")) {
        const lines = (await Deno.readTextFile(path)).split("\n");
        lines.forEach((line, i) => {
          if (/function .*[oO]utcome/.test(line)) {
            found.push(`${path.slice(root.length)}:${i + 1}`);
          }
        });
      }
    }
  };
  await scan(join(root, "src"));
  await scan(join(root, "scripts"));
  assertEquals(found.length, 1, found.join("\n"));
  assert(found[0].startsWith("src/process/outcome.ts:"), found[0]);
});

Deno.test("mapPool() keeps at most `concurrency` jobs in flight and results in item order", async () => {
  let inFlight = 0;
  let most = 0;
  const results = await mapPool([5, 1, 4, 2, 3], async (ms, _signal, i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, ms));
    inFlight--;
    return `${i}:${ms}`;
  }, { concurrency: 2 });
  assertEquals(results, ["0:5", "1:1", "2:4", "3:2", "4:3"]);
  assertEquals(most, 2);
  assertEquals(await mapPool([], () => Promise.resolve(1)), []);
});

Deno.test("mapPool() with stopWhen aborts the siblings and still gives each item a result", async () => {
  const started: string[] = [];
  const results = await mapPool(
    ["bad", "slow", "waiting"],
    async (name, signal) => {
      started.push(name);
      if (name === "bad") return "failed";
      if (!signal.aborted) {
        await new Promise((r) =>
          signal.addEventListener("abort", r, { once: true })
        );
      }
      return "aborted";
    },
    { concurrency: 2, stopWhen: (r) => r === "failed" },
  );
  assertEquals(results, ["failed", "aborted", "aborted"]);
  assertEquals(started, ["bad", "slow", "waiting"]);
});

Deno.test("mapPool() passes a rejection through once the jobs in flight settled, and starts no more", async () => {
  const started: number[] = [];
  let settled = 0;
  const boom = new ConfigurationError("Bad input");
  const error = await assertRejects(() =>
    mapPool([0, 1, 2, 3], async (n, signal) => {
      started.push(n);
      if (n === 0) throw boom;
      if (!signal.aborted) {
        await new Promise((r) =>
          signal.addEventListener("abort", r, { once: true })
        );
      }
      settled++;
      return n;
    }, { concurrency: 2 })
  );
  assertEquals(error, boom);
  assertEquals([started, settled], [[0, 1], 1]);
});

Deno.test("mapPool() refuses a bad concurrency before any job starts", async () => {
  for (const concurrency of [0, 1.5, -1, NaN]) {
    let calls = 0;
    const error = await assertRejects(() =>
      mapPool([1], () => Promise.resolve(calls++), { concurrency })
    );
    assertInstanceOf(error, ConfigurationError);
    assertEquals(calls, 0);
  }
});

Deno.test("discover() is bounded by its concurrency option", async () => {
  let inFlight = 0;
  let most = 0;
  const nodes = ["a", "b", "c", "d", "e"].map((name) => ({
    name,
    rexec: async (cmd: string) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return fakeResult({ node: name, cmd, stdout: "" });
    },
  })) as unknown as SshNode[];
  const seen: string[] = [];
  const inventories = await discover(nodes, {
    concurrency: 2,
    onInventory: (inv) => seen.push(inv.node),
  });
  assertEquals(inventories.map((i) => i.node), ["a", "b", "c", "d", "e"]);
  assertEquals(seen.toSorted(), ["a", "b", "c", "d", "e"]);
  assertEquals(most, 2);
  await assertRejects(
    () => discover(nodes, { concurrency: 0 }),
    ConfigurationError,
    "Invalid concurrency 0",
  );
});

/** The due times of `scheduleTicks` when each tick's work takes `work(k)` ms. */
async function dues(
  options: { overrun?: "skip" | "immediate"; count: number },
  work: (n: number) => number,
): Promise<[number, number, number][]> {
  const clock = new ManualClock(0);
  const seen: [number, number, number][] = [];
  const done = (async () => {
    for await (
      const tick of scheduleTicks({ interval: 100, clock, ...options })
    ) {
      seen.push([tick.index, tick.due, tick.skipped]);
      await clock.sleep(work(seen.length - 1), new AbortController().signal);
    }
  })();
  await clock.advance(2000);
  await done;
  return seen;
}

Deno.test("scheduleTicks() keeps the grid whatever the work takes, on an injected clock", async (t) => {
  await t.step("short work: every grid point", async () => {
    assertEquals(await dues({ count: 3 }, () => 30), [
      [0, 0, 0],
      [1, 100, 0],
      [2, 200, 0],
    ]);
  });
  await t.step("overrun skip: the next grid point still ahead", async () => {
    assertEquals(
      await dues({ count: 3 }, (n) => n === 0 ? 250 : 10),
      [[0, 0, 0], [3, 300, 2], [4, 400, 0]],
    );
  });
  await t.step(
    "overrun immediate: the latest missed point, at once",
    async () => {
      assertEquals(
        await dues(
          { count: 3, overrun: "immediate" },
          (n) => n === 0 ? 250 : 10,
        ),
        [[0, 0, 0], [2, 200, 1], [3, 300, 0]],
      );
    },
  );
  await t.step("an abort ends the wait at once", async () => {
    const clock = new ManualClock(0);
    const stop = new AbortController();
    const seen: number[] = [];
    const done = (async () => {
      for await (
        const tick of scheduleTicks({
          interval: 100,
          clock,
          signal: stop.signal,
        })
      ) seen.push(tick.index);
    })();
    await clock.advance(150);
    stop.abort();
    await done;
    assertEquals([seen, clock.sleeping], [[0, 1], 0]);
  });
  await t.step("bad options are refused", async () => {
    for (const bad of [{ interval: 0 }, { interval: 10, count: 0 }]) {
      await assertRejects(
        () => scheduleTicks(bad).next(),
        ConfigurationError,
      );
    }
  });
});

Deno.test("Command fires on the scheduleTicks grid", async () => {
  const clock = new ManualClock(0);
  const starts: number[] = [];
  const node = {
    name: "fake",
    rexec: async (cmd: string, opts: RunOptions = {}) => {
      starts.push(clock.now());
      await clock.sleep(starts.length === 1 ? 250 : 10, opts.signal!);
      return fakeResult({ node: "fake", cmd });
    },
  };
  const cmd = new Command(node, "work", { interval: 100, count: 3, clock });
  await cmd.start();
  await clock.advance(2000);
  await cmd.done;
  assertEquals(starts, [0, 300, 400]);
  assertEquals(cmd.state, "finished");
});
