// Smoke tests of a rig, run with `deno test`. They use the rig the
// environment names (FIWI_RIG=<rig file>, or FIWI_REMOTE_IP=<address>, or
// ./rigs.yaml; FIWI_NODES narrows it), and are skipped with the reason when
// there is none:
//
//   FIWI_RIG=rigs.yaml deno test --allow-run=ssh,sh,setsid --allow-env \
//     --allow-read --allow-write --allow-sys=uid examples/rig_smoke.ts
import { assert, assertEquals } from "jsr:@std/assert@^1";
import { Command, rigTest, runAll } from "../mod.ts";

rigTest("every node runs a shell command", async ({ nodes, signal }) => {
  // The signal aborts when the test ends or runs over its time limit.
  const results = await runAll(nodes, "echo ready; uname -s", {
    cmdTimeout: 10_000,
    signal,
  });
  for (const r of results) {
    assertEquals([r.node, r.success, r.stdout.split("\n")[0]], [
      r.node,
      true,
      "ready",
    ]);
  }
});

rigTest({
  name: "uptime every 1 s, 3 times, keeps rising",
  timeout: 15_000,
  async fn({ nodes }) {
    const probe = new Command(nodes[0], "cut -d' ' -f1 /proc/uptime", {
      interval: 1_000,
      count: 3,
      cmdTimeout: 5_000,
    });
    await probe.start();
    await probe.done;
    assertEquals([probe.state, probe.runCount], ["finished", 3]);
    const [first, , last] = probe.runs.map((r) => Number(r.result.stdout));
    assert(last > first, `uptime went from ${first} to ${last}`);
  },
});
