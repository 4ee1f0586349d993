/**
 * The command line of a `fiwi` subcommand: its options (the common ones and
 * its own), `--help` text, getopt-style parsing (an option that takes a
 * value takes the next word, a flag never does), and typed option values
 * (durations, whole numbers). Errors are {@linkcode UsageError}s: exit 2,
 * one line.
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { ConfigurationError, parseDuration } from "../mod.ts";
import { DEFAULT_LOG_FILE } from "./_log.ts";

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
