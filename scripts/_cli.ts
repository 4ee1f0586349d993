/**
 * Shared plumbing of the scripts: argument parsing with `--help`, the
 * common options (`--rig`, `--rig-name`, `--nodes`, `--json`, `--log`),
 * exit codes (0 all ok, 1 some failed, 2 usage or configuration error, in
 * one line without a stack trace), the central log file, colours and the
 * live progress line (both only on a terminal, colours never with
 * `NO_COLOR`), and Ctrl-C handling.
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import * as colors from "jsr:@std/fmt@^1/colors";
import { dirname } from "jsr:@std/path@^1";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import {
  configure,
  dispose,
  getLogger,
  getTextFormatter,
  type Logger,
} from "npm:@logtape/logtape@^2";
import { getFileSink } from "npm:@logtape/file@^2";
import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  FiwiError,
  HostKeyError,
} from "../src/errors.ts";
import { loadRig, type Rig } from "../src/rig.ts";
import { SshNode, type SshNodeOptions } from "../src/node.ts";
import type { RunOptions, RunResult } from "../src/session.ts";
import { parseDuration } from "../src/_duration.ts";

/** The central log file, relative to the working directory. */
export const DEFAULT_LOG_FILE = "logs/fiwi.log";

/** A bad command line: exit code 2. */
export class UsageError extends ConfigurationError {}

/** One script-specific option, for parsing and for `--help`. */
export interface OptionSpec {
  /** Long name without dashes. */
  name: string;
  /** One-letter alias. */
  short?: string;
  /** Placeholder of the value; absent for a boolean flag. */
  arg?: string;
  /** One line of help. */
  help: string;
}

/** What a script is and accepts. */
export interface CliSpec {
  /** Script name (the deno task). */
  name: string;
  /** One line: what it does. */
  summary: string;
  /** Positional arguments, e.g. "CMD..." (absent: none allowed). */
  positional?: string;
  /** Script-specific options. */
  options: OptionSpec[];
  /** Lines shown under "Examples:". */
  examples?: string[];
  /** Paragraph shown after the options (exit codes etc.). */
  notes?: string;
}

const COMMON: OptionSpec[] = [
  { name: "rig", arg: "FILE", help: "rig inventory (default: ./rigs.yaml)" },
  {
    name: "rig-name",
    arg: "NAME",
    help: "rig in the file (default: its default)",
  },
  {
    name: "nodes",
    short: "w",
    arg: "PATTERN",
    help: 'names, @group, globs, ranges, !exclusions (default: "all")',
  },
  { name: "json", help: "machine-readable output on stdout" },
  { name: "log", arg: "FILE", help: `log file (default: ${DEFAULT_LOG_FILE})` },
  { name: "help", short: "h", help: "show this help" },
];

/** Parsed command line. */
export interface ParsedArgs {
  /** Option values by long name: string, true, or undefined when absent. */
  flags: Record<string, string | boolean | undefined>;
  /** Positional arguments. */
  rest: string[];
}

/** The `--help` text of a script. */
export function helpText(spec: CliSpec): string {
  const all = [...spec.options, ...COMMON];
  const left = (o: OptionSpec) =>
    `${o.short ? `-${o.short}, ` : "    "}--${o.name}${
      o.arg ? ` ${o.arg}` : ""
    }`;
  const width = Math.max(...all.map((o) => left(o).length)) + 2;
  const lines = [
    `${spec.summary}`,
    "",
    `Usage: deno task ${spec.name} [options]${
      spec.positional ? ` ${spec.positional}` : ""
    }`,
    "",
    "Options:",
    ...all.map((o) => `  ${left(o).padEnd(width)}${o.help}`),
  ];
  if (spec.notes) lines.push("", spec.notes);
  lines.push(
    "",
    "Exit status: 0 every node succeeded, 1 some node failed, 2 usage or configuration error.",
  );
  if (spec.examples?.length) {
    lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  }
  return lines.join("\n") + "\n";
}

