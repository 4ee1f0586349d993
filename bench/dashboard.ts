/**
 * What `fiwi dashboard` costs and how fast its page follows, in one run, on
 * the 64-node loopback rig of `_cli_rig.ts`, with headless Chromium
 * (tests/_browser.ts) on the page:
 *
 * 1. **Latency**: a `fiwi poll -i 1s` of `date +%N` on all 64 nodes, in its
 *    own process, for `--ticks` ticks. For every sample: from when its row
 *    first became visible to a reader of the store (tests/_sample_watch.ts,
 *    every 20 ms) to the page's redraw that first includes it (the chart's
 *    `data-last-row` reaching its rowId, seen by a MutationObserver in the
 *    page); p50, p99, max. The poll's own summary line says whether it kept
 *    its period.
 * 2. **Load**: the dashboard process's CPU (utime+stime from
 *    /proc/PID/stat, % of one core) while idle (its own probes only) and
 *    during the poll, also with the ssh clients of its probes it reaped
 *    (cutime+cstime); its peak RSS (VmHWM) at the end.
 * 3. **Speed**: 24 h of 64 series at 10 s (552,960 samples of one poll
 *    command) written straight into a fresh store through `StateStore`; a
 *    second dashboard on it with `--history 25h`; the page's time from
 *    navigation start to the chart showing every point (`data-points` =
 *    552,960 with `body[data-history]`), `--loads` times in fresh tabs.
 *
 *   deno task bench:dashboard [--nodes 64] [--ticks 60] [--idle 20]
 *     [--hours 24] [--step 10] [--loads 3] [--parts live,draw]
 *
 * Prints a Markdown table ready for README.md, then what was left running
 * (must be nothing).
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { type SampleRecord, StateStore } from "../mod.ts";
import {
  type Browser,
  browserSkipReason,
  chromiumMissing,
  launchBrowser,
  waitInPage,
} from "../tests/_browser.ts";
import * as page from "../tests/_dashboard_page.ts";
import { countCarrying, SSHD } from "../tests/_loopback.ts";
import { watchSamples } from "../tests/_sample_watch.ts";
import { type CliRig, startCliRig } from "./_cli_rig.ts";
import { intFlag, median } from "./_measure.ts";
import {
  clockTicks,
  cpuPercent,
  percentile,
  poll,
  procSample,
  startDashboard,
} from "./_dashboard_procs.ts";

const args = parseArgs(Deno.args, {
  string: ["nodes", "ticks", "idle", "hours", "step", "loads", "parts"],
  boolean: ["help"],
  default: {
    nodes: "64",
    ticks: "60",
    idle: "20",
    hours: "24",
    step: "10",
    loads: "3",
    parts: "live,draw",
  },
});
if (args.help) {
  console.log(
    "deno task bench:dashboard [--nodes N] [--ticks N] [--idle SECONDS]\n" +
      "  [--hours N] [--step SECONDS] [--loads N] [--parts live,draw]",
  );
  Deno.exit(0);
}
const NODES = intFlag("nodes", args.nodes, 2);
const TICKS = intFlag("ticks", args.ticks, 1);
const IDLE_S = intFlag("idle", args.idle, 1);
const HOURS = intFlag("hours", args.hours, 1);
const STEP_S = intFlag("step", args.step, 1);
const LOADS = intFlag("loads", args.loads, 1);
const PARTS = new Set(args.parts.split(","));
/** The poll of part 1, and the command of part 3's history. */
const LIVE_CMD = "date +%N";
const HISTORY_CMD = "cat /sys/class/thermal/thermal_zone0/temp";

// Fail fast, before anything starts.
{
  const missing: string[] = [];
  try {
    await Deno.stat(SSHD);
  } catch {
    missing.push(`sshd (no ${SSHD}: apt-get install openssh-server)`);
  }
  const chromium = chromiumMissing();
  if (chromium !== null || browserSkipReason() !== null) {
    missing.push(chromium ?? "chromium");
  }
  if (Deno.env.get("FIWI_LIVE") === "1") {
    missing.push("the loopback rig (unset FIWI_LIVE: this bench needs it)");
  }
  if (NODES > 252) missing.push("--nodes <= 252 (loopback addresses)");
  if (missing.length) {
    console.error(
      `bench:dashboard cannot run here; missing: ${missing.join("; ")}`,
    );
    Deno.exit(1);
  }
}

/** Everything started here, stopped on the way out (also on Ctrl-C). */
const cleanup = new AsyncDisposableStack();

// ---------------------------------------------------------------------------
// The parts.

/** What part 1 and 2 measured. */
interface Live {
  latencies: number[];
  neverDrawn: number;
  /** The poll's own summary line. */
  summary: string;
  /** The 1-minute load average when the poll ended. */
  loadAvg: number;
  samples: number;
  idle: { own: number; all: number };
  busy: { own: number; all: number };
  peakMb: number;
}

