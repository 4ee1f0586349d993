/**
 * The command line of a `fiwi` subcommand: its options (the common ones,
 * the connection ones of a subcommand that connects, and its own), `--help`
 * text, getopt-style parsing (an option that takes a value takes the next
 * word, a flag never does; a repeatable one collects every value), and
 * typed option values (durations, whole numbers). Errors are
 * {@linkcode UsageError}s: exit 2, one line.
 *
 * The letters follow pdsh and clush, so that muscle memory never runs
 * something else: `-w` nodes, `-x` exclude, `-l` user, `-t` connect
 * timeout, `-u` command timeout, `-f` fan-out.
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { ConfigurationError, DEFAULT_RETRY, parseDuration } from "../mod.ts";

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
  /**
   * May be given more than once: every value is kept, in order, in
   * {@linkcode ParsedArgs.lists} (never in `flags`).
   */
  repeat?: boolean;
  /**
   * A letter this option is suggested for when it is given but unknown
   * (`nodes`: `-f`, fan-out elsewhere, suggests `--fold`).
   */
  suggestedFor?: string;
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
  /**
   * Contacts its nodes (default true): takes `-l`, `--connect-timeout` and
   * `--retries`, and writes the central log by default. False (`nodes`):
   * none of those, and a log only when `--log FILE` asks for one.
   */
  connects?: boolean;
  /**
   * Touches its nodes (default: `connects`): refuses a node another owner
   * has leased, and takes `--force` to go ahead anyway (`_lease.ts`).
   * False for a subcommand that only reads the rig or ends local state.
   */
  checksLeases?: boolean;
  /**
   * What it does with the state store (`_state.ts`); default `"record"`
   * when it connects, else `"none"`. `"record"`: takes `--db` and
   * `--no-db` and records its invocation; `"read"`: takes `--db` only.
   */
  state?: "record" | "read" | "none";
}

/** Options of every subcommand: the rig and the node selection. */
const SELECT: OptionSpec[] = [
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
    repeat: true,
    help:
      'names, @group, globs, ranges, !exclusions; repeat to add; ^FILE: one a line (default: "all")',
  },
  {
    name: "exclude",
    short: "x",
    arg: "PATTERN",
    repeat: true,
    help: "leave these nodes out; repeat to add; ^FILE: one a line",
  },
  {
    name: "hostfile",
    arg: "FILE",
    repeat: true,
    help: "add the node patterns of FILE, one a line (# comments)",
  },
  {
    name: "pick",
    arg: "N",
    help: "only N nodes of the selection, picked at random",
  },
];

/** Options of a subcommand that connects to its nodes. */
const CONNECT: OptionSpec[] = [
  {
    name: "user",
    short: "l",
    arg: "USER",
    help: "log in as USER on every node (user@host in a pattern wins)",
  },
  {
    name: "connect-timeout",
    short: "t",
    arg: "DURATION",
    help:
      "give up connecting to a node after DURATION (default: the node's, 15s)",
  },
  {
    name: "max-masters",
    arg: "N",
    help:
      "keep at most N ControlMasters live, closing the least recently used idle ones (default: the rig's maxMasters, else 1024)",
  },
  {
    name: "retries",
    arg: "N",
    help: `attempts after a failed connection, 1s, 2s, then 4s apart (default ${
      DEFAULT_RETRY.attempts - 1
    }; 0: none)`,
  },
];

/** Options of a subcommand that checks leases. */
const LEASES: OptionSpec[] = [
  {
    name: "force",
    help:
      "go ahead on nodes another owner has leased (recorded in the lease history)",
  },
];

/** Options of a subcommand that uses the state store. */
const STATE: OptionSpec[] = [
  {
    name: "db",
    arg: "FILE",
    help:
      "state store (default: the rig's state:, else ${XDG_STATE_HOME:-~/.local/state}/fiwi/state.db)",
  },
  { name: "no-db", help: "record nothing in the state store" },
];

/** What `spec` does with the state store, its default applied. */
export function stateUse(spec: CliSpec): "record" | "read" | "none" {
  return spec.state ?? (spec.connects ?? true ? "record" : "none");
}

