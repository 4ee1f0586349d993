/**
 * Spawn storms on a 64-address loopback rig, from cold (no master up):
 *
 * 1. a CommandManager with 64 nodes × 20 commands (interval 1 s, count 5,
 *    each printing one line): every line must arrive (6400), no command may
 *    fail with a connect timeout, nothing may be left running;
 * 2. 1280 `rexec` in one `Promise.all`, each with a 60 s command timeout:
 *    all must succeed and leave nothing running.
 *
 *   deno task bench:storm
 *
 * Prints counts, wall time and this process's peak RSS (sampled).
 *
 * @module
 */

import type { SshNode } from "../mod.ts";
import { controlPool } from "../src/connection/pool.ts";
import { countRemote, startLoopbackRig } from "../tests/_loopback.ts";
import { COUNT, managerStorm, PER_NODE } from "./_storm.ts";

const NODES = 64;

// Sampled: /proc/self/status (VmHWM) needs --allow-all.
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
}, 100);
function peakRssMb(): number {
  return peakRss / 2 ** 20;
}

async function rexecStorm(nodes: SshNode[]): Promise<void> {
  const t0 = performance.now();
  const runs = nodes.flatMap((node) =>
    Array.from(
      { length: PER_NODE },
      () => node.rexec("echo one", { cmdTimeout: 60_000 }),
    )
  );
  const results = await Promise.all(runs);
  const ok = results.filter((r) => r.success).length;
  const connect = results.filter((r) => r.timedOut === "connect").length;
  console.log(
    `rexec storm: ${ok}/${results.length} ok, ${connect} connect timeouts, ` +
      `${Math.round(performance.now() - t0)} ms`,
  );
}

await using rig = await startLoopbackRig({ extraHosts: NODES - 2 });
const nodes = rig.hosts.map((_, index) =>
  rig.node({ index, name: `n${index}`, silent: true })
);
{
  const m = await managerStorm(nodes);
  console.log(
    `manager storm: ${m.lines}/${NODES * PER_NODE * COUNT} lines, ` +
      `${m.timeouts} timeouts, ${m.abnormal} abnormal, ` +
      `${Math.round(m.ms)} ms`,
  );
}
await controlPool.closeAll();
await rexecStorm(nodes);
await controlPool.closeAll();
console.log(
  `left running on the nodes: ${await countRemote(
    rig,
    "storm-",
  )} + ${await countRemote(
    rig,
    "echo one",
  )}; peak RSS ${Math.round(peakRssMb())} MB`,
);
clearInterval(sampler);