/** Parse `args` against the spec; throws {@linkcode UsageError}. */
export function parseCli(spec: CliSpec, args: string[]): ParsedArgs {
  const all = [...spec.options, ...COMMON];
  const strings = all.filter((o) => o.arg).map((o) => o.name);
  const booleans = all.filter((o) => !o.arg).map((o) => o.name);
  const alias: Record<string, string> = {};
  for (const o of all) if (o.short) alias[o.short] = o.name;
  const known = new Set([...strings, ...booleans, ...Object.keys(alias)]);
  let bad: string | null = null;
  const parsed = parseArgs(args, {
    string: strings,
    boolean: booleans,
    alias,
    // A command's own options (`run ls -l`) belong to the command.
    stopEarly: true,
    unknown: (arg: string, key?: string) => {
      if (key !== undefined && !known.has(key)) {
        bad ??= arg;
        return false;
      }
      return true;
    },
  }) as Record<string, unknown> & { _: unknown[] };
  if (bad !== null) {
    const name = String(bad).replace(/=.*$/, "");
    const flags = all.map((o) => `--${o.name}`);
    const hint = flags.find((f) => levenshteinDistance(f, name) <= 2) ??
      flags.find((f) => f.startsWith(name));
    throw new UsageError(
      `Unknown option "${name}"${hint ? `: did you mean "${hint}"?` : ""}`,
    );
  }
  const flags: ParsedArgs["flags"] = {};
  for (const o of all) {
    const value = parsed[o.name];
    if (value === undefined || value === false) continue;
    if (o.arg && (typeof value !== "string" || value === "")) {
      throw new UsageError(
        `Option "--${o.name}" needs a value: --${o.name} ${o.arg}`,
      );
    }
    if (Array.isArray(value)) {
      throw new UsageError(`Option "--${o.name}" is given more than once`);
    }
    flags[o.name] = value as string | boolean;
  }
  const rest = parsed._.map(String);
  if (!spec.positional && rest.length > 0) {
    throw new UsageError(`Unexpected argument "${rest[0]}": see --help`);
  }
  return { flags, rest };
}

/** A duration option (`500ms`, `15s`, `2m`); undefined when absent. */
export function durationFlag(
  flags: ParsedArgs["flags"],
  name: string,
): number | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const ms = parseDuration(String(value));
  if (typeof ms === "string") {
    throw new UsageError(`Invalid --${name} "${value}": ${ms}`);
  }
  return ms;
}

/** A whole-number option of at least `min`; undefined when absent. */
export function intFlag(
  flags: ParsedArgs["flags"],
  name: string,
  min: number,
): number | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || n < min) {
    throw new UsageError(
      `Invalid --${name} "${value}": give a whole number >= ${min}`,
    );
  }
  return n;
}

const encoder = new TextEncoder();

