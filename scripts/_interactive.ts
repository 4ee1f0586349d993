/**
 * `fiwi run -w SET` with no command, on a terminal: a prompt (like clush's
 * interactive mode). Each line runs on every node of the set, printed as
 * `run -b` prints (or as `--diff`), with the exit summary; `:w PATTERN`
 * changes the set, `:help` says so, `:q` or Ctrl-D leaves. Ctrl-C stops
 * the running line on every node (not the prompt). Lines are kept in the
 * history file of the state directory (`_line_editor.ts`).
 *
 * @module
 */

import { ConfigurationError, type RunResult, type SshNode } from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import { type CliContext, describeFailure } from "./_cli.ts";
import {
  HISTORY_SIZE,
  HistoryFile,
  historyPath,
  LineEditor,
} from "./_line_editor.ts";
import { maxExitCode } from "./_runs.ts";

/** What one line entered at the prompt asks for. */
export type PromptLine =
  | { kind: "empty" }
  | { kind: "run"; cmd: string }
  | { kind: "nodes"; pattern: string }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "bad"; message: string };

/**
 * What `text` asks for: a `:` command, or a shell command for every node.
 * A line whose first word starts with `:` is always a prompt command (a
 * shell's `:` builtin has no use here).
 */
export function parsePromptLine(text: string): PromptLine {
  const line = text.trim();
  if (line === "") return { kind: "empty" };
  if (!line.startsWith(":")) return { kind: "run", cmd: line };
  const [word, ...rest] = line.split(/\s+/);
  const arg = rest.join(" ");
  switch (word) {
    case ":w":
      return arg === ""
        ? { kind: "bad", message: 'Give a node set: ":w PATTERN"' }
        : { kind: "nodes", pattern: arg };
    case ":help":
    case ":h":
    case ":?":
      return { kind: "help" };
    case ":q":
    case ":quit":
      return { kind: "quit" };
    default:
      return {
        kind: "bad",
        message: `Unknown prompt command "${word}": :help lists them`,
      };
  }
}

/** Most characters of the node set the prompt shows. */
const PROMPT_SET_WIDTH = 40;

/** The prompt: `fiwi n[1-4]> `, a long set cut with `…`. */
export function promptText(names: readonly string[]): string {
  const set = formatNodeList(names);
  const shown = set.length > PROMPT_SET_WIDTH
    ? set.slice(0, PROMPT_SET_WIDTH - 1) + "…"
    : set;
  return `fiwi ${shown}> `;
}

/** `:help`. */
export function promptHelp(history: string | null): string {
  return [
    "Each line runs on every node of the set, its output gathered as with -b.",
    "  :w PATTERN  change the set (the syntax of -w; -x, --hostfile, --pick and",
    "              the connection options of the command line still apply)",
    "  :help       this help",
    "  :q          leave (as Ctrl-D on an empty line)",
    "Ctrl-C stops the running line on every node, or clears the line typed.",
    history === null
      ? "Up and down recall earlier lines (no history file this time)."
      : `Up and down recall earlier lines, kept in ${history}.`,
  ].join("\n");
}

/** What the prompt needs from `run`. */
export interface PromptOptions {
  /** The nodes the command line selected. */
  nodes: SshNode[];
  /**
   * Run `cmd` on `nodes` until done or `signal` aborts, printing what a run
   * prints; resolves with the results.
   */
  runLine(
    nodes: SshNode[],
    cmd: string,
    signal: AbortSignal,
  ): Promise<RunResult[]>;
  /** `-S`: leave with the largest remote exit code of the session. */
  maxrc: boolean;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // not permitted: no history
  }
}

/** The history file, or null (with a notice) when it cannot be kept. */
async function openHistory(ctx: CliContext): Promise<HistoryFile | null> {
  try {
    return await HistoryFile.open(historyPath(env));
  } catch (e) {
    ctx.out.err(
      `No history this time: ${(e as Error).message ?? String(e)}`,
    );
    return null;
  }
}

/** One line on every node; Ctrl-C stops it. */
async function runLine(
  ctx: CliContext,
  editor: LineEditor,
  o: PromptOptions,
  nodes: SshNode[],
  cmd: string,
): Promise<RunResult[]> {
  const stop = new AbortController();
  using _ = editor.whileRunning(() =>
    stop.abort(new Error("Stopped by Ctrl-C"))
  );
  ctx.out.log.info("Prompt line {cmd} on {nodes}", {
    cmd,
    nodes: formatNodeList(nodes.map((n) => n.name)),
  });
  return await o.runLine(
    nodes,
    cmd,
    AbortSignal.any([ctx.interrupt, stop.signal]),
  );
}

/** The nodes of `pattern`, or the same ones with the reason on stderr. */
async function reselect(
  ctx: CliContext,
  nodes: SshNode[],
  pattern: string,
): Promise<SshNode[]> {
  try {
    return (await ctx.selectNodes({ nodes: [pattern] })).nodes;
  } catch (e) {
    ctx.out.err(describeFailure("run", e).line);
    return nodes;
  }
}

/**
 * The prompt, until `:q`, Ctrl-D, or a SIGTERM, SIGHUP (or a SIGINT sent
 * from elsewhere: Ctrl-C on the raw terminal is no signal); resolves with the
 * exit code: 0, or with `-S` the largest remote exit code of every line
 * run (`maxExitCode`: a line stopped by Ctrl-C does not count), or the
 * signal's code.
 */
export async function interactive(
  ctx: CliContext,
  o: PromptOptions,
): Promise<number> {
  const { out, interrupt } = ctx;
  await using history = await openHistory(ctx);
  using editor = LineEditor.open({
    history: history?.lines ?? [],
    historySize: HISTORY_SIZE,
  });
  let nodes = o.nodes;
  let worst = 0;
  const count = nodes.length === 1 ? "1 node" : `${nodes.length} nodes`;
  out.err(`${count}; :help for help, Ctrl-D to leave`);
  for (;;) {
    out.flush();
    const text = await editor.read(
      promptText(nodes.map((n) => n.name)),
      interrupt,
    );
    if (text === null) break;
    await history?.add(text).catch((e) =>
      out.err(`History not kept: ${(e as Error).message}`)
    );
    const line = parsePromptLine(text);
    if (line.kind === "quit") break;
    if (line.kind === "help") out.err(promptHelp(history?.path ?? null));
    if (line.kind === "bad") out.err(line.message);
    if (line.kind === "nodes") nodes = await reselect(ctx, nodes, line.pattern);
    if (line.kind === "run") {
      try {
        const results = await runLine(ctx, editor, o, nodes, line.cmd);
        worst = Math.max(worst, maxExitCode(results));
      } catch (e) {
        // A bad line (an unknown {key}) is said, and the prompt stays.
        if (!(e instanceof ConfigurationError)) throw e;
        out.err(describeFailure("run", e).line);
      }
    }
  }
  out.flush();
  if (interrupt.aborted) return interrupt.exitCode ?? 130;
  return o.maxrc ? worst : 0;
}
