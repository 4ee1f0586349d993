/**
 * `fiwi poll CMD`: run a command on many nodes again and again, on the
 * library's drift-free grid ({@linkcode scheduleTicks}). Tick k is due at
 * `t0 + k·interval` on the monotonic clock, so the period does not drift
 * with the commands' duration; every node is fired at the same instant; a
 * tick that is still running when the next is due makes that one wait for
 * the next grid point (counted as skipped). Ctrl-C stops the
 * running commands on every node (counted as interrupted), prints the
 * summary and exits 130. Each node's command has its `{key}` values
 * filled in once, before the first tick ({@linkcode expandNodeValuesAll});
 * `_poll_output.ts` prints the runs (lines, `--json`, `--csv`, `--table`),
 * in node-set order within a tick.
 *
 * @module
 */

import {
  describeOutcome,
  expandNodeValuesAll,
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
import { LEASE_NOTE, LEASE_OPTION } from "./_lease.ts";
import { formatTable, isoLocal, type Output, padNames } from "./_output.ts";
import {
  cellWidth,
  csvPrinter,
  InOrder,
  jsonPrinter,
  linesPrinter,
  type PollPrinter,
  stdoutColumns,
  tablePrinter,
} from "./_poll_output.ts";
import { observed } from "./_runs.ts";
import { VALUE_OPTION, valuePattern } from "./_state.ts";

export const SPEC: CliSpec = {
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
      short: "u",
      arg: "DURATION",
      help: "stop a command on a node after DURATION (as pdsh -u)",
    },
    {
      name: "table",
      help: "a row per tick, a column per node (fitted to the terminal)",
    },
    {
      name: "csv",
      help: "CSV records tick,time,node,code,value (RFC 4180)",
    },
    VALUE_OPTION,
    LEASE_OPTION,
  ],
  notes:
    'Each tick prints a timestamped header, then "node: line". Within a tick nodes\n' +
    "print in node-set order: the first node's lines stream, a later node's are\n" +
    "held until the nodes before it have ended.\n" +
    "--table: one row per tick, one column per node, each value on one line and\n" +
    "cut to the column's width (the terminal's width shared out; 80 columns off a\n" +
    "terminal); a failed run shows how it ended (exit 1, command timeout,\n" +
    "unreachable).\n" +
    "--csv: a header, then one record per run: the tick, its time (ISO 8601), the\n" +
    "node, the exit code (empty when there is none) and stdout without its final\n" +
    "line break; fields quoted as RFC 4180 says, lines end in CRLF. --json: one\n" +
    "JSON object per line, each run then a summary (else the summary is on stderr).\n" +
    "Per-node values: {name} {host} {user} {device} {devip} and the node's vars:\n" +
    "from the rig file are replaced in CMD, shell-quoted; other braces are the\n" +
    "shell's (awk '{print $1}'), {{name}} is the text {name}. An unknown key stops\n" +
    "poll before anything runs.\n" +
    "Ctrl-C stops the commands on every node (counted as interrupted), prints the\n" +
    "summary and exits 130.\n" +
    LEASE_NOTE,
  examples: [
    "fiwi poll --interval 5s uptime",
    "fiwi poll -w @duts -i 1s -n 10 -u 2s 'cat /proc/loadavg'",
    "fiwi poll -w @duts -i 1s --table \"cut -d' ' -f1 /proc/loadavg\"",
    "fiwi poll -w @duts -n 60 --csv 'cat /sys/class/thermal/thermal_zone0/temp' > temp.csv",
    "fiwi poll -w @duts 'ping -c1 -W1 {devip} >/dev/null && echo {name} up'",
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
  /** Each node's command, its values filled in. */
  commands: Map<string, string>;
  cmdTimeout?: number;
  printer: PollPrinter;
  /** The command as given, and what picks a sample's value (`--value`). */
  record: { command: string; value?: RegExp };
}

/** Fire every node once; the printer gets each node's lines and end in node order. */
async function runTick(s: TickSetup, tally: PollTally): Promise<void> {
  const { out, interrupt } = s.ctx;
  const { printer } = s;
  const tick = ++tally.ticks;
  printer.tick(tick, isoLocal(Date.now()));
  const order = new InOrder(s.nodes.map((n) => n.name));
  let done = 0;
  let failed = 0;
  const results: RunResult[] = await runAll(
    s.nodes.map((n) =>
      observed(n, (r) => {
        s.ctx.state?.sample(r, tick, s.record.command, s.record.value);
        done++;
        if (!r.success && !r.aborted) failed++;
        out.progress(done, failed, s.nodes.length, `tick ${tick}`);
        order.end(r.node, () => printer.result(r));
      })
    ),
    (n) => s.commands.get(n.name)!,
    {
      // Every node at the same instant: no queueing inside a tick.
      concurrency: s.nodes.length,
      cmdTimeout: s.cmdTimeout,
      // The next tick is the retry, so a tick does not stretch, unless
      // --retries asks for retries (the nodes carry them).
      ...(s.ctx.flags.retries === undefined ? { retry: false as const } : {}),
      signal: interrupt,
      onLine: printer.line &&
        ((line) => order.emit(line.node, () => printer.line!(line))),
    },
  );
  // A node an interrupt kept from starting never reported its end.
  for (const r of results) {
    if (!order.hasEnded(r.node)) order.end(r.node, () => printer.result(r));
  }
  out.clearProgress();
  printer.tickDone();
  for (const r of results) tally.add(r);
}

type Mode = "json" | "table" | "csv" | "lines";

/** The output the flags ask for: at most one of --json, --table, --csv. */
function outputMode(flags: CliContext["flags"]): Mode {
  const modes = (["json", "table", "csv"] as const).filter((m) => flags[m]);
  if (modes.length > 1) {
    throw new UsageError(
      `Give one of --json, --table and --csv, not ${
        modes.map((m) => `--${m}`).join(" and ")
      }`,
    );
  }
  return modes[0] ?? "lines";
}

/** The printer of `mode` for these nodes. */
function printerFor(mode: Mode, out: Output, nodes: SshNode[]): PollPrinter {
  const names = nodes.map((n) => n.name);
  switch (mode) {
    case "json":
      return jsonPrinter(out);
    case "table":
      return tablePrinter(out, names, cellWidth(names.length, stdoutColumns()));
    case "csv":
      return csvPrinter(out, padNames(nodes));
    case "lines":
      return linesPrinter(out, padNames(nodes));
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
  const mode = outputMode(flags);
  const record = { command: cmd, value: valuePattern(flags) };
  const { nodes } = await ctx.selectNodes({
    hold: durationFlag(flags, "lease"),
  });
  const printer = printerFor(mode, out, nodes);
  // Every node's command before the first tick: a bad key stops poll here.
  const expanded = expandNodeValuesAll(cmd, nodes);
  const commands = new Map(nodes.map((n, i) => [n.name, expanded[i]]));
  const setup = { ctx, nodes, commands, cmdTimeout, printer, record };
  const tally = new PollTally(nodes.map((n) => n.name));
  printer.start();
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