async function livePart(c: CliRig, browser: Browser): Promise<Live> {
  const stateHome = `${c.dir}/state`;
  await Deno.mkdir(`${stateHome}/fiwi`, { recursive: true, mode: 0o700 });
  const env = { ...c.env, XDG_STATE_HOME: stateHome };
  const dashboard = await startDashboard(c, env, [], cleanup);
  const hz = await clockTicks();
  const tab = await browser.newPage();
  await tab.goto(dashboard.url, { timeout: 60_000 });
  await waitInPage(tab, "the page ready", page.ready, null);
  // Every node probed up once: the dashboard is in its steady state.
  await waitInPage(
    tab,
    `${c.nodes} tiles up`,
    page.tilesAll,
    [
      c.nodes,
      "up",
    ] as const,
    { timeout: 60_000, polling: 250 },
  );
  if (!await tab.evaluate(page.observeDraws)) {
    throw new Error("the page has no #charts");
  }
  console.error(`  idle ${IDLE_S} s (the dashboard's probes only)`);
  const idle0 = await procSample(dashboard.child.pid);
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const idle1 = await procSample(dashboard.child.pid);
  console.error(`  fiwi poll -i 1s --count ${TICKS} on ${c.nodes} nodes`);
  const db = `${stateHome}/fiwi/state.db`;
  await using watch = await watchSamples(db);
  const busy0 = await procSample(dashboard.child.pid);
  const summary = await poll(c, env, TICKS, LIVE_CMD);
  const loadAvg = Deno.loadavg()[0];
  console.error(`  ${summary} (load average ${loadAvg.toFixed(1)})`);
  // The last tick's points: the page has them within a second or so.
  let samples: SampleRecord[];
  {
    await using store = await StateStore.open(db);
    samples = store.samples({ command: LIVE_CMD });
  }
  const newest = Math.max(...samples.map((s) => s.rowId));
  await watch.seen(newest);
  await waitInPage(
    tab,
    "the poll's last points drawn",
    page.drawnUpTo,
    [LIVE_CMD, newest] as const,
  ).catch((e) => console.error(`  ! ${e.message.split("\n")[0]}`));
  const busy1 = await procSample(dashboard.child.pid);
  const draws = (await tab.evaluate(page.draws))
    .filter((d) => d.chart === LIVE_CMD).sort((a, b) => a.lastRow - b.lastRow);
  const latencies: number[] = [];
  let neverDrawn = 0;
  for (const s of samples) {
    const drawn = draws.find((d) => d.lastRow >= s.rowId);
    if (drawn) latencies.push(drawn.at - watch.seenAt.get(s.rowId)!);
    else neverDrawn++;
  }
  await tab.close();
  await dashboard.stop();
  return {
    latencies,
    neverDrawn,
    summary,
    loadAvg,
    samples: samples.length,
    idle: cpuPercent(idle0, idle1, hz),
    busy: cpuPercent(busy0, busy1, hz),
    peakMb: busy1.peakKb / 1024,
  };
}

/** What part 3 measured. */
interface Draw {
  samples: number;
  writeMs: number;
  loadsMs: number[];
  /** When the last history response ended, per load. */
  fetchMs: number[];
  peakMb: number;
}

/** Write `HOURS` of `nodes` series at `STEP_S` into a fresh store at `db`. */
async function writeHistory(db: string, nodes: number): Promise<number> {
  await using store = await StateStore.open(db);
  const steps = HOURS * 3600 / STEP_S;
  const end = Date.now();
  const start = end - (steps - 1) * STEP_S * 1000;
  const id = "benchhistory";
  store.startInvocation({
    id,
    subcommand: "poll",
    command: HISTORY_CMD,
    nodes: `n[1-${nodes}]`,
    user: "bench@localhost",
    startedAt: new Date(start),
  });
  let n = 0;
  for (let tick = 1; tick <= steps; tick++) {
    const at = new Date(start + (tick - 1) * STEP_S * 1000);
    for (let i = 1; i <= nodes; i++) {
      // A temperature in millidegrees: a daily wave, an offset per node.
      const value = Math.round(
        45_000 + 8_000 * Math.sin(tick / steps * 2 * Math.PI + i / 10) +
          500 * ((tick * 7919 + i * 104729) % 13) / 13,
      );
      store.recordSample({
        invocationId: id,
        node: `n${i}`,
        command: HISTORY_CMD,
        tick,
        at,
        output: String(value),
        value,
      });
      // The store holds a bounded queue: write it out as it fills.
      if (++n % 50_000 === 0) await store.flush();
    }
  }
  store.endInvocation(id, 0, new Date(end));
  await store.flush();
  if (store.dropped > 0) {
    throw new Error(`the store dropped ${store.dropped} of ${n} samples`);
  }
  return n;
}

