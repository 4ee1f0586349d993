/**
 * The nodes a subcommand works on, from its command line, the way pdsh and
 * clush choose them: every `-w PATTERN` adds nodes (a union, in rig order),
 * `-w ^FILE` and `--hostfile FILE` add the patterns of a file (one a line),
 * every `-x PATTERN` (or `-x ^FILE`) takes nodes away, and `--pick N` keeps
 * N of what is left, at random. For a subcommand that connects, `-l USER`,
 * `--connect-timeout` and `--retries` then make each node a variant of
 * itself (`SshNode.with`), so every subcommand gets them without a change.
 *
 * @module
 */

import {
  ConfigurationError,
  type RetryOptions,
  type Rig,
  type SshNode,
  type SshNodeOptions,
} from "../mod.ts";
import { parseAdHocHost } from "../nodeset.ts";
import { durationFlag, intFlag, type ParsedArgs, UsageError } from "./_args.ts";

/** Most `--retries`: the retry loop allows 100 attempts in all. */
const MAX_RETRIES = 99;

/**
 * The node patterns of a host file's text: one a line; blank lines, and
 * everything from a `#` on, are ignored.
 */
export function hostFilePatterns(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/#.*/, "").trim())
    .filter((l) => l !== "");
}

/** Reads a host file: `path` as the user gave it (resolved by the reader). */
export type ReadHostFile = (path: string) => Promise<string>;

/** The patterns of one host file; a file that cannot be read is a usage error. */
async function readHostFile(
  path: string,
  read: ReadHostFile,
): Promise<string[]> {
  let text: string;
  try {
    text = await read(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : (e as Error).message;
    throw new UsageError(`Cannot read the host file "${path}": ${why}`);
  }
  const patterns = hostFilePatterns(text);
  if (patterns.length === 0) {
    throw new UsageError(
      `Host file "${path}" names no node: give one node pattern a line`,
    );
  }
  return patterns;
}

/** `values` with every `^FILE` replaced by the patterns of FILE. */
async function expandFiles(
  values: readonly string[],
  read: ReadHostFile,
): Promise<string[]> {
  const out: string[] = [];
  for (const v of values) {
    if (v.startsWith("^")) out.push(...await readHostFile(v.slice(1), read));
    else out.push(v);
  }
  return out;
}

/** What the command line selects, host files read. */
export interface Selection {
  /** Patterns whose nodes are taken (none: every node). */
  include: string[];
  /** Patterns whose nodes are left out. */
  exclude: string[];
  /** Keep this many nodes, picked at random (absent: all). */
  pick?: number;
}

/**
 * The selection the options ask for: `-w` values and `--hostfile` files
 * (included), `-x` values (excluded), `--pick`. `nodes` replaces the `-w`
 * values when given (`fiwi nodes PATTERN...`).
 */
export async function selectionOf(
  args: Pick<ParsedArgs, "flags" | "lists">,
  read: ReadHostFile,
  nodes?: readonly string[],
): Promise<Selection> {
  const w = nodes ?? args.lists.nodes ?? [];
  const hostfiles = args.lists.hostfile ?? [];
  return {
    include: [
      ...await expandFiles(w, read),
      ...await expandFiles(hostfiles.map((f) => `^${f}`), read),
    ],
    exclude: await expandFiles(args.lists.exclude ?? [], read),
    pick: intFlag(args.flags, "pick", 1),
  };
}

/** Words for the selection in a message: `-w "a" -x "b"`. */
function described(s: Selection): string {
  return [
    ...s.include.map((p) => `-w "${p}"`),
    ...s.exclude.map((p) => `-x "${p}"`),
  ].join(" ");
}

/**
 * The nodes of `rig` the selection names: each include pattern selected on
 * its own (`Rig.select`) and joined, then each exclude pattern's nodes
 * removed; rig nodes in rig order, then hosts outside the rig in the order
 * given. A pattern that matches nothing is an error (`Rig.select`), and so
 * is a selection that leaves no node.
 */
export function selectFrom(rig: Rig, s: Selection): SshNode[] {
  const chosen = new Set<SshNode>();
  for (const p of s.include.length ? s.include : ["all"]) {
    for (const n of rig.select(p)) chosen.add(n);
  }
  for (const p of s.exclude) for (const n of rig.select(p)) chosen.delete(n);
  if (chosen.size === 0) {
    throw new ConfigurationError(
      `The selection ${described(s)} leaves no node in rig "${rig.name}"`,
    );
  }
  const inRig = new Set(rig.nodes);
  return [
    ...rig.nodes.filter((n) => chosen.has(n)),
    ...[...chosen].filter((n) => !inRig.has(n)),
  ];
}

/**
 * `n` items of `items` picked at random, in their order; all of them when
 * there are no more than `n`. `random` gives numbers in [0, 1).
 */
export function pickRandom<T>(
  items: readonly T[],
  n: number,
  random: () => number = Math.random,
): T[] {
  if (n >= items.length) return [...items];
  // Partial Fisher-Yates over the indices: the first n are the pick.
  const index = items.map((_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (index.length - i));
    [index[i], index[j]] = [index[j], index[i]];
  }
  const kept = new Set(index.slice(0, n));
  return items.filter((_, i) => kept.has(i));
}

/** The node settings `-l`, `--connect-timeout` and `--retries` ask for. */
export interface ConnectOverrides {
  /** `-l USER`. */
  user?: string;
  /** `--connect-timeout`, ms. */
  connectTimeout?: number;
  /** `--retries N`: N+1 attempts; 0 is `false`, one attempt. */
  retry?: RetryOptions | false;
}

/** The connection options of the command line. */
export function connectOverrides(flags: ParsedArgs["flags"]): ConnectOverrides {
  const user = flags.user as string | undefined;
  const connectTimeout = durationFlag(flags, "connect-timeout");
  const retries = intFlag(flags, "retries", 0);
  if (retries !== undefined && retries > MAX_RETRIES) {
    throw new UsageError(
      `Invalid --retries "${retries}": give a whole number from 0 to ${MAX_RETRIES}`,
    );
  }
  return {
    ...(user !== undefined && { user }),
    ...(connectTimeout !== undefined && { connectTimeout }),
    ...(retries !== undefined &&
      { retry: retries === 0 ? false : { attempts: retries + 1 } }),
  };
}

/**
 * `nodes` with the overrides applied, each a variant of the node
 * (`SshNode.with`; the same nodes when there is nothing to apply). A host
 * given as `user@host` keeps its user, as with pdsh. A bad value (a user
 * ssh would misread, a timeout out of range) is a `ConfigurationError`
 * here, before anything runs.
 */
export function applyOverrides(
  rig: Rig,
  nodes: readonly SshNode[],
  o: ConnectOverrides,
): SshNode[] {
  if (Object.keys(o).length === 0) return [...nodes];
  const inRig = new Set(rig.nodes);
  return nodes.map((n) => {
    const own = !inRig.has(n) && parseAdHocHost(n.name)?.user !== undefined;
    const changes: Partial<SshNodeOptions> = { ...o };
    if (own) delete changes.user;
    const variant = n.with(changes);
    variant.validate();
    return variant;
  });
}
