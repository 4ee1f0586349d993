/**
 * Shared plumbing of the `fiwi` subcommands: argument parsing with
 * `--help`, the common options (`--rig`, `--rig-name`, `--nodes`, `--json`,
 * `--log`, `--no-log`), paths relative to the user's working directory,
 * exit codes (0 all ok, 1 some failed, 2 usage or configuration error, in
 * one line without a stack trace; 130/143/129 interrupted), the central
 * log, colours and the live progress line (both only on a terminal, colours
 * never with `NO_COLOR`), and Ctrl-C / SIGTERM / SIGHUP.
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { isAbsolute, join } from "jsr:@std/path@^1";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { disposeSync, getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../src/errors.ts";
import {
  BUILTIN_RIG_YAML,
  DEFAULT_RIG_FILE,
  loadRig,
  parseRig,
  type Rig,
} from "../src/rig/rig.ts";
import type { SshNode } from "../src/node/node.ts";
import { parseDuration } from "../src/rig/duration.ts";
import {
  type CentralLog,
  DEFAULT_LOG_FILE,
  DEFAULT_LOG_FILES,
  DEFAULT_LOG_SIZE,
  invocationId,
  type LogSettings,
  parseSize,
  setupLogging,
} from "./_log.ts";
import { Output, writeAllSync } from "./_output.ts";
import { type Interrupt, interruptSignal } from "./_signals.ts";

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
  {
    name: "log",
    arg: "FILE",
    help: `central log file (default: ${DEFAULT_LOG_FILE}; rotated)`,
  },
  { name: "no-log", help: "write no central log" },
  { name: "help", short: "h", help: "show this help" },
];

/** Parsed command line. */
export interface ParsedArgs {
  /** Option values by long name: string, true, or undefined when absent. */
  flags: Record<string, string | boolean | undefined>;
  /** Positional arguments. */
  rest: string[];
}

/** The `--help` text of a subcommand. */
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
    `Usage: fiwi ${spec.name} [options]${
      spec.positional ? ` ${spec.positional}` : ""
    }`,
    "",
    "Options:",
    ...all.map((o) => `  ${left(o).padEnd(width)}${o.help}`),
  ];
  if (spec.notes) lines.push("", spec.notes);
  lines.push(
    "",
    "Exit status: 0 every node succeeded, 1 some node failed, 2 usage or configuration error,",
    "130 interrupted (143 SIGTERM, 129 SIGHUP).",
  );
  if (spec.examples?.length) {
    lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  }
  return lines.join("\n") + "\n";
}

const YES = new Set(["true", "yes", "on", "1"]);
/**
 * Prefix of the keys handed to parseArgs: it reads `--no-x` as "x is false"
 * for any declared x, which would make `--no-log` mean `--log=true`.
 */
const KEY = "\u00b7";
const NO = new Set(["false", "no", "off", "0"]);

/**
 * Rewrite the options before the first positional argument as
 * `--name=value` tokens, getopt style: an option that takes a value takes
 * the next word whatever it looks like (`-t -5s` is a bad duration, not an
 * unknown option), and a flag never takes the next word (`--collate true`
 * keeps `true` as the command). `--flag=yes|no` sets or clears a flag.
 */
export function normalizeArgs(all: OptionSpec[], args: string[]): string[] {
  const byName = new Map(all.map((o) => [o.name, o]));
  const byShort = new Map(
    all.filter((o) => o.short).map((o) => [o.short!, o]),
  );
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--" || !arg.startsWith("-") || arg === "-") {
      out.push(...args.slice(i));
      break;
    }
    const long = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    const short = /^-([^-])(.*)$/s.exec(arg);
    const spec = long ? byName.get(long[1]) : byShort.get(short?.[1] ?? "");
    if (!spec) {
      out.push(arg); // parseArgs reports it, with a suggestion
      continue;
    }
    const inline = long ? long[2] : short![2] === "" ? undefined : short![2];
    if (spec.arg) {
      const value = inline ?? args[++i];
      if (value === undefined) {
        throw new UsageError(
          `Option "--${spec.name}" needs a value: --${spec.name} ${spec.arg}`,
        );
      }
      out.push(`--${KEY}${spec.name}=${value}`);
    } else if (inline === undefined || YES.has(inline.toLowerCase())) {
      out.push(`--${KEY}${spec.name}=true`);
    } else if (!NO.has(inline.toLowerCase())) {
      throw new UsageError(
        `Invalid --${spec.name} "${inline}": give --${spec.name} alone, or =yes / =no`,
      );
    }
  }
  return out;
}

