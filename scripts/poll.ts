/**
 * `fiwi poll CMD`: run a command on many nodes again and again, on the
 * library's drift-free grid ({@linkcode scheduleTicks}). Tick k is due at
 * `t0 + k·interval` on the monotonic clock, so the period does not drift
 * with the commands' duration; every node is fired at the same instant; a
 * tick that is still running when the next is due makes that one wait for
 * the next grid point (counted as skipped). Ctrl-C stops the
 * running commands on every node (counted as interrupted), prints the
 * summary and exits 130.
 *
 * @module
 */

import {
  describeOutcome,
  runAll,
  type RunResult,
  scheduleTicks,
  type SshNode,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import { colors, formatTable, isoLocal, padNames } from "./_output.ts";
import { observed, resultJson } from "./_runs.ts";

const SPEC: CliSpec = {
  name: "poll",
  summary:
    "Run a command on many nodes every INTERVAL, all nodes at the same instant.",
  positional: "CMD...",
  options: [
    {
      name: "interval",
      short: "i",
      arg: "DURATION",
      help: "time between ticks (default 2s)",
    },
    {
      name: "count",
      short: "n",
      arg: "N",
      help: "stop after N ticks (default: until Ctrl-C)",
    },
    {
      name: "timeout",
      short: "t",
      arg: "DURATION",
      help: "stop a command on a node after DURATION",
    },
  ],
  notes:
    'Each tick prints a timestamped header, then "node: line" as output arrives.\n' +
    "With --json, one JSON object per line: each run, then a summary.\n" +
    "Ctrl-C stops the commands on every node (counted as interrupted), prints the\n" +
    "summary and exits 130.",
  examples: [
    "fiwi poll --interval 5s uptime",
    "fiwi poll --nodes @duts --interval 1s --count 10 'cat /proc/loadavg'",
  ],
};

/** Per node: runs, successes, and how the failures ended. */
interface NodeTally {
  runs: number;
  ok: number;
  failures: Map<string, number>;
  interrupted: number;
}

/** What a poll has done so far. */
class PollTally {
  ticks = 0;
  skipped = 0;
  interrupted = 0;
  readonly nodes: Map<string, NodeTally>;

  constructor(names: string[]) {
    this.nodes = new Map(
      names.map((
        n,
      ) => [n, { runs: 0, ok: 0, failures: new Map(), interrupted: 0 }]),
    );
  }

  get runs(): number {
    return [...this.nodes.values()].reduce((s, t) => s + t.runs, 0);
  }

  get ok(): number {
    return [...this.nodes.values()].reduce((s, t) => s + t.ok, 0);
  }

  /** Count one run; a run stopped by Ctrl-C is interrupted, not failed. */
  add(r: RunResult): void {
    const t = this.nodes.get(r.node)!;
    if (r.aborted) {
      this.interrupted++;
      t.interrupted++;
      return;
    }
    t.runs++;
    if (r.success) t.ok++;
    else {
      const why = describeOutcome(r).key;
      t.failures.set(why, (t.failures.get(why) ?? 0) + 1);
    }
  }
}

/** What every tick needs. */
interface TickSetup {
  ctx: CliContext;
  nodes: SshNode[];
  cmd: string;
  cmdTimeout?: number;
  pad: (name: string) => string;
}

/** Fire every node once; prints the tick's header, lines and failures. */
async function runTick(s: TickSetup, tally: PollTally): Promise<void> {
  const { out, json, interrupt } = s.ctx;
  const tick = ++tally.ticks;
  const at = isoLocal(Date.now());
  if (!json) {
    out.out(
      out.paint(colors.bold, `--- tick ${tick} ${at}`),
      `--- tick ${tick} ${at}`,
    );
  }
  let done = 0;
  let failed = 0;
  const results: RunResult[] = await runAll(
    s.nodes.map((n) =>
      observed(n, (r) => {
        done++;
        if (!r.success && !r.aborted) failed++;
        out.progress(done, failed, s.nodes.length, `tick ${tick}`);
      })
    ),
    s.cmd,
    {
      // Every node at the same instant: no queueing inside a tick.
      concurrency: s.nodes.length,
      cmdTimeout: s.cmdTimeout,
      // The next tick is the retry: a tick must not stretch.
      retry: false,
      signal: interrupt,
      onLine: json ? undefined : (line) => {
        const prefix = s.pad(line.node);
        const shown = `${
          out.paint(colors.cyan, prefix, line.stream)
        }: ${line.text}`;
        if (line.stream === "stdout") {
          out.out(shown, `${prefix}: ${line.text}`);
        } else out.err(shown, `${prefix}: ${line.text}`);
      },
    },
  );
  out.clearProgress();
  for (const r of results) {
    tally.add(r);
    if (json) out.out(JSON.stringify({ tick, at, ...resultJson(r) }));
    else if (!r.success && !r.aborted) {
      const why = describeOutcome(r).key;
      out.err(
        `${s.pad(r.node)}: ${out.paint(colors.red, why, "stderr")}${
          r.error ? ` (${r.error.message})` : ""
        }`,
        `${s.pad(r.node)}: ${why}`,
      );
    }
  }
}

/** The summary: a JSON record, or a line and a table per node on stderr. */
function printSummary(
  ctx: CliContext,
  tally: PollTally,
  elapsed: number,
): void {
  const { out, json, interrupt } = ctx;
  const { ticks, skipped, interrupted, runs, ok } = tally;
  if (json) {
    out.out(JSON.stringify({
      summary: {
        ticks,
        skipped,
        interrupted: interrupt.aborted,
        interruptedRuns: interrupted,
        runs,
        ok,
        failed: runs - ok,
        elapsedMs: Math.round(elapsed),
        nodes: Object.fromEntries(
          [...tally.nodes].map(([name, t]) => [name, {
            runs: t.runs,
            ok: t.ok,
            interrupted: t.interrupted,
            failures: Object.fromEntries(t.failures),
          }]),
        ),
      },
    }));
    return;
  }
  out.err(
    `${interrupt.aborted ? "Interrupted after" : "Done:"} ${ticks} tick${
      ticks === 1 ? "" : "s"
    } in ${(elapsed / 1000).toFixed(1)} s, ${ok}/${runs + interrupted} runs ok${
      interrupted ? `, ${interrupted} interrupted` : ""
    }${skipped ? `, ${skipped} ticks skipped (overrun)` : ""}`,
  );
  const rows = [["  NODE", "RUNS", "OK", "FAILED"]];
  for (const [name, t] of tally.nodes) {
    const failures = [...t.failures].map(([why, n]) => `${n}× ${why}`)
      .join(", ");
    rows.push([`  ${name}`, String(t.runs), String(t.ok), failures || "0"]);
  }
  for (const line of formatTable(rows)) out.err(line);
}

async function poll(ctx: CliContext): Promise<number> {
  const { flags, out, interrupt } = ctx;
  const cmd = ctx.rest.join(" ");
  if (cmd.trim() === "") {
    throw new UsageError(
      "No command given: fiwi poll [options] CMD (see --help)",
    );
  }
  const interval = durationFlag(flags, "interval") ?? 2000;
  if (interval <= 0) {
    throw new UsageError(
      `Invalid --interval "${flags.interval}": give a duration above 0`,
    );
  }
  const count = intFlag(flags, "count", 1);
  const cmdTimeout = durationFlag(flags, "timeout");
  const { nodes } = await ctx.selectNodes();
  const setup = { ctx, nodes, cmd, cmdTimeout, pad: padNames(nodes) };
  const tally = new PollTally(nodes.map((n) => n.name));
  const t0 = performance.now();
  try {
    const ticks = scheduleTicks({
      interval,
      count,
      start: t0,
      signal: interrupt,
    });
    for await (const tick of ticks) {
      // Grid points a slow tick overran are skipped, not fired late.
      tally.skipped += tick.skipped;
      await runTick(setup, tally);
    }
  } finally {
    out.clearProgress();
  }
  printSummary(ctx, tally, performance.now() - t0);
  if (interrupt.aborted) return interrupt.exitCode ?? 130;
  return tally.ok === tally.runs ? 0 : 1;
}

/** `fiwi poll`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, poll);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
