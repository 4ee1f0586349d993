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
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { dispose, getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../src/errors.ts";
import { loadRig, type Rig } from "../src/rig/rig.ts";
import type { SshNode } from "../src/node/node.ts";
import { parseDuration } from "../src/rig/duration.ts";
import {
  DEFAULT_LOG_FILE,
  Output,
  setupLogging,
  writeAllSync,
} from "./_output.ts";

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