/** Parse `args` against the spec; throws {@linkcode UsageError}. */
export function parseCli(spec: CliSpec, args: string[]): ParsedArgs {
  const all = [...spec.options, ...COMMON];
  const strings = all.filter((o) => o.arg).map((o) => KEY + o.name);
  const booleans = all.filter((o) => !o.arg).map((o) => KEY + o.name);
  const known = new Set([...strings, ...booleans]);
  let bad: string | null = null;
  const parsed = parseArgs(normalizeArgs(all, args), {
    string: strings,
    boolean: booleans,
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
    const name = String(bad).replace(/=.*$/s, "");
    const flags = all.map((o) => `--${o.name}`);
    const hint = flags.find((f) => levenshteinDistance(f, name) <= 2) ??
      flags.find((f) => f.startsWith(name));
    throw new UsageError(
      `Unknown option "${name}"${hint ? `: did you mean "${hint}"?` : ""}`,
    );
  }
  const flags: ParsedArgs["flags"] = {};
  for (const o of all) {
    const value = parsed[KEY + o.name];
    if (value === undefined || value === false) continue;
    if (Array.isArray(value)) {
      throw new UsageError(`Option "--${o.name}" is given more than once`);
    }
    if (o.arg && (typeof value !== "string" || value === "")) {
      throw new UsageError(
        `Option "--${o.name}" needs a value: --${o.name} ${o.arg}`,
      );
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
  if (String(value).trim().startsWith("-")) {
    throw new UsageError(
      `Invalid --${name} "${value}": give a duration of 0 or more, like "30s"`,
    );
  }
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
  if (!/^\d+$/.test(String(value)) || n < min || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `Invalid --${name} "${value}": give a whole number >= ${min}`,
    );
  }
  return n;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // not permitted: the default applies
  }
}

/** The repository root: where `deno task` runs its commands. */
const TASK_DIR = new URL("../", import.meta.url).protocol === "file:"
  ? decodeURIComponent(new URL("..", import.meta.url).pathname)
  : null;

/**
 * The user's working directory. `deno task` runs a task in the directory of
 * its deno.json and records where the user was in INIT_CWD; that is only
 * believed when this process runs in the task's directory (INIT_CWD is
 * inherited by everything a task starts).
 */
export function userCwd(): string {
  const cwd = Deno.cwd();
  const init = env("INIT_CWD");
  if (
    init && TASK_DIR && cwd.replace(/\/$/, "") === TASK_DIR.replace(/\/$/, "")
  ) {
    return init;
  }
  return cwd;
}

/** `path` resolved against the user's working directory. */
export function userPath(path: string): string {
  return isAbsolute(path) ? path : join(userCwd(), path);
}

/** Everything a subcommand body gets. */
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
   * Aborted by the first Ctrl-C, SIGTERM or SIGHUP; `exitCode` is what the
   * subcommand should exit with then.
   */
  interrupt: Interrupt;
  /**
   * Load the rig and select `--nodes` (nodes are made silent: the command
   * logs what it prints). ControlMasters stay up after the command for
   * their `controlPersist`; `fiwi close` ends them.
   */
  selectNodes(): Promise<{ rig: Rig; nodes: SshNode[] }>;
}