async function drawPart(c: CliRig, browser: Browser): Promise<Draw> {
  const dir = `${c.dir}/history`;
  await Deno.mkdir(dir, { mode: 0o700 });
  const db = `${dir}/state.db`;
  const t0 = performance.now();
  const samples = await writeHistory(db, c.nodes);
  const writeMs = performance.now() - t0;
  console.error(
    `  ${samples} samples written in ${(writeMs / 1000).toFixed(1)} s`,
  );
  const env = { ...c.env, XDG_STATE_HOME: dir };
  const dashboard = await startDashboard(c, env, [
    "--db",
    db,
    "--history",
    `${HOURS + 1}h`,
  ], cleanup);
  const loadsMs: number[] = [];
  const fetchMs: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const tab = await browser.newPage();
    await tab.goto(dashboard.url, { timeout: 60_000 });
    const ms = await waitInPage(
      tab,
      `all ${samples} points drawn`,
      page.historyDrawn,
      [HISTORY_CMD, samples] as const,
      { timeout: 180_000 },
    );
    const fetched = await tab.evaluate(page.historyFetch);
    loadsMs.push(ms);
    fetchMs.push(fetched.lastResponseEnd);
    console.error(
      `  load ${i + 1}/${LOADS}: ${
        Math.round(ms)
      } ms; its ${fetched.requests} ` +
        `history requests (${(fetched.bytes / 2 ** 20).toFixed(1)} MiB) ` +
        `done at ${Math.round(fetched.lastResponseEnd)} ms`,
    );
    await tab.close();
  }
  const peakMb = (await procSample(dashboard.child.pid)).peakKb / 1024;
  await dashboard.stop();
  return { samples, writeMs, loadsMs, fetchMs, peakMb };
}

// ---------------------------------------------------------------------------

let interrupted = false;
const onSignal = async () => {
  if (interrupted) return;
  interrupted = true;
  console.error("interrupted: cleaning up");
  try {
    await cleanup.disposeAsync();
  } finally {
    Deno.exit(130);
  }
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

const t0 = performance.now();
let live: Live | undefined;
let draw: Draw | undefined;
let dirs: string[] = [];
let browserMarker = "";
try {
  const c = cleanup.use(await startCliRig(NODES));
  dirs = [c.rig.dir, c.dir];
  const browser = cleanup.use(
    await launchBrowser({ width: 1400, height: 900 }),
  );
  browserMarker = browser.marker;
  console.error(`bench:dashboard: ${NODES} loopback nodes`);
  if (PARTS.has("live")) live = await livePart(c, browser);
  if (PARTS.has("draw")) draw = await drawPart(c, browser);
} catch (e) {
  if (interrupted) await new Promise(() => {});
  throw e;
} finally {
  await cleanup.disposeAsync();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
}

const ps = await new Deno.Command("ps", {
  args: ["-A", "-o", "pid=,args="],
  stdout: "piped",
}).output();
// The rig's dir names sshd and the masters; the bench's dir every fiwi.
const leftovers = new TextDecoder().decode(ps.stdout).split("\n")
  .filter((l) => dirs.some((d) => l.includes(d)));
const browserLeft = browserMarker ? await countCarrying(browserMarker) : 0;

const ms = (x: number) => `${Math.round(x)} ms`;
const pct = (x: number) => `${x.toFixed(1)} %`;
const rows = [
  "| measure | result | target |",
  "| --- | --- | --- |",
];
if (live) {
  const l = live.latencies;
  rows.push(
    `| poll sample recorded → its point in the page (${NODES} nodes, 1 s poll, ${live.samples} samples; poll: "${live.summary}", load average ${
      live.loadAvg.toFixed(1)
    }) | p50 **${ms(percentile(l, 50))}**, p99 **${
      ms(percentile(l, 99))
    }**, max ${ms(Math.max(...l))}${
      live.neverDrawn ? `, **${live.neverDrawn} never drawn**` : ""
    } | p99 ≤ 250 ms |`,
    `| dashboard CPU during the poll (own; with its probes' ssh) | **${
      pct(live.busy.own)
    }**; ${pct(live.busy.all)} of one core | ≤ 5 % |`,
    `| dashboard CPU idle, probes only (own; with ssh) | ${
      pct(live.idle.own)
    }; ${pct(live.idle.all)} of one core | |`,
    `| dashboard peak RSS (VmHWM) | **${
      live.peakMb.toFixed(0)
    } MB** | ≤ 150 MB |`,
  );
}
if (draw) {
  rows.push(
    `| page's first full draw of ${HOURS} h × ${NODES} series at ${STEP_S} s (${draw.samples} points), navigation start → every point drawn, median of ${LOADS} loads | **${
      ms(median(draw.loadsMs))
    }** (${draw.loadsMs.map(ms).join(", ")}); its history fetched by ${
      ms(median(draw.fetchMs))
    } | |`,
    `| dashboard peak RSS serving that history | ${
      draw.peakMb.toFixed(0)
    } MB | |`,
  );
}
console.log(
  `\n\`deno task bench:dashboard\`: ${NODES} loopback nodes, headless Chromium, ${navigator.hardwareConcurrency} cores\n`,
);
console.log(rows.join("\n") + "\n");
console.log(
  `left running: ${leftovers.length} processes naming the rig or the bench's dir, ${browserLeft} of the browser${
    leftovers.length ? `:\n${leftovers.join("\n")}` : ""
  }; total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
if (leftovers.length || browserLeft) Deno.exitCode = 1;
