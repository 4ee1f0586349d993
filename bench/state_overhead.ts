/**
 * What does the state store cost a big `run`? The `run` benchmark of
 * `trust_load.ts` (64 loopback nodes × `seq 1 100000`, the `fiwi` task's
 * flags, warm masters, central log on) with the store on (`--db FILE`:
 * the invocation and 64 outcomes recorded) and off (`--no-db`), in one run:
 * runs alternate on/off, off/on (ABBA, so drift of the machine falls on
 * both alike). Reports the median wall time, CPU time (user + system, of
 * fiwi and its ssh clients: less moved by other work on the machine than
 * the wall time) and peak RSS of each, the ratios on / off (the issue's
 * bound, on the wall time: 1.05), whether every line arrived, and what
 * the store holds afterwards (one invocation per store-on run, every node
 * ok).
 *
 *   deno task bench:state [--runs 6] [--lines 100000] [--nodes 64] [--limit 600]
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { StateStore } from "../mod.ts";
import {
  intFlag,
  killMeasured,
  type MeasuredLines,
  measureLines,
  median,
} from "./_measure.ts";
import { type CliRig, quote, startCliRig } from "./_cli_rig.ts";

const args = parseArgs(Deno.args, {
  string: ["runs", "lines", "nodes", "limit"],
  default: { runs: "6", lines: "100000", nodes: "64", limit: "600" },
});
const int = (name: string, min: number) =>
  intFlag(name, args[name as "runs"], min);
const RUNS = int("runs", 1);
const LINES = int("lines", 1);
const NODES = int("nodes", 2);
const LIMIT_S = int("limit", 1);
const EXPECTED = NODES * LINES;

type Side = "store on" | "store off";

let cli: CliRig | undefined;
const onSignal = async () => {
  killMeasured();
  try {
    await cli?.[Symbol.asyncDispose]();
  } finally {
    Deno.exit(130);
  }
};
Deno.addSignalListener("SIGINT", onSignal);

async function runOnce(
  c: CliRig,
  side: Side,
  db: string,
): Promise<MeasuredLines> {
  const store = side === "store on" ? `--db ${quote(db)}` : "--no-db";
  const m = await measureLines(
    c.fiwi(
      `run --rig ${c.rigFile} -w ${
        quote(`n[1-${NODES}]`)
      } --log ${c.dir}/fiwi.log ${store} ${quote(`seq 1 ${LINES}`)}`,
    ),
    c.env,
    LIMIT_S,
  );
  for await (const e of Deno.readDir(c.dir)) {
    if (e.name.startsWith("fiwi.log")) await Deno.remove(`${c.dir}/${e.name}`);
  }
  if (m.code !== 0 || m.lines !== EXPECTED) {
    console.error(
      `  ! ${side}: exit ${m.code}, ${m.lines}/${EXPECTED} lines: ${
        m.stderr.trim().split("\n").slice(-3).join(" | ")
      }`,
    );
  }
  return m;
}

const runs: Record<Side, MeasuredLines[]> = { "store on": [], "store off": [] };
let held = { invocations: 0, allOk: false };
const t0 = performance.now();
try {
  cli = await startCliRig(NODES);
  const c = cli;
  const db = `${c.dir}/state/state.db`;
  console.error(
    `bench:state: ${NODES} nodes, seq 1 ${LINES}, ${RUNS} runs each`,
  );
  // Warm every master, as any earlier command leaves them (untimed).
  await measureLines(
    c.fiwi(`run --rig ${c.rigFile} --no-log --no-db true`),
    c.env,
    LIMIT_S,
  );
  for (let i = 0; i < RUNS; i++) {
    const order: Side[] = i % 2 === 0
      ? ["store on", "store off"]
      : ["store off", "store on"];
    for (const side of order) {
      const m = await runOnce(c, side, db);
      runs[side].push(m);
      console.error(
        `  run ${i + 1}/${RUNS} ${side}: ${m.ms.toFixed(0)} ms, CPU ${
          m.cpuS.toFixed(1)
        } s, ${m.rssMb.toFixed(0)} MB, ${m.lines} lines`,
      );
    }
  }
  await using store = await StateStore.open(db);
  const invocations = store.invocations();
  held = {
    invocations: invocations.length,
    allOk: invocations.every((i) => i.ok === NODES && i.exitCode === 0),
  };
} finally {
  await cli?.[Symbol.asyncDispose]();
  Deno.removeSignalListener("SIGINT", onSignal);
}

const ratioOf = (f: (m: MeasuredLines) => number) =>
  median(runs["store on"].map(f)) / median(runs["store off"].map(f));
const ratio = ratioOf((m) => m.ms);
const cpuRatio = ratioOf((m) => m.cpuS);
const row = (side: Side) => {
  const rs = runs[side];
  const complete =
    rs.filter((m) => m.code === 0 && m.lines === EXPECTED).length;
  return `| ${side} | ${Math.round(median(rs.map((m) => m.ms)))} ms | ${
    rs.map((m) => Math.round(m.ms)).join(", ")
  } | ${median(rs.map((m) => m.cpuS)).toFixed(1)} s | ${
    Math.max(...rs.map((m) => m.rssMb)).toFixed(0)
  } MB | ${complete}/${rs.length} |`;
};
console.log(
  `\n\`deno task bench:state --runs ${RUNS}\`: \`fiwi run -w n[1-${NODES}] 'seq 1 ${LINES}'\`, ` +
    `${NODES} loopback nodes, warm masters, central log on; ${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  [
    `| state store | wall, median of ${RUNS} | each run | CPU (user + sys), median | peak RSS (max) | every line |`,
    "| --- | --- | --- | --- | --- | --- |",
    row("store on"),
    row("store off"),
  ].join("\n"),
);
console.log(
  `\non / off: wall **${ratio.toFixed(3)}** (${
    ((ratio - 1) * 100).toFixed(1)
  } %; bound 1.05: ${ratio <= 1.05 ? "met" : "**not met**"}), CPU ${
    cpuRatio.toFixed(3)
  }; load average ${
    Deno.loadavg().map((x) => x.toFixed(1)).join(" ")
  }; the store holds ${held.invocations} invocations, ${
    held.allOk ? `each with ${NODES} nodes ok` : "**not every node ok**"
  }; total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