/** One line for an error that ends the command, and its exit code. */
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
      } (widen the --allow-* flags of the install line or deno.json task)`,
      code: 2,
    };
  }
  return {
    line: `${name}: Unexpected error: ${(e as Error)?.message ?? String(e)}`,
    code: 1,
  };
}

/** The log settings the flags and FIWI_LOG_SIZE / FIWI_LOG_FILES ask for. */
export function logSettings(flags: ParsedArgs["flags"]): LogSettings {
  if (flags.log !== undefined && flags["no-log"]) {
    throw new UsageError('Give either "--log FILE" or "--no-log", not both');
  }
  const size = env("FIWI_LOG_SIZE");
  const maxSize = size === undefined ? DEFAULT_LOG_SIZE : parseSize(size);
  if (typeof maxSize === "string") {
    throw new ConfigurationError(`Invalid FIWI_LOG_SIZE "${size}": ${maxSize}`);
  }
  const files = env("FIWI_LOG_FILES");
  const maxFiles = files === undefined ? DEFAULT_LOG_FILES : Number(files);
  if (!/^\d+$/.test(files ?? "0") || maxFiles < 1 || maxFiles > 1000) {
    throw new ConfigurationError(
      `Invalid FIWI_LOG_FILES "${files}": give a whole number from 1 to 1000`,
    );
  }
  const given = flags.log as string | undefined;
  return {
    path: flags["no-log"] ? null : userPath(given ?? DEFAULT_LOG_FILE),
    isDefault: given === undefined,
    maxSize,
    maxFiles,
    id: invocationId(),
  };
}

/** Load the rig `--rig` names, or ./rigs.yaml, or the built-in local rig. */
async function loadUserRig(flags: ParsedArgs["flags"]): Promise<Rig> {
  const name = flags["rig-name"] as string | undefined;
  if (flags.rig !== undefined) {
    return await loadRig(userPath(String(flags.rig)), name);
  }
  const file = userPath(DEFAULT_RIG_FILE);
  const found = await Deno.stat(file).then(() => true, () => false);
  return found
    ? await loadRig(file, name)
    : parseRig(BUILTIN_RIG_YAML, { file: "<built-in>", name });
}

/**
 * Run a subcommand: parse, `--help`, set up the log and the signals, call
 * `body`, map errors to one line and an exit code. Resolves with the exit
 * code.
 */
export async function runCli(
  spec: CliSpec,
  args: string[],
  body: (ctx: CliContext) => Promise<number>,
): Promise<number> {
  let central: CentralLog | null = null;
  let out: Output | null = null;
  let interrupt: Interrupt | null = null;
  try {
    const { flags, rest } = parseCli(spec, args);
    if (flags.help) {
      writeAllSync(Deno.stdout, helpText(spec));
      return 0;
    }
    const notices: string[] = [];
    central = await setupLogging(logSettings(flags), (n) => notices.push(n));
    out = new Output(spec.name, central);
    for (const n of notices) out.err(n);
    const output = out;
    interrupt = interruptSignal({
      beforeExit: () => {
        output.err(`${spec.name}: Interrupted again: exiting at once`);
        output.clearProgress();
        disposeSync();
      },
    });
    out.log.info("Started fiwi {command} {args} in {cwd}", {
      command: spec.name,
      args,
      cwd: userCwd(),
    });
    const ctx: CliContext = {
      flags,
      rest,
      out,
      json: flags.json === true,
      interrupt,
      async selectNodes() {
        const rig = await loadUserRig(flags);
        const nodes = rig.select(String(flags.nodes ?? "all"));
        for (const n of nodes) n.silent = true;
        return { rig, nodes };
      },
    };
    const code = await body(ctx);
    out.log.info("Finished fiwi {command}: exit {code}", {
      command: spec.name,
      code,
    });
    return code;
  } catch (e) {
    out?.clearProgress();
    const { line, code } = describeFailure(spec.name, e);
    if (central) {
      getLogger(["fiwi", "cli", spec.name]).error("{line}", { line, error: e });
    }
    writeAllSync(Deno.stderr, line + "\n");
    return code;
  } finally {
    out?.clearProgress();
    interrupt?.[Symbol.dispose]();
    await central?.close();
  }
}

/** What every subcommand module exports. */
export interface Subcommand {
  /** Run with `args` (after the subcommand's name); resolves with the exit code. */
  main(args: string[]): Promise<number>;
}
