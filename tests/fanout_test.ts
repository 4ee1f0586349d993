// runAll(): the concurrency bound, abort, and input checks on the local
// transport; node order, collect-all and failFast (remote processes killed)
// on the loopback rig, where the two addresses let one command behave
// differently per node.
import { assert, assertEquals, assertRejects } from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  DEFAULT_CONCURRENCY,
  type FanoutNode,
  runAll,
  type RunResult,
  SshNode,
} from "../mod.ts";
import { settle } from "./_manual_clock.ts";
import {
  countCarrying,
  marker,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";
import { fakeResult } from "./_fake_result.ts";

const locals = (n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      new SshNode({
        name: `l${i}`,
        host: "localhost",
        transport: "local",
        silent: true,
      }),
  );

function successOf(node: string, cmd: string): RunResult {
  return fakeResult({
    node,
    cmd,
    argv: [],
    startedAt: new Date(),
    durationMs: 0,
  });
}

Deno.test("runAll() keeps at most `concurrency` runs in flight", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_fanout_" });
  try {
    let active = 0;
    let peak = 0;
    // Nothing ends before two runs have begun: with a limit of 1 this would
    // stall (cmdTimeout); a third can only begin after one has ended.
    const results = await runAll(
      locals(6),
      `echo begin; until [ -e ${dir}/go ]; do sleep 0.02; done; echo end`,
      {
        concurrency: 2,
        cmdTimeout: 30_000,
        onLine: (line) => {
          if (line.text === "begin") peak = Math.max(peak, ++active);
          if (line.text === "end") active--;
          if (active === 2) Deno.writeTextFileSync(`${dir}/go`, "");
        },
      },
    );
    assertEquals(peak, 2);
    assertEquals(results.map((r) => [r.node, r.success, r.stdout]), [
      ["l0", true, "begin\nend\n"],
      ["l1", true, "begin\nend\n"],
      ["l2", true, "begin\nend\n"],
      ["l3", true, "begin\nend\n"],
      ["l4", true, "begin\nend\n"],
      ["l5", true, "begin\nend\n"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runAll() without a concurrency keeps 64 runs in flight, not more", async () => {
  assertEquals(DEFAULT_CONCURRENCY, 64);
  // Scripted nodes whose runs end when the test says: the count of calls
  // in flight is then exact.
  const finish: (() => void)[] = [];
  const nodes: FanoutNode[] = Array.from({ length: 70 }, (_, i) => ({
    name: `f${i}`,
    prepare: () => Promise.resolve(),
    rexec: (cmd: string) =>
      new Promise<RunResult>((resolve) =>
        finish.push(() => resolve(successOf(`f${i}`, cmd)))
      ),
  }));
  const all = runAll(nodes, "work");
  await settle();
  assertEquals(finish.length, 64);
  finish[0]();
  await settle();
  assertEquals(finish.length, 65);
  for (let i = 1; i < 70; i++) {
    finish[i]();
    await settle();
  }
  const results = await all;
  assertEquals(results.map((r) => r.node), nodes.map((n) => n.name));
});

Deno.test("runAll() aborted by its signal stops running nodes and spawns no waiting ones", async () => {
  const controller = new AbortController();
  const m = marker();
  const results = await runAll(locals(3), `echo begin; sleep ${m}`, {
    concurrency: 1,
    signal: controller.signal,
    onLine: (line) => {
      if (line.text === "begin") controller.abort();
    },
  });
  assertEquals(
    results.map((r) => [r.node, r.aborted, r.started, r.success]),
    [
      ["l0", true, true, false],
      ["l1", true, false, false],
      ["l2", true, false, false],
    ],
  );
  assertEquals(await settlesToZero(() => countCarrying(m)), 0);
});

Deno.test("runAll() of no nodes resolves to no results", async () => {
  assertEquals(await runAll([], "true"), []);
});

Deno.test("runAll() rejects bad options before running anything", async () => {
  const nodes = locals(2);
  for (const concurrency of [0, -1, 1.5, Infinity, NaN, "2"]) {
    await assertRejects(
      () => runAll(nodes, "true", { concurrency: concurrency as number }),
      ConfigurationError,
      "Invalid concurrency",
    );
  }
  await assertRejects(
    () => runAll(nodes, "true", { failFast: "yes" as unknown as boolean }),
    ConfigurationError,
    "Invalid failFast",
  );
  await assertRejects(
    () => runAll(nodes, "  "),
    ConfigurationError,
    "Invalid command",
  );
  await assertRejects(
    () => runAll(nodes, "true", { ioTimeout: -5 }),
    ConfigurationError,
    "Invalid ioTimeout",
  );
});

Deno.test("runAll() with one badly configured node runs none of them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_fanout_" });
  try {
    const marker = `${dir}/ran`;
    const bad = new SshNode({ name: "bad", host: "-oProxyCommand=x" });
    await assertRejects(
      () => runAll([...locals(2), bad], `touch ${marker}`),
      ConfigurationError,
      "-oProxyCommand=x",
    );
    const exists = await Deno.stat(marker).then(() => true, () => false);
    assertEquals(exists, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// On the second address the command fails once both nodes on the first are
// in their long sleep, `sleep <m>` (this run's marker, counted by exact
// command line, so no other test's or run's sleep counts).
const failOnSecond = (second: string, m: string) =>
  `set -- $SSH_CONNECTION; ` +
  `if [ "$3" = ${second} ]; then ` +
  `until [ "$(pgrep -c -u "$(id -u)" -x -f '[s]leep ${
    m.replace(".", "\\.")
  }')" -ge 2 ]; do sleep 0.05; done; ` +
  `echo failing; exit 3; fi; sleep ${m}`;

Deno.test({
  name: "runAll() on the loopback rig",
  // Nodes tell themselves apart by the address they were reached on.
  ignore: skipHere("runAll() on the loopback rig", "second-address"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const second = rig.hosts[1];
    const node0 = rig.node({ index: 0, silent: true });
    const node1 = rig.node({ index: 1, silent: true });
    const node2 = rig.node({ index: 0, name: "node2", silent: true });

    await t.step(
      "results come in node order, not finishing order",
      async () => {
        const dir = (await rig.sh("mktemp -d")).stdout.trim();
        try {
          // node0 cannot end before node1 has: it waits for node1's file.
          const results = await runAll(
            [node0, node1],
            `set -- $SSH_CONNECTION; if [ "$3" = ${second} ]; then ` +
              `echo second; touch ${dir}/second; exit 0; fi; ` +
              `until [ -e ${dir}/second ]; do sleep 0.05; done; echo first`,
            { cmdTimeout: 30_000 },
          );
          assertEquals(results.map((r) => [r.node, r.stdout]), [
            ["node0", "first\n"],
            ["node1", "second\n"],
          ]);
        } finally {
          await rig.sh(`rm -rf ${dir}`);
        }
      },
    );

    await t.step("by default a failure does not stop the others", async () => {
      const results = await runAll(
        [node0, node1],
        `set -- $SSH_CONNECTION; if [ "$3" = ${second} ]; then exit 3; fi; ` +
          `sleep 0.3; echo done`,
      );
      assertEquals(
        results.map((r) => [r.node, r.code, r.success, r.aborted, r.stdout]),
        [
          ["node0", 0, true, false, "done\n"],
          ["node1", 3, false, false, ""],
        ],
      );
    });

    await t.step(
      "failFast aborts the siblings and kills their remote processes",
      async () => {
        const m = marker();
        const results = await runAll(
          [node0, node1, node2],
          failOnSecond(second, m),
          {
            failFast: true,
            cmdTimeout: 30_000,
          },
        );
        assertEquals(
          results.map((r) => [r.node, r.aborted, r.started]),
          [
            ["node0", true, true],
            ["node1", false, true],
            ["node2", true, true],
          ],
        );
        assertEquals(results[1].code, 3);
        assertEquals(results[1].stdout, "failing\n");
        assert(results.every((r) => !r.success));
        assert(results.every((r) => r.timedOut === null));
        assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
        assertEquals(await countCarrying(m), 0, "the ssh clients are gone");
      },
    );

    await Promise.all([node0, node1, node2].map((n) => n.close()));
  },
});

Deno.test("fanOut: the bound holds per gateway, and failFast reaches every route", async () => {
  const { fanOut } = await import("../src/fanout/_fan_out.ts");
  const g1 = { name: "g1" }, g2 = { name: "g2" };
  const items = Array.from({ length: 12 }, (_, i) => ({
    id: i,
    gateway: [undefined, g1, g2][i % 3],
  }));
  const inFlight = new Map<unknown, number>();
  const peak = new Map<unknown, number>();
  const gates: (() => void)[] = [];
  const job = async (item: (typeof items)[number]) => {
    const n = (inFlight.get(item.gateway) ?? 0) + 1;
    inFlight.set(item.gateway, n);
    peak.set(item.gateway, Math.max(peak.get(item.gateway) ?? 0, n));
    await new Promise<void>((resolve) => gates.push(resolve));
    inFlight.set(item.gateway, inFlight.get(item.gateway)! - 1);
    return item.id;
  };
  const done = fanOut(
    items,
    { concurrency: 2, failFast: false },
    job,
    () => false,
  );
  // Every route starts its own 2 at once: 6 jobs wait before any ends.
  await settle();
  assertEquals(gates.length, 6);
  while (gates.length) {
    gates.shift()!();
    await settle();
  }
  assertEquals(await done, items.map((i) => i.id));
  assertEquals([peak.get(undefined), peak.get(g1), peak.get(g2)], [2, 2, 2]);

  // A failure behind g1 aborts the jobs of the other routes too.
  const seen: boolean[] = [];
  const results = await fanOut(
    items,
    { concurrency: 1, failFast: true },
    (item, signal) => {
      seen.push(signal.aborted);
      return Promise.resolve(item.gateway === g1 ? "bad" : "ok");
    },
    (r) => r === "bad",
  );
  assertEquals(results.length, 12);
  assert(seen.slice(-3).every((a) => a), `later jobs not aborted: ${seen}`);
});
