/**
 * `fiwi run CMD`: one command on many nodes at once. Output streams as
 * `node: line` while it arrives (one write per chunk), or, with `-b`, is
 * collated after the run (nodes with identical output under one header,
 * like `dshbak -c`), or goes to one file per node and stream
 * (`--output-dir`). `--json` streams one JSON object per node as it
 * finishes, then a summary. Standard input (piped, or `--stdin FILE`) goes
 * to every node. An exit-code summary follows on stderr.
 *
 * @module
 */

import {
  collate,
  describeOutcome,
  type Line,
  runAll,
  type RunResult,
} from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import { colors, humanMs, type Output, padNames } from "./_output.ts";
import { NodeFiles, readingStdinText, stdinPayload } from "./_run_io.ts";
import { observed, resultJson } from "./_runs.ts";

const SPEC: CliSpec = {
  name: "run",
  summary: "Run one shell command on many nodes at once.",
  positional: "CMD...",
  options: [
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "most nodes running at once (default 64)",
    },
    {
      name: "collate",
      short: "b",
      help: "print identical outputs once, under their nodes (like dshbak -c)",
    },
    {
      name: "timeout",
      short: "t",
      arg: "DURATION",
      help: "stop the command on a node after DURATION (e.g. 30s)",
    },
    {
      name: "fail-fast",
      help: "stop every node as soon as one fails",
    },
    {
      name: "stdin",
      arg: "FILE",
      help: "send FILE (- for standard input) to every node's stdin",
    },
    {
      name: "no-stdin",
      help: "send nothing on stdin even when standard input is a pipe",
    },
    {
      name: "output-dir",
      short: "o",
      arg: "DIR",
      help: "write DIR/<node>.stdout and DIR/<node>.stderr instead of printing",
    },
  ],
  notes:
    "The command runs in each node's shell; quote it, or put it after --. Lines print as\n" +
    '"node: line" (stderr lines on stderr); the summary of exit codes goes to stderr.\n' +
    "Standard input, unless it is a terminal, goes to every node (as with --stdin -);\n" +
    "--no-stdin (or < /dev/null) sends none. --json prints one object per node as it finishes,\n" +
    "then a summary object.",
  examples: [
    "fiwi run uptime",
    "fiwi run --nodes @duts -b -- cat /etc/os-release",
    "fiwi run --rig lab.yaml --nodes 'dut[1-4]' --fanout 2 'iw dev wlan0 link'",
    "fiwi run -w @duts 'cat > /tmp/fw.bin' < fw.bin",
    "fiwi run --output-dir out/ 'journalctl -b --no-pager'",
  ],
};

/** What a node's result says beyond its status: background processes killed. */
function printNotices(results: RunResult[], out: Output): void {
  for (const r of results) {
    if (r.notice) out.err(`${r.node}: ${r.notice}`);
  }
}

function summarize(results: RunResult[], out: Output, wallMs: number): void {
  printNotices(results, out);
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = describeOutcome(r).key;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const ok = results.filter((r) => r.success).length;
  if (ok === results.length) {
    out.err(
      `${out.paint(colors.green, "ok", "stderr")}: ${
        formatNodeList(results.map((r) => r.node))
      } (exit 0, ${humanMs(wallMs)})`,
      `ok: ${formatNodeList(results.map((r) => r.node))} (exit 0, ${
        humanMs(wallMs)
      })`,
    );
    return;
  }
  for (const [key, rs] of groups) {
    const names = formatNodeList(rs.map((r) => r.node));
    const good = rs[0].success;
    const label = good ? key : out.paint(colors.red, key, "stderr");
    out.err(`${label}: ${names}`, `${key}: ${names}`);
    if (!good) {
      for (const r of rs) {
        if (r.error) out.err(`  ${r.error.message}`);
      }
    }
  }
  out.err(
    `${ok}/${results.length} nodes ok in ${humanMs(wallMs)}`,
  );
}

function printCollated(results: RunResult[], out: Output): void {
  for (const group of collate(results)) {
    const bar = "-".repeat(Math.max(16, Math.min(72, group.label.length)));
    out.out(bar);
    out.out(out.paint(colors.bold, group.label), group.label);
    out.out(bar);
    const text = group.output.endsWith("\n")
      ? group.output.slice(0, -1)
      : group.output;
    if (text !== "") { for (const line of text.split("\n")) out.out(line); }
  }
}

/** The JSON summary record that ends `--json` output. */
function summaryJson(
  results: RunResult[],
  wallMs: number,
  interrupted: boolean,
  nodes = results.length,
): Record<string, unknown> {
  const outcomes: Record<string, string[]> = {};
  for (const r of results) {
    (outcomes[describeOutcome(r).key] ??= []).push(r.node);
  }
  const ok = results.filter((r) => r.success).length;
  return {
    summary: {
      nodes,
      ok,
      failed: results.length - ok,
      interrupted,
      outcomes,
      durationMs: Math.round(wallMs),
    },
  };
}

