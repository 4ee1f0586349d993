/**
 * `fiwi run CMD`: one command on many nodes at once. Output streams as
 * `node: line` while it arrives (one write per chunk; `-N` drops the
 * prefix), or, with `-b`, is collated after the run by the library's
 * `formatGroups` (nodes with identical output under one header, like
 * `dshbak -c`), or, with `--diff`, shown as the library's `diffGroups`
 * (each output against the most common one, like `clush --diff`), or goes
 * to one file per node and stream (`--output-dir`). `--json` streams one
 * JSON object per node as it finishes, then a summary. Standard input
 * (piped, or `--stdin FILE`) goes to every node. An exit-code summary
 * follows on stderr; `-S` exits with the largest remote exit code.
 *
 * @module
 */

import {
  collate,
  describeOutcome,
  diffGroups,
  expandNodeValuesAll,
  formatGroups,
  type Line,
  runAll,
  type RunResult,
  type SshNode,
} from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  type ParsedArgs,
  runCli,
  UsageError,
} from "./_cli.ts";
import { interactive } from "./_interactive.ts";
import { colors, humanMs, type Output, padNames } from "./_output.ts";
import { NodeFiles, readingStdinText, stdinPayload } from "./_run_io.ts";
import { maxExitCode, NO_EXIT_CODE, observed, resultJson } from "./_runs.ts";

export const SPEC: CliSpec = {
  name: "run",
  summary: "Run one shell command on many nodes at once.",
  positional: "CMD...",
  options: [
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "most nodes running at once (default 64; per gateway too)",
    },
    {
      name: "collate",
      short: "b",
      help: "print identical outputs once, under their nodes (like dshbak -c)",
    },
    {
      name: "no-prefix",
      short: "N",
      help: 'no "node: " before streamed lines; with -b, no headers',
    },
    {
      name: "diff",
      help: "after the run, diff each output against the most common one",
    },
    {
      name: "maxrc",
      short: "S",
      help:
        `exit with the largest remote exit code (${NO_EXIT_CODE}: not reached, timed out)`,
    },
    {
      name: "timeout",
      short: "u",
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
      arg: "DIR",
      help: "write DIR/<node>.stdout and DIR/<node>.stderr instead of printing",
    },
  ],
  notes: [
    "The command runs in each node's shell; quote it, or put it after --. Lines print",
    'as "node: line" (stderr lines on stderr; -N: the line alone). The summary of exit',
    "codes goes to stderr, with each failed node's reason (for a node not reached,",
    "ssh's own message). -b and --diff compare stdout followed by stderr. --diff prints",
    "a unified diff of each output against the most common one, nodes with the same",
    "output folded into a node set, and nothing when all agree; it goes without -b and",
    "--json, and -N does not change it. -S: the exit status is the largest exit code of",
    `the remote commands; a node not reached, timed out or killed by a signal counts as`,
    `${NO_EXIT_CODE}, a node stopped by --fail-fast does not count (usage errors still exit 2,`,
    "interruptions 130). Standard input, unless it is a terminal, goes to every node (as",
    "with --stdin -); --no-stdin (or < /dev/null) sends none. --json prints one object",
    "per node as it finishes, then a summary object. Per-node values: {name} {host} {user}",
    "{device} {devip} and the node's vars: keys are replaced in CMD, shell-quoted; other",
    "braces are the shell's, {{name}} is the text {name}; an unknown key stops the run",
    "before any node. With no command and standard input",
    "a terminal, a prompt: each line runs on every node, printed as with -b (or --diff),",
    "with the summary; :w PATTERN changes the set, :help, Ctrl-C stops the line, Ctrl-D",
    "leaves (-S: with the largest exit code of the session); history in the state directory.",
  ].join("\n"),
  examples: [
    "fiwi run uptime",
    "fiwi run --nodes @duts -b -- cat /etc/os-release",
    "fiwi run -w @duts -S 'systemctl is-active fw-agent'",
    "fiwi run -w @duts -N hostname > hosts.txt",
    "fiwi run -w @duts --diff cat /etc/resolv.conf",
    "fiwi run -w @duts -u 30s 'apt-get -y upgrade'",
    "fiwi run -w 'dut[1-4]'   # no command: a prompt",
    "fiwi run --rig lab.yaml --nodes 'dut[1-4]' --fanout 2 'iw dev wlan0 link'",
    "fiwi run -w @duts 'cat > /tmp/fw.bin' < fw.bin",
    "fiwi run -w @duts -x dut3 -w pi1 uptime        # -w twice combine; -x excludes",
    "fiwi run -w ^duts.txt uptime                  # one pattern per line (also --hostfile)",
    "fiwi run -w @duts --pick 2 reboot             # two of them, at random",
    "fiwi run -w @duts -l pi -t 5s --retries 0 id  # as pi, 5 s to connect, one attempt",
    "fiwi run -w @duts 'flash --slot {slot} --name {name}'   # per-node values, quoted",
    "fiwi run --output-dir out/ 'journalctl -b --no-pager'",
  ],
};