/** Options of every subcommand: output, the central log, help. */
function outputOptions(connects: boolean): OptionSpec[] {
  return [
    { name: "json", help: "machine-readable output on stdout" },
    {
      name: "log",
      arg: "FILE",
      help: connects
        ? "central log file (default: ${XDG_STATE_HOME:-~/.local/state}/fiwi/fiwi.log; rotated)"
        : "write a central log to FILE (default: none, no node is contacted)",
    },
    { name: "no-log", help: "write no central log" },
    { name: "help", short: "h", help: "show this help" },
  ];
}

/** Every option of a subcommand: its own, then the common ones. */
export function optionsOf(spec: CliSpec): OptionSpec[] {
  const connects = spec.connects ?? true;
  return [
    ...spec.options,
    ...SELECT,
    ...(connects ? CONNECT : []),
    ...(spec.checksLeases ?? connects ? LEASES : []),
    ...{ record: STATE, read: STATE.slice(0, 1), none: [] }[stateUse(spec)],
    ...outputOptions(connects),
  ];
}

/** Parsed command line. */
export interface ParsedArgs {
  /**
   * Option values by long name: string, true, or undefined when absent
   * (repeatable options are in `lists`).
   */
  flags: Record<string, string | boolean | undefined>;
  /** Every value of each repeatable option, in order (empty when absent). */
  lists: Record<string, string[]>;
  /** Positional arguments. */
  rest: string[];
}

/** The `--help` text of a subcommand. */
export function helpText(spec: CliSpec): string {
  const all = optionsOf(spec);
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
  args = [...args];
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
    if (!long && !spec.arg && inline && byShort.has(inline[0])) {
      // Grouped letters, as getopt reads them: -bN is -b -N, -bw n1 is -b -w n1.
      out.push(`--${KEY}${spec.name}=true`);
      args.splice(i + 1, 0, `-${inline}`);
      continue;
    }
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

/**
 * "did you mean" for an unknown option: the one it is `suggestedFor`, a
 * long one within two edits, or one it begins.
 */
function suggestion(all: OptionSpec[], name: string): string | undefined {
  const named = all.find((o) => `-${o.suggestedFor}` === name);
  if (named) return `--${named.name}`;
  const flags = all.map((o) => `--${o.name}`);
  return flags.find((f) => levenshteinDistance(f, name) <= 2) ??
    flags.find((f) => f.startsWith(name));
}

/** Parse `args` against the spec; throws {@linkcode UsageError}. */
export function parseCli(spec: CliSpec, args: string[]): ParsedArgs {
  const all = optionsOf(spec);
  const strings = all.filter((o) => o.arg).map((o) => KEY + o.name);
  const booleans = all.filter((o) => !o.arg).map((o) => KEY + o.name);
  const known = new Set([...strings, ...booleans]);
  let bad: string | null = null;
  const parsed = parseArgs(normalizeArgs(all, args), {
    string: strings,
    boolean: booleans,
    // Every value is collected: a single-valued option given twice is an
    // error (parseArgs alone would keep the last one, silently).
    collect: strings,
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
    const hint = suggestion(all, name);
    throw new UsageError(
      `Unknown option "${name}"${hint ? `: did you mean "${hint}"?` : ""}`,
    );
  }
  const flags: ParsedArgs["flags"] = {};
  const lists: ParsedArgs["lists"] = {};
  for (const o of all) {
    const value = parsed[KEY + o.name];
    if (!o.arg) {
      if (value === true) flags[o.name] = true;
      continue;
    }
    const values = (value ?? []) as string[];
    if (values.some((v) => typeof v !== "string" || v === "")) {
      throw new UsageError(
        `Option "--${o.name}" needs a value: --${o.name} ${o.arg}`,
      );
    }
    if (o.repeat) lists[o.name] = values;
    else if (values.length > 1) {
      throw new UsageError(`Option "--${o.name}" is given more than once`);
    } else if (values.length === 1) flags[o.name] = values[0];
  }
  const rest = parsed._.map(String);
  if (!spec.positional && rest.length > 0) {
    throw new UsageError(`Unexpected argument "${rest[0]}": see --help`);
  }
  return { flags, lists, rest };
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
