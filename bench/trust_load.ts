/**
 * Does fiwi hold up on a loaded machine? On the 64-node loopback rig of
 * `compare_cli.ts`, in one run:
 *
 * 1. `fiwi run -w 'n[1-64]' 'seq 1 100000'` end to end (the `fiwi` task's
 *    flags, warm masters as after any earlier command) with the central log
 *    on and with `--no-log`, beside `pdsh -R ssh -f 64` (cold, as always),
 *    idle and under load. Each: median wall time, peak RSS (`/usr/bin/time
 *    -v`), nodes that failed, and whether every line arrived (stdout lines
 *    counted: nodes × lines expected); ratios fiwi / pdsh per condition.
 * 2. The cold `CommandManager` storm of `storm.ts` (64 nodes × 20 commands ×
 *    5 runs, connectTimeout 15 s, onError "stop") under the same load,
 *    counting abnormal stops (connect timeouts, masters replaced, any
 *    failure) over the runs.
 *
 * Load: 4 busy loops (`sh -c 'while :; do :; done'`), started before the
 * loaded part and killed by pid after it, also on failure or Ctrl-C.
 *
 *   deno task bench:load [--runs 5] [--lines 100000] [--load 4]
 *     [--parts cli,storm] [--cold] [--limit 600]
 *
 * `--cold` closes fiwi's masters before every fiwi run (untimed); `--limit`
 * bounds each measured command in seconds. Prints Markdown tables ready for
 * README.md, then what was left running (must be nothing).
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { configure, type LogRecord, reset } from "npm:@logtape/logtape@^2";
import { controlPool } from "../src/connection/pool.ts";
import {
  installed,
  intFlag,
  killMeasured,
  type MeasuredLines,
  measureLines,
  median,
} from "./_measure.ts";
import { type CliRig, quote, startCliRig } from "./_cli_rig.ts";
import { busyLoopsAlive, killBusyLoops, underLoad } from "./_load.ts";
import { COUNT, managerStorm, type ManagerStormResult } from "./_storm.ts";
import { countRemote, SSHD } from "../tests/_loopback.ts";

const args = parseArgs(Deno.args, {
  string: ["runs", "lines", "load", "parts", "nodes", "limit", "storm-runs"],
  boolean: ["cold", "help"],
  default: {
    runs: "5",
    lines: "100000",
    load: "4",
    parts: "cli,storm",
    nodes: "64",
    limit: "600",
  },
});
if (args.help) {
  console.log(
    "deno task bench:load [--runs N] [--storm-runs N] [--lines N] [--load N] [--nodes N]\n" +
      "  [--parts cli,storm] [--cold] [--limit SECONDS]",
  );
  Deno.exit(0);
}
const RUNS = intFlag("runs", args.runs, 1);
const STORM_RUNS = intFlag(
  "storm-runs",
  args["storm-runs"] ?? args.runs,
  0,
);
const LINES = intFlag("lines", args.lines, 1);
const LOAD = intFlag("load", args.load, 0);
const NODES = intFlag("nodes", args.nodes, 2);
const LIMIT_S = intFlag("limit", args.limit, 1);
const PARTS = new Set(args.parts.split(","));
const CONNECT_TIMEOUT = 15_000;
const SEQ = `seq 1 ${LINES}`;
const EXPECTED = NODES * LINES;

// Fail fast, before anything starts.
{
  const missing: string[] = [];
  try {
    await Deno.stat(SSHD);
  } catch {
    missing.push(`sshd (no ${SSHD}: apt-get install openssh-server)`);
  }
  if (!(await installed("pdsh"))) {
    missing.push("pdsh (apt-get install pdsh)");
  }
  for (const tool of ["/usr/bin/time", "timeout", "ssh"]) {
    if (!(await installed(tool))) missing.push(tool);
  }
  if (Deno.env.get("FIWI_LIVE") === "1") {
    missing.push("the loopback rig (unset FIWI_LIVE: this bench needs it)");
  }
  if (NODES > 252) missing.push("--nodes <= 252 (loopback addresses)");
  if (missing.length) {
    console.error(`bench:load cannot run here; missing: ${missing.join("; ")}`);
    Deno.exit(1);
  }
}

// Ctrl-C or TERM: kill the busy loops, close the masters, stop sshd.
let cli: CliRig | undefined;
let interrupted = false;
/** Aborted on Ctrl-C: a storm in flight stops its commands. */
const stopStorm = new AbortController();
/** The storm in flight, if any. */
let stormInFlight: Promise<unknown> | undefined;
const onSignal = async () => {
  if (interrupted) return;
  interrupted = true;
  console.error("interrupted: cleaning up");
  killMeasured();
  await killBusyLoops();
  // No new connection may start while sshd is stopped (its fresh sessions
  // would outlive it): end the storm first.
  stopStorm.abort();
  await Promise.race([
    stormInFlight?.catch(() => {}),
    new Promise((r) => setTimeout(r, 30_000)),
  ]);
  await controlPool.closeAll().catch(() => {});
  try {
    await cli?.[Symbol.asyncDispose]();
  } finally {
    Deno.exit(130);
  }
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

/** One measured contender run, judged. */
interface Judged extends MeasuredLines {
  /** Nodes that failed, or null when the output does not say. */
  failed: number | null;
  /** Every node ok and every line there. */
  complete: boolean;
}

/** Nodes fiwi's summary says failed (null when there is no summary). */
function fiwiFailed(stderr: string): number | null {
  const partial = /(\d+)\/(\d+) nodes ok in /.exec(stderr);
  if (partial) return Number(partial[2]) - Number(partial[1]);
  if (/^ok: /m.test(stderr)) return 0;
  return null;
}

/** Distinct hosts pdsh reported an error for (null: failed, none named). */
function pdshFailed(stderr: string, code: number): number | null {
  const hosts = new Set<string>();
  for (const m of stderr.matchAll(/^pdsh@[^:]*: ([^:\s]+): /gm)) {
    hosts.add(m[1]);
  }
  if (hosts.size === 0 && code !== 0) return null;
  return hosts.size;
}

type Contender = "fiwi (log)" | "fiwi (--no-log)" | "pdsh";
const CONTENDERS: Contender[] = ["fiwi (log)", "fiwi (--no-log)", "pdsh"];
type Condition = "idle" | "load";

async function runContender(c: CliRig, who: Contender): Promise<Judged> {
  const log = `${c.dir}/fiwi.log`;
  const nodes = `n[1-${NODES}]`;
  let script: string;
  if (who === "pdsh") {
    script = c.pdsh(`127.0.0.[1-${NODES}]`, SEQ, NODES);
  } else {
    if (args.cold) await c.closeMasters();
    const logArg = who === "fiwi (log)" ? `--log ${log}` : "--no-log";
    script = c.fiwi(
      `run --rig ${c.rigFile} -w ${quote(nodes)} ${logArg} ${quote(SEQ)}`,
    );
  }
  const m = await measureLines(script, c.env, LIMIT_S);
  if (interrupted) throw new Error("interrupted");
  // The log (and its rotations) go before the next run.
  for await (const e of Deno.readDir(c.dir)) {
    if (e.name.startsWith("fiwi.log")) {
      await Deno.remove(`${c.dir}/${e.name}`).catch(() => {});
    }
  }
  const failed = who === "pdsh"
    ? pdshFailed(m.stderr, m.code)
    : fiwiFailed(m.stderr);
  const complete = m.code === 0 && failed === 0 && m.lines === EXPECTED;
  if (!complete) {
    console.error(
      `  ! ${who}: exit ${m.code}${m.timedOut ? " (time limit)" : ""}, ` +
        `${
          failed ?? "?"
        } nodes failed, ${m.lines}/${EXPECTED} lines; stderr tail:\n` +
        m.stderr.trim().split("\n").slice(-6).map((l) => `    ${l}`).join(
          "\n",
        ),
    );
  }
  return { ...m, failed, complete };
}

async function cliCondition(
  c: CliRig,
  condition: Condition,
): Promise<Record<Contender, Judged[]>> {
  const out = { "fiwi (log)": [], "fiwi (--no-log)": [], pdsh: [] } as Record<
    Contender,
    Judged[]
  >;
  // Warm every master, as any earlier fiwi command leaves them (untimed).
  if (!args.cold) {
    await measureLines(
      c.fiwi(`run --rig ${c.rigFile} --no-log true`),
      c.env,
      LIMIT_S,
    );
  }
  for (let i = 0; i < RUNS; i++) {
    for (const who of CONTENDERS) {
      const m = await runContender(c, who);
      out[who].push(m);
      console.error(
        `  ${condition} run ${i + 1}/${RUNS} ${who}: ${m.ms.toFixed(0)} ms, ` +
          `${m.rssMb.toFixed(0)} MB, ${
            m.failed ?? "?"
          } failed, ${m.lines} lines`,
      );
    }
  }
  return out;
}

/** The 1-minute load average (`--allow-sys`; /proc needs --allow-all). */
function loadAverage(): string {
  try {
    return Deno.loadavg()[0].toFixed(1);
  } catch {
    return "?";
  }
}

/** Remove the sockets of masters that are gone; wait for closing ones. */
async function waitNoMasters(c: CliRig): Promise<number> {
  const dir = `${c.rig.dir}/cm`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    let n = 0;
    try {
      for await (const e of Deno.readDir(dir)) if (!e.isDirectory) n++;
    } catch { /* no dir: none */ }
    if (n === 0 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One storm, with fiwi's own warnings during it. */
interface StormRun extends ManagerStormResult {
  /** Masters found hung or stale and replaced, the waiting run retried. */
  replacedRetried: number;
  /** fiwi's warnings by message template. */
  warnings: Map<string, number>;
}

async function stormRuns(c: CliRig): Promise<StormRun[]> {
  const nodes = c.rig.hosts.map((_, index) =>
    c.rig.node({
      index,
      name: `n${index + 1}`,
      silent: true,
      connectTimeout: CONNECT_TIMEOUT,
    })
  );
  // fiwi logs a master it replaced (and retries the run) as a warning.
  let warnings = new Map<string, number>();
  await configure({
    sinks: {
      count: (r: LogRecord) => {
        const key = String(r.rawMessage);
        warnings.set(key, (warnings.get(key) ?? 0) + 1);
      },
    },
    loggers: [
      { category: ["fiwi"], sinks: ["count"], lowestLevel: "warning" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    reset: true,
  });
  const results: StormRun[] = [];
  try {
    for (let i = 0; i < STORM_RUNS; i++) {
      // Cold: no master of the CLI runs nor of the storm before.
      await c.closeMasters();
      await controlPool.closeAll();
      const left = await waitNoMasters(c);
      if (left > 0) console.error(`  ! ${left} control sockets still there`);
      if (interrupted) throw new Error("interrupted");
      warnings = new Map();
      const storm = managerStorm(nodes, {
        onError: "stop",
        connectTimeout: CONNECT_TIMEOUT,
        signal: stopStorm.signal,
      });
      stormInFlight = storm;
      const r = await storm;
      stormInFlight = undefined;
      if (interrupted) throw new Error("interrupted");
      await controlPool.closeAll();
      const replacedRetried = [...warnings].filter(([k]) =>
        k.includes("was replaced")
      ).reduce((n, [, v]) => n + v, 0);
      results.push({ ...r, replacedRetried, warnings });
      console.error(
        `  storm run ${i + 1}/${STORM_RUNS}: ${r.lines}/${r.expected} lines, ` +
          `${r.abnormal} abnormal stops (${r.connectTimeouts} connect timeouts, ` +
          `${r.lostMaster} gave up on a replaced master), ` +
          `${replacedRetried} masters replaced and retried, ` +
          `${(r.ms / 1000).toFixed(1)} s` +
          (r.samples.length ? `\n    ${r.samples.join("\n    ")}` : "") +
          [...warnings].map(([k, v]) => `\n    warning ×${v}: ${k}`).join(""),
      );
    }
  } finally {
    await reset();
  }
  return results;
}

const ms = (x: number) => `${Math.round(x)} ms`;

function cliTable(
  results: Partial<Record<Condition, Record<Contender, Judged[]>>>,
  loadAvg: string,
): string {
  const rows = [
    `| condition | contender | wall, median of ${RUNS} | peak RSS (max) | failed nodes (per run) | every line (${NODES} × ${LINES}) | fiwi / pdsh |`,
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const condition of ["idle", "load"] as Condition[]) {
    const r = results[condition];
    if (!r) continue;
    const pdsh = median(r.pdsh.map((m) => m.ms));
    const label = condition === "idle"
      ? "idle"
      : `${LOAD} busy loops (load avg ${loadAvg})`;
    for (const who of CONTENDERS) {
      const runs = r[who];
      const wall = median(runs.map((m) => m.ms));
      const complete = runs.filter((m) => m.complete).length;
      const minLines = Math.min(...runs.map((m) => m.lines));
      const lines = complete === runs.length
        ? `yes, ${complete}/${runs.length} runs`
        : `**no**: ${complete}/${runs.length} runs complete (fewest ${minLines})`;
      rows.push(
        `| ${label} | ${who} | ${ms(wall)} | ${
          Math.max(...runs.map((m) => m.rssMb)).toFixed(0)
        } MB | ${runs.map((m) => m.failed ?? "?").join(", ")} | ${lines} | ${
          who === "pdsh" ? "" : `**${(wall / pdsh).toFixed(2)}**`
        } |`,
      );
    }
  }
  return rows.join("\n");
}

function stormTable(rs: StormRun[], loadAvg: string): string {
  const sum = (f: (r: StormRun) => number) => rs.reduce((n, r) => n + f(r), 0);
  const other = sum((r) => r.abnormal - r.connectTimeouts - r.lostMaster);
  return [
    "| storm (cold, connectTimeout 15 s, onError stop) | runs | abnormal stops (per run) | connect timeouts | gave up: master replaced | other failures | masters replaced, run retried | lines | wall, median |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    `| ${NODES} nodes × 20 commands × ${COUNT} runs, ${LOAD} busy loops (load avg ${loadAvg}) | ${rs.length} | ${
      sum((r) => r.abnormal)
    } (${rs.map((r) => r.abnormal).join(", ")}) | ${
      sum((r) => r.connectTimeouts)
    } | ${sum((r) => r.lostMaster)} | ${Math.max(0, other)} | ${
      sum((r) => r.replacedRetried)
    } | ${rs.map((r) => `${r.lines}/${r.expected}`).join(", ")} | ${
      (median(rs.map((r) => r.ms)) / 1000).toFixed(1)
    } s |`,
  ].join("\n");
}

const t0 = performance.now();
const cliResults: Partial<Record<Condition, Record<Contender, Judged[]>>> = {};
let storm: StormRun[] = [];
let loadAvg = "?";
let stormLoadAvg = "?";
let leftOnNodes = 0;
let rigDir = "";
try {
  cli = await startCliRig(NODES);
  rigDir = cli.rig.dir;
  const c = cli;
  console.error(
    `bench:load: ${NODES} nodes, ${SEQ}, ${RUNS} runs, ${LOAD} busy loops${
      args.cold ? ", cold fiwi" : ""
    }`,
  );
  if (PARTS.has("cli")) {
    cliResults.idle = await cliCondition(c, "idle");
    cliResults.load = await underLoad(LOAD, async () => {
      const r = await cliCondition(c, "load");
      loadAvg = loadAverage();
      return r;
    });
  }
  if (PARTS.has("storm") && STORM_RUNS > 0) {
    storm = await underLoad(LOAD, async () => {
      const r = await stormRuns(c);
      stormLoadAvg = loadAverage();
      return r;
    });
    leftOnNodes = await countRemote(c.rig, "storm-");
  }
} catch (e) {
  // After Ctrl-C the signal handler cleans up and exits; wait for it.
  if (interrupted) await new Promise(() => {});
  throw e;
} finally {
  await killBusyLoops();
  await controlPool.closeAll().catch(() => {});
  await cli?.[Symbol.asyncDispose]();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
}

// What is left: our busy loops, and masters, sshd or anything else naming
// the rig's dir.
const ps = await new Deno.Command("ps", {
  args: ["-A", "-o", "pid=,args="],
  stdout: "piped",
}).output();
const loops = await busyLoopsAlive();
const leftovers = [
  ...new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    rigDir !== "" && l.includes(rigDir)
  ),
  ...loops.map((pid) => `${pid} busy loop`),
];

console.log(
  `\n\`deno task bench:load --runs ${RUNS} --lines ${LINES}\`: ${NODES} loopback nodes, \`${SEQ}\`, ` +
    `fiwi ${
      args.cold ? "cold" : "warm (masters up)"
    }, pdsh cold; ${LOAD} busy loops on ${navigator.hardwareConcurrency} cores\n`,
);
if (cliResults.idle) console.log(cliTable(cliResults, loadAvg) + "\n");
if (storm.length) console.log(stormTable(storm, stormLoadAvg) + "\n");
console.log(
  `left running: ${leftovers.length} processes (busy loops, masters, sshd)${
    leftovers.length ? `:\n${leftovers.join("\n")}` : ""
  }; storm commands left on the nodes before teardown: ${leftOnNodes}; ` +
    `total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
if (leftovers.length) Deno.exitCode = 1;