/**
 * Output a streamed run keeps per node and stream. None of it is printed
 * again, but the library classifies a node that failed before its command
 * began from the kept stderr (ssh's messages): with none kept, the
 * summary said "exit code 255" where ssh had said why.
 */
const STREAMED_KEEP = 16 * 1024;

/**
 * What stdout shows: lines as they come (to the files instead with
 * `--output-dir`), or after the run the collated output, the diff, or JSON.
 */
type Mode = "stream" | "collate" | "diff" | "json";

/** The output mode the flags ask for; conflicting ones are a usage error. */
function outputMode(flags: ParsedArgs["flags"], json: boolean): Mode {
  if (flags.stdin !== undefined && flags["no-stdin"]) {
    throw new UsageError(
      'Give either "--stdin FILE" or "--no-stdin", not both',
    );
  }
  if (flags.diff) {
    const other = flags.collate ? "-b" : json ? "--json" : null;
    if (other) {
      throw new UsageError(`Give either "--diff" or "${other}", not both`);
    }
    return "diff";
  }
  if (json) return "json";
  return flags.collate ? "collate" : "stream";
}

/** What a node's result says beyond its status: background processes killed. */
function printNotices(results: RunResult[], out: Output): void {
  for (const r of results) {
    if (r.notice) out.err(`${r.node}: ${r.notice}`);
  }
}

/**
 * The exit-code summary: one line per outcome with its nodes, and under a
 * failed one each node's reason in {@linkcode describeOutcome}'s words
 * (the same message `--json` gives as `error.message`).
 */
function summarize(results: RunResult[], out: Output, wallMs: number): void {
  printNotices(results, out);
  const ok = results.filter((r) => r.success).length;
  if (ok === results.length) {
    const rest = `: ${formatNodeList(results.map((r) => r.node))} (exit 0, ${
      humanMs(wallMs)
    })`;
    out.err(out.paint(colors.green, "ok", "stderr") + rest, "ok" + rest);
    return;
  }
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = describeOutcome(r).key;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, rs] of groups) {
    const names = formatNodeList(rs.map((r) => r.node));
    const good = rs[0].success;
    const label = good ? key : out.paint(colors.red, key, "stderr");
    out.err(`${label}: ${names}`, `${key}: ${names}`);
    if (good) continue;
    // A bare exit code says nothing its key did not; an error says why.
    for (const r of rs) {
      if (r.error) out.err(`  ${describeOutcome(r).sentence}`);
    }
  }
  out.err(`${ok}/${results.length} nodes ok in ${humanMs(wallMs)}`);
}