function writeAllSync(
  stream: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/**
 * Terminal output of one script run: lines to stdout / stderr, each also
 * logged; a progress line on stderr kept below the output (TTY only).
 */
export class Output {
  /** stdout is a terminal and NO_COLOR is not set. */
  readonly color: boolean;
  /** stderr is a terminal and NO_COLOR is not set. */
  readonly colorErr: boolean;
  /** Logger of the script's own lines. */
  readonly log: Logger;
  #progressOn: boolean;
  #progress = "";
  #closed = false;

  /** @param script the script's name, used as log category */
  constructor(script: string) {
    this.log = getLogger(["fiwi", "cli", script]);
    this.color = Deno.stdout.isTerminal() && !Deno.noColor;
    this.colorErr = Deno.stderr.isTerminal() && !Deno.noColor;
    this.#progressOn = Deno.stderr.isTerminal();
    colors.setColorEnabled(true);
  }

  /** `paint(colors.red, text)` for stdout: colour only when allowed. */
  paint(
    fn: (s: string) => string,
    text: string,
    stream: "stdout" | "stderr" = "stdout",
  ): string {
    return (stream === "stdout" ? this.color : this.colorErr) ? fn(text) : text;
  }

  #write(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
    if (this.#closed) return;
    try {
      if (this.#progress) writeAllSync(Deno.stderr, "\r\x1b[K");
      writeAllSync(stream, text);
      if (this.#progress) writeAllSync(Deno.stderr, this.#progress);
    } catch (e) {
      // A reader that went away (`| head`) ends the output, not the run.
      if (e instanceof Deno.errors.BrokenPipe) this.#closed = true;
      else throw e;
    }
  }

  /** A line of data or result to stdout (and the log). */
  out(line: string, plain: string = line): void {
    this.log.info("{line}", { line: plain });
    this.#write(Deno.stdout, line + "\n");
  }

  /** A line of diagnostics to stderr (and the log). */
  err(line: string, plain: string = line): void {
    this.log.warn("{line}", { line: plain });
    this.#write(Deno.stderr, line + "\n");
  }

  /** Redraw the progress line: done / failed / total (terminal only). */
  progress(done: number, failed: number, total: number, extra = ""): void {
    if (!this.#progressOn) return;
    const text = `[${done}/${total} done${
      failed ? `, ${this.paint(colors.red, `${failed} failed`, "stderr")}` : ""
    }]${extra ? ` ${extra}` : ""}`;
    this.#progress = text;
    try {
      writeAllSync(Deno.stderr, "\r\x1b[K" + text);
    } catch { /* terminal gone */ }
  }

  /** Remove the progress line. */
  clearProgress(): void {
    if (!this.#progress) return;
    this.#progress = "";
    try {
      writeAllSync(Deno.stderr, "\r\x1b[K");
    } catch { /* terminal gone */ }
  }
}

/** Configure LogTape: every fiwi record to the central log file. */
export async function setupLogging(path: string): Promise<void> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw new ConfigurationError(
      `Cannot create the log directory "${dirname(path)}": ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  let sink;
  try {
    sink = getFileSink(path, {
      bufferSize: 8192,
      flushInterval: 1000,
      // Lines read as printed, not as quoted JavaScript strings.
      formatter: getTextFormatter({ value: "bare" }),
    });
  } catch (e) {
    throw new ConfigurationError(
      `Cannot open the log file "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  await configure({
    reset: true,
    sinks: { file: sink },
    loggers: [
      { category: ["fiwi"], lowestLevel: "debug", sinks: ["file"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["file"],
      },
    ],
  });
}

/** Everything a script body gets. */
export interface CliContext {
  /** Parsed options. */
  flags: ParsedArgs["flags"];
  /** Positional arguments. */
  rest: string[];
  /** Terminal output. */
  out: Output;
  /** `--json` was given. */
  json: boolean;
  /**
   * Load the rig and select `--nodes` (nodes are made silent: the script
   * logs what it prints). `close()` ends the ControlMasters of the selected
   * nodes: scripts leave no ssh client behind.
   */
  selectNodes(): Promise<
    { rig: Rig; nodes: SshNode[]; close: () => Promise<void> }
  >;
}

/** One line for an error that ends the script, and its exit code. */
export function describeFailure(
  name: string,
  e: unknown,
): { line: string; code: number } {
  if (e instanceof FiwiError) {
    return { line: `${name}: ${e.message}`, code: e.exitCode };
  }
  if (
    e instanceof Deno.errors.NotCapable ||
    e instanceof Deno.errors.PermissionDenied
  ) {
    return {
      line: `${name}: Not permitted: ${
        (e as Error).message
      } (widen the task's --allow-* flags in deno.json)`,
      code: 2,
    };
  }
  return {
    line: `${name}: Unexpected error: ${(e as Error)?.message ?? String(e)}`,
    code: 1,
  };
}

/**
 * Run a script: parse, `--help`, set up logging, call `body`, map errors to
 * one line and an exit code. Resolves with the exit code.
 */
export async function runCli(
  spec: CliSpec,
  args: string[],
  body: (ctx: CliContext) => Promise<number>,
): Promise<number> {
  let logging = false;
  let out: Output | null = null;
  try {
    const { flags, rest } = parseCli(spec, args);
    if (flags.help) {
      writeAllSync(Deno.stdout, helpText(spec));
      return 0;
    }
    await setupLogging(String(flags.log ?? DEFAULT_LOG_FILE));
    logging = true;
    out = new Output(spec.name);
    out.log.info("Started {script} {args}", { script: spec.name, args });
    const ctx: CliContext = {
      flags,
      rest,
      out,
      json: flags.json === true,
      async selectNodes() {
        const rig = await loadRig(
          flags.rig as string | undefined,
          flags["rig-name"] as string | undefined,
        );
        const nodes = rig.select(String(flags.nodes ?? "all"));
        for (const n of nodes) n.silent = true;
        const close = async () => {
          await Promise.all(nodes.map((n) => n.close()));
        };
        return { rig, nodes, close };
      },
    };
    const code = await body(ctx);
    out.log.info("Finished {script}: exit {code}", { script: spec.name, code });
    return code;
  } catch (e) {
    out?.clearProgress();
    const { line, code } = describeFailure(spec.name, e);
    if (logging) {
      getLogger(["fiwi", "cli", spec.name]).error("{line}", { line, error: e });
    }
    writeAllSync(Deno.stderr, line + "\n");
    return code;
  } finally {
    out?.clearProgress();
    if (logging) await dispose();
  }
}

/**
 * Ctrl-C (SIGINT) and SIGTERM as an AbortSignal: the first one aborts so the
 * script can stop cleanly; a second one exits at once with 130.
 */
export function interruptSignal(): AbortSignal & Disposable {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort(new Error("Interrupted"));
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, handler);
  return Object.assign(controller.signal, {
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, handler);
    },
  });
}

/** The names of `nodes`, padded to the longest (for `name: line` prefixes). */
export function padNames(nodes: readonly SshNode[]): (name: string) => string {
  const width = Math.max(0, ...nodes.map((n) => n.name.length));
  return (name) => name.padEnd(width);
}

/** Milliseconds as a short human figure: "12 ms", "1.4 s", "2 m 5 s". */
export function humanMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} m ${Math.round((ms % 60_000) / 1000)} s`;
}

/** How a run ended, in a few words: "exit 0", "exit 2", "unreachable", "command timeout". */
export function outcome(r: RunResult): string {
  if (r.timedOut) return `${r.timedOut} timeout`;
  if (r.aborted) return "interrupted";
  if (r.error instanceof ConnectionError) return "unreachable";
  if (r.error instanceof AuthenticationError) return "auth failed";
  if (r.error instanceof HostKeyError) return "host key rejected";
  if (r.signal) return `killed by ${r.signal}`;
  return `exit ${r.code}`;
}

export { colors };

/** A copy of `node` with some options changed (e.g. no ControlMaster). */
export function nodeWith(
  node: SshNode,
  overrides: Partial<SshNodeOptions>,
): SshNode {
  return new SshNode({
    name: node.name,
    host: node.host,
    user: node.user,
    port: node.port,
    transport: node.transport,
    relay: node.relay,
    relayMode: node.relayMode,
    ushPath: node.ushPath,
    controlMaster: node.controlMaster,
    silent: node.silent,
    console: node.console,
    consoleCommand: node.consoleCommand,
    device: node.device,
    devip: node.devip,
    sshConfig: node.sshConfig,
    identityFile: node.identityFile,
    sshOptions: { ...node.sshOptions },
    hostKeyCheck: node.hostKeyCheck,
    connectTimeout: node.connectTimeout,
    ioTimeout: node.ioTimeout,
    cmdTimeout: node.cmdTimeout,
    controlDir: node.controlDir,
    ...overrides,
  });
}

/** Call `fn` on every item, at most `limit` at a time; results in item order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  return results;
}

/** Lay out rows as columns two spaces apart (last column not padded). */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const width: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => width[i] = Math.max(width[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(width[i]))
      .join("  ").trimEnd()
  );
}

/**
 * A stand-in for `node` that reports every `rexec` result to `onResult`
 * (for the progress line); everything else goes to the node itself, with
 * `this` bound to it so its private state works.
 */
export function observed(
  node: SshNode,
  onResult: (result: RunResult) => void,
): SshNode {
  return new Proxy(node, {
    get(target, prop) {
      if (prop === "rexec") {
        return async (cmd: string, options?: RunOptions) => {
          const result = await target.rexec(cmd, options);
          onResult(result);
          return result;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A RunResult as plain JSON: the error as its class name and message. */
export function resultJson(r: RunResult): Record<string, unknown> {
  return {
    node: r.node,
    cmd: r.cmd,
    success: r.success,
    code: r.code,
    signal: r.signal,
    outcome: outcome(r),
    stdout: r.stdout,
    stderr: r.stderr,
    truncated: r.truncated,
    timedOut: r.timedOut,
    aborted: r.aborted,
    error: r.error ? { kind: r.error.name, message: r.error.message } : null,
    startedAt: r.startedAt.toISOString(),
    durationMs: Math.round(r.durationMs),
  };
}
