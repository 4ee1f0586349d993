/**
 * Side by side, in one run on the local transport: a {@linkcode Command}
 * firing every 10 ms on its deadline schedule against the loop people write
 * first, "run, then sleep the period". Both run `true` 1000 times.
 *
 *   deno task bench:schedule
 *
 * Printed for each: start lateness p50 / p99 / max (how long after its due
 * time a run began; for the sleep loop, due means the ideal grid
 * `t0 + k·10`), and cumulative drift after the last tick (how far the last
 * start is behind where the grid put it, less the first start's lateness).
 * Targets for the Command: p99 <= 5 ms, drift 0 (no growth, only the last
 * tick's own lateness).
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import { Command, type CommandNode, type RunRecord, SshNode } from "../mod.ts";

const TICKS = Number(Deno.env.get("FIWI_BENCH_TICKS") ?? "1000");
const INTERVAL = 10;

const node = new SshNode({
  name: "local",
  host: "localhost",
  transport: "local",
  silent: true,
});

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

interface Outcome {
  lateness: number[];
  drift: number;
  skipped: number;
  wallMs: number;
}

async function deadline(): Promise<Outcome> {
  // A command keeps its last 100 records: take each one as the next run
  // begins, and the last after the end.
  const records = new Map<number, RunRecord>();
  let cmd: Command | null = null;
  const take = () => {
    for (const r of cmd?.runs ?? []) records.set(r.index, r);
  };
  const watched: CommandNode = {
    name: node.name,
    rexec: (c, o) => {
      take();
      return node.rexec(c, o);
    },
  };
  cmd = new Command(watched, "true", { interval: INTERVAL, count: TICKS });
  const t = performance.now();
  await cmd.start();
  await cmd.done;
  const wallMs = performance.now() - t;
  take();
  const runs = [...records.values()].sort((a, b) => a.index - b.index);
  if (runs.length !== TICKS || cmd.state !== "finished") {
    throw new Error(`Command ended ${cmd.state} after ${runs.length} runs`);
  }
  const lateness = runs.map((r) => r.startedAt - r.scheduledAt);
  const first = runs[0];
  const last = runs[runs.length - 1];
  const skipped = (last.scheduledAt - first.scheduledAt) / INTERVAL -
    (TICKS - 1);
  return {
    lateness,
    drift: lateness[lateness.length - 1] - lateness[0],
    skipped: Math.round(skipped),
    wallMs,
  };
}

async function sleepAfterRun(): Promise<Outcome> {
  const starts: number[] = [];
  const t = performance.now();
  for (let k = 0; k < TICKS; k++) {
    starts.push(performance.now());
    await node.rexec("true");
    await delay(INTERVAL);
  }
  const wallMs = performance.now() - t;
  const lateness = starts.map((s, k) => s - (starts[0] + k * INTERVAL));
  return {
    lateness,
    drift: lateness[lateness.length - 1] - lateness[0],
    skipped: 0,
    wallMs,
  };
}

function row(name: string, o: Outcome): string {
  const f = (x: number) => x.toFixed(2).padStart(9);
  return `${name.padEnd(18)}${f(percentile(o.lateness, 50))}${
    f(percentile(o.lateness, 99))
  }${f(Math.max(...o.lateness))}${f(o.drift)}${String(o.skipped).padStart(9)}${
    f(o.wallMs / 1000)
  }`;
}

console.log(`${TICKS} ticks of "true" every ${INTERVAL} ms, local transport`);
// Warm up the spawn path so the first tick is not an outlier of its own.
for (let i = 0; i < 20; i++) await node.rexec("true");
const a = await deadline();
const b = await sleepAfterRun();
console.log(
  `${"".padEnd(18)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${
    "max ms".padStart(9)
  }${"drift ms".padStart(9)}${"skipped".padStart(9)}${"wall s".padStart(9)}`,
);
console.log(row("Command", a));
console.log(row("sleep after run", b));
const p99 = percentile(a.lateness, 99);
console.log(
  `Command p99 lateness ${p99.toFixed(2)} ms (target <= 5): ${
    p99 <= 5 ? "met" : "MISSED"
  }; drift ${a.drift.toFixed(2)} ms vs ${
    b.drift.toFixed(0)
  } ms for sleep-after-run (ratio ${
    (b.drift / Math.max(Math.abs(a.drift), 0.01)).toFixed(0)
  }x)`,
);