/** `-b`: the library's dshbak printer, node sets in bold on a terminal. */
function printCollated(results: RunResult[], out: Output, headers: boolean) {
  const groups = collate(results);
  const plain = formatGroups(groups, { headers });
  out.outText(
    out.color
      ? formatGroups(groups, { headers, paintLabel: colors.bold })
      : plain,
    plain,
  );
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

/**
 * Streamed lines to the terminal: `node: line`, the prefix built once per
 * node, or the line alone (`-N`).
 */
function streamedLines(
  out: Output,
  names: string[],
  prefix: boolean,
): (line: Line) => void {
  if (!prefix) {
    // The central log still says which node a line came from.
    return (line) =>
      line.stream === "stdout"
        ? out.out(line.text, `${line.node}: ${line.text}`)
        : out.err(line.text, `${line.node}: ${line.text}`);
  }
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

/** Where each line goes while the run lasts; undefined: nowhere. */
function lineSink(
  mode: Mode,
  out: Output,
  names: string[],
  files: NodeFiles | null,
  prefix: boolean,
): ((line: Line) => void) | undefined {
  if (files) return (line) => files.line(line);
  return mode === "stream" ? streamedLines(out, names, prefix) : undefined;
}

/** What is printed once every node finished: collated, diffed, summary. */
function report(
  mode: Mode,
  ctx: CliContext,
  results: RunResult[],
  wallMs: number,
): void {
  const { out, flags, interrupt } = ctx;
  if (mode === "json") {
    out.out(JSON.stringify(summaryJson(results, wallMs, interrupt.aborted)));
    return;
  }
  if (mode === "collate") printCollated(results, out, !flags["no-prefix"]);
  if (mode === "diff") out.outText(diffGroups(collate(results)));
  summarize(results, out, wallMs);
}

/** One run of a command: what the flags settled, and where it goes. */
interface RunSpec {
  mode: Mode;
  /** `-f`. */
  fanout: number | undefined;
  /** `-u`, ms. */
  cmdTimeout: number | undefined;
  /** Stops the run on every node. */
  signal: AbortSignal;
  /** For every node's stdin. */
  stdin?: Uint8Array;
  /** `--output-dir`. */
  files?: NodeFiles | null;
  /** Each node's command, its values filled in (default: from `cmd`). */
  commands?: readonly string[];
}

/**
 * Run `cmd` on `nodes` with the progress line, then print what the mode
 * shows, the summary and, when `signal` stopped the run, how the nodes end;
 * the results. The prompt (no command on a terminal) runs each line here.
 */
async function runAndReport(
  ctx: CliContext,
  nodes: SshNode[],
  cmd: string,
  spec: RunSpec,
): Promise<RunResult[]> {
  const { flags, out, json } = ctx;
  const { mode, files = null } = spec;
  const names = nodes.map((n) => n.name);
  const commands = spec.commands ?? expandNodeValuesAll(cmd, nodes);
  const commandOf = new Map(names.map((name, i) => [name, commands[i]]));
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
      (n) => commandOf.get(n.name)!,
      {
        concurrency: spec.fanout,
        failFast: flags["fail-fast"] === true,
        cmdTimeout: spec.cmdTimeout,
        signal: spec.signal,
        stdin: spec.stdin,
        // Lines printed or written as they come need no full copy; --json,
        // -b and --diff print the kept output.
        ...(mode === "stream" ? { maxOutput: STREAMED_KEEP } : {}),
        onLine: lineSink(mode, out, names, files, !flags["no-prefix"]),
      },
    );
  } finally {
    out.clearProgress();
    files?.close();
  }
  ctx.state?.runs(results);
  report(mode, ctx, results, performance.now() - started);
  if (spec.signal.aborted) {
    // The clients are gone; on each node the lifeline ends the group within
    // about a second more (TERM, then KILL), which fiwi does not wait for.
    out.err(
      "Interrupted: every client was stopped; each node ends what is left of its command within 2 s",
    );
  }
  return results;
}

/**
 * No command, on a terminal: the prompt (`_interactive.ts`), each line
 * printed as with `-b` (or `--diff`). -f, -u, -N, -S, --fail-fast and the
 * selection apply; what only makes sense for one command is refused.
 */
async function prompt(ctx: CliContext): Promise<number> {
  const { flags, json } = ctx;
  const lone = json ? "json" : ["output-dir", "stdin"].find((f) => flags[f]);
  if (lone) {
    throw new UsageError(
      `Give a command with "--${lone}": the prompt (no command) prints each line's output gathered`,
    );
  }
  const fanout = intFlag(flags, "fanout", 1);
  const cmdTimeout = durationFlag(flags, "timeout");
  const mode = outputMode(flags, json) === "diff" ? "diff" : "collate";
  const { nodes } = await ctx.selectNodes();
  return await interactive(ctx, {
    nodes,
    maxrc: flags.maxrc === true,
    runLine: (nodes, cmd, signal) =>
      runAndReport(ctx, nodes, cmd, { mode, fanout, cmdTimeout, signal }),
  });
}

async function run(ctx: CliContext): Promise<number> {
  const { flags, json, interrupt } = ctx;
  if (ctx.rest.length === 0 && Deno.stdin.isTerminal()) return prompt(ctx);
  const cmd = ctx.rest.join(" ");
  if (cmd.trim() === "") {
    throw new UsageError(
      "No command given: fiwi run [options] CMD (see --help)",
    );
  }
  const fanout = intFlag(flags, "fanout", 1);
  const cmdTimeout = durationFlag(flags, "timeout");
  const mode = outputMode(flags, json);
  const files = flags["output-dir"] !== undefined
    ? new NodeFiles(String(flags["output-dir"]))
    : null;
  // Nodes first: a bad pattern fails before anything waits on stdin.
  const { nodes } = await ctx.selectNodes();
  // Per-node values ({name}, vars:) are checked on every node before
  // anything waits on stdin or runs anywhere.
  const commands = expandNodeValuesAll(cmd, nodes);
  const stdin = await readStdin(ctx, nodes.length);
  if (stdin === null) return interruptedReading(ctx, nodes.length);
  await files?.create(nodes.map((n) => n.name));
  const results = await runAndReport(ctx, nodes, cmd, {
    mode,
    fanout,
    cmdTimeout,
    signal: interrupt,
    stdin,
    files,
    commands,
  });
  if (interrupt.aborted) return interrupt.exitCode ?? 130;
  if (flags.maxrc) return maxExitCode(results);
  return results.every((r) => r.success) ? 0 : 1;
}

/** `fiwi run`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, run);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