/** `node: line` to the terminal, the prefix built once per node. */
function prefixedLines(out: Output, names: string[]): (line: Line) => void {
  const pad = padNames(names.map((name) => ({ name })));
  const prefixes = new Map<string, { out: string; err: string; plain: string }>(
    names.map((n) => {
      const plain = `${pad(n)}: `;
      return [n, {
        out: `${out.paint(colors.cyan, pad(n), "stdout")}: `,
        err: `${out.paint(colors.cyan, pad(n), "stderr")}: `,
        plain,
      }];
    }),
  );
  return (line) => {
    const p = prefixes.get(line.node)!;
    if (line.stream === "stdout") {
      out.out(p.out + line.text, p.plain + line.text);
    } else out.err(p.err + line.text, p.plain + line.text);
  };
}

/**
 * The stdin payload, with "reading standard input" on the progress line
 * while it is read; null when a signal stopped the read.
 */
async function readStdin(
  ctx: CliContext,
  total: number,
): Promise<Uint8Array | undefined | null> {
  const { flags, out, interrupt } = ctx;
  try {
    return await stdinPayload(flags.stdin as string | undefined, {
      skipStdin: flags["no-stdin"] === true,
      signal: interrupt,
      onStdin: (terminal) =>
        out.progress(0, 0, total, readingStdinText(terminal)),
    });
  } catch (e) {
    if (interrupt.aborted) return null;
    throw e;
  } finally {
    out.clearProgress();
  }
}

/** A signal during the stdin read: nothing ran anywhere. */
function interruptedReading(ctx: CliContext, total: number): number {
  const { out, json, interrupt } = ctx;
  const why = `Interrupted by ${
    interrupt.signalName ?? "a signal"
  } while reading standard input: nothing was run`;
  if (json) {
    out.out(JSON.stringify(summaryJson([], 0, true, total)));
  }
  out.err(why);
  return interrupt.exitCode ?? 130;
}

async function run(ctx: CliContext): Promise<number> {
  const { flags, out, json, interrupt } = ctx;
  const cmd = ctx.rest.join(" ");
  if (cmd.trim() === "") {
    throw new UsageError(
      "No command given: fiwi run [options] CMD (see --help)",
    );
  }
  const fanout = intFlag(flags, "fanout", 1);
  const cmdTimeout = durationFlag(flags, "timeout");
  const collated = flags.collate === true;
  const files = flags["output-dir"] !== undefined
    ? new NodeFiles(String(flags["output-dir"]))
    : null;
  if (flags.stdin !== undefined && flags["no-stdin"]) {
    throw new UsageError(
      'Give either "--stdin FILE" or "--no-stdin", not both',
    );
  }
  // Nodes first: a bad pattern fails before anything waits on stdin.
  const { nodes } = await ctx.selectNodes();
  const stdin = await readStdin(ctx, nodes.length);
  if (stdin === null) return interruptedReading(ctx, nodes.length);
  await files?.create(nodes.map((n) => n.name));
  const onLine = files
    ? (line: Line) => files.line(line)
    : json || collated
    ? undefined
    : prefixedLines(out, nodes.map((n) => n.name));
  let done = 0;
  let failed = 0;
  const started = performance.now();
  let results: RunResult[];
  try {
    out.progress(0, 0, nodes.length);
    results = await runAll(
      nodes.map((n) =>
        observed(n, (r) => {
          done++;
          if (!r.success) failed++;
          if (json) out.out(JSON.stringify(resultJson(r)));
          out.progress(done, failed, nodes.length);
        })
      ),
      cmd,
      {
        concurrency: fanout,
        failFast: flags["fail-fast"] === true,
        cmdTimeout,
        signal: interrupt,
        stdin,
        // Streamed lines need no copy; --json and -b print the kept output.
        ...(json || collated ? {} : { maxOutput: 0 }),
        onLine,
      },
    );
  } finally {
    out.clearProgress();
    files?.close();
  }
  const wall = performance.now() - started;
  if (json) {
    out.out(JSON.stringify(summaryJson(results, wall, interrupt.aborted)));
  } else {
    if (collated) printCollated(results, out);
    summarize(results, out, wall);
  }
  if (interrupt.aborted) {
    // The clients are gone; on each node the lifeline ends the group within
    // about a second more (TERM, then KILL), which fiwi does not wait for.
    out.err(
      "Interrupted: every client was stopped; each node ends what is left of its command within 2 s",
    );
    return interrupt.exitCode ?? 130;
  }
  return results.every((r) => r.success) ? 0 : 1;
}

/** `fiwi run`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, run);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
