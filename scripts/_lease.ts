/**
 * Leases on the command line: whose they are, how a refusal reads, and the
 * one check every subcommand that touches nodes goes through
 * ({@linkcode guardNodes}, called by `ctx.selectNodes()`).
 *
 * Ownership: a lease belongs to an owner token. A `fiwi lease take` in a
 * shell and the `fiwi run`s after it must present the same one, so the
 * token is `FIWI_LEASE_TOKEN` when set (a CI job sets it once for all its
 * steps), else the user's own, kept in the state directory
 * (`$XDG_STATE_HOME/fiwi/lease-token`, else
 * `~/.local/state/fiwi/lease-token`), 0600, made once per user.
 *
 * @module
 */

import { dirname, join } from "jsr:@std/path@^1";
import {
  ConfigurationError,
  defaultLeaseHolder,
  type Lease,
  LeaseHeldError,
  type LeaseInfo,
  type LeaseStore,
  type LeaseWaiter,
  type Rig,
  type SshNode,
} from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import type { OptionSpec } from "./_args.ts";
import { defaultLogFile } from "./_log.ts";

/** `--lease DURATION` of the long-running subcommands (`poll`, `consoles`). */
export const LEASE_OPTION: OptionSpec = {
  name: "lease",
  arg: "DURATION",
  help:
    "lease the nodes while running: taken for DURATION, renewed every third of it",
};

/** What `--lease` does, for the notes of `--help`. */
export const LEASE_NOTE =
  "--lease DURATION takes a lease on the nodes (fiwi lease) before the first run, renews\n" +
  "it in the background every third of DURATION and drops it at the end; killed, it\n" +
  "ends within DURATION. A node another owner holds is refused unless --force.";

/** Reads an environment variable: undefined when unset (or not permitted). */
type EnvReader = (name: string) => string | undefined;

/** The variable that names the owner token, overriding the user's file. */
export const TOKEN_ENV = "FIWI_LEASE_TOKEN";

/** Where the user's owner token is kept: beside the central log. */
export function tokenPath(env: EnvReader): string {
  return join(dirname(defaultLogFile(env)), "lease-token");
}

/**
 * The user's owner token at `path`, made when missing: 32 random bytes in
 * hex, in a 0600 file (its directory 0700). It is written aside and linked
 * into place whole, so two fiwis starting at once agree on one token and
 * neither reads a half-written one. A file others may read is made private
 * again, as ssh wants of a key.
 */
export async function userToken(path: string): Promise<string> {
  try {
    return await readToken(path) ?? await createToken(path);
  } catch (e) {
    throw e instanceof ConfigurationError ? e : tokenFailure(path, e);
  }
}

/** The token in `path`; null when there is no file. */
async function readToken(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (((await Deno.stat(path)).mode ?? 0) & 0o077) {
    await Deno.chmod(path, 0o600);
  }
  const token = text.trim();
  if (token === "") {
    throw new ConfigurationError(
      `The lease token file "${path}" is empty: remove it (a new one is made), or set ${TOKEN_ENV}`,
    );
  }
  return token;
}

/** Make the token file; the token in it (another fiwi's, if it was first). */
async function createToken(path: string): Promise<string> {
  const dir = dirname(path);
  await Deno.mkdir(dirname(dir), { recursive: true });
  await Deno.mkdir(dir, { mode: 0o700 }).catch((e) => {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  });
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = Array.from(bytes, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const temp = `${path}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(temp, token + "\n", { mode: 0o600 });
  try {
    await Deno.link(temp, path);
    return token;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    return (await readToken(path))!;
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

function tokenFailure(path: string, e: unknown): ConfigurationError {
  return new ConfigurationError(
    `Cannot read or create the lease token file "${path}": ${
      (e as Error).message
    } (or set ${TOKEN_ENV})`,
    { cause: e },
  );
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // not permitted: the default applies
  }
}

/**
 * Who this invocation is, in the lease store and its history: the
 * library's `user@host` ({@linkcode defaultLeaseHolder}), which a take and
 * a `--force` record both use.
 */
export function ownHolder(): string {
  return defaultLeaseHolder();
}

/** Rigs whose lease store this invocation opened, to close at its end. */
const opened = new WeakSet<Rig>();

/**
 * The rig's lease store (null without `leases:`), owned by this
 * invocation's token: `FIWI_LEASE_TOKEN`, else the user's own (`readOnly`:
 * a token file that cannot be made is no error, for `lease list`). The
 * library's store takes its token from that variable when it opens, so the
 * user's is put there first; children (a nested fiwi on a local node)
 * inherit it and share the user's leases, as they should.
 */
export async function openOwnStore(
  rig: Rig,
  options: { readOnly?: boolean } = {},
): Promise<LeaseStore | null> {
  if (!rig.leases) return null;
  if (env(TOKEN_ENV) === undefined) {
    try {
      Deno.env.set(TOKEN_ENV, await userToken(tokenPath(env)));
    } catch (e) {
      // Reading the store needs no token: without one, nothing is "mine".
      if (!options.readOnly) throw e;
    }
  }
  opened.add(rig);
  return await rig.leaseStore();
}

/**
 * Close the rig's lease store if {@linkcode openOwnStore} opened it (its
 * ControlMasters stay warm: `rig.close()` is not for the command line).
 */
export async function closeLeaseStore(rig: Rig): Promise<void> {
  if (!opened.has(rig)) return;
  opened.delete(rig);
  await (await rig.leaseStore())?.close();
}

/**
 * A time for a one-line message: `14:32` today, else `2025-12-07 14:32`,
 * local time.
 */
export function clockText(at: Date, now: Date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const time = `${two(at.getHours())}:${two(at.getMinutes())}`;
  const sameDay = at.getFullYear() === now.getFullYear() &&
    at.getMonth() === now.getMonth() && at.getDate() === now.getDate();
  return sameDay
    ? time
    : `${at.getFullYear()}-${two(at.getMonth() + 1)}-${
      two(at.getDate())
    } ${time}`;
}

/**
 * When a lease ends, as {@linkcode clockText} says it, rounded up to the
 * minute: held until then, never past it.
 */
export function untilText(at: Date, now: Date = new Date()): string {
  return clockText(new Date(Math.ceil(at.getTime() / 60_000) * 60_000), now);
}

/**
 * Text from the store (another user's holder name or note) made safe for a
 * terminal and for one line: control characters become `\uXXXX`.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `Node "dut3" is` / `Nodes "dut[3-4]" are` (first), `node "dut5"` (later). */
function nodesPhrase(nodes: readonly string[], first: boolean, verb: string) {
  const several = nodes.length > 1;
  const noun = `${first ? "N" : "n"}ode${several ? "s" : ""}`;
  return `${noun} "${formatNodeList([...nodes])}"${
    first ? ` ${several ? "are" : "is"} ${verb}` : ""
  }`;
}

/**
 * Who holds which of `names`, in one line: `Node "dut3" is leased by
 * alice@ctl1 until 14:32 ("debugging wifi")`, further leases joined with
 * commas (`node "dut5" by bob@ctl2 until 15:00`). Only the nodes of `names`
 * are named. With no holder, the earlier waiters the nodes are promised to
 * (`Node "dut3" is promised to bob@ctl2, waiting since 14:02`).
 */
export function describeHolders(
  holders: readonly LeaseInfo[],
  names: readonly string[],
  now: Date = new Date(),
  waiting: readonly LeaseWaiter[] = [],
): string {
  const wanted = new Set(names);
  const ours = (nodes: readonly string[]) => {
    const mine = nodes.filter((n) => wanted.has(n));
    return mine.length ? mine : nodes;
  };
  const quoted = (note: string) =>
    note ? ` (${printable(JSON.stringify(note))})` : "";
  if (holders.length === 0) {
    return waiting.map((w, i) =>
      `${nodesPhrase(ours(w.nodes), i === 0, "promised")} to ${
        printable(w.holder)
      }${quoted(w.note)}, waiting since ${clockText(w.since, now)}`
    ).join(", ");
  }
  return holders.map((l, i) =>
    `${nodesPhrase(ours(l.nodes), i === 0, "leased")} by ${
      printable(l.holder)
    } until ${untilText(l.expiresAt, now)}${quoted(l.note)}`
  ).join(", ");
}

/** The refusal of nodes others hold (or are promised): one line, exit 2. */
export function heldError(
  holders: readonly LeaseInfo[],
  names: readonly string[],
  advice: string,
  options: { cause?: unknown; waiting?: readonly LeaseWaiter[] } = {},
): ConfigurationError {
  return new ConfigurationError(
    `${
      describeHolders(holders, names, new Date(), options.waiting)
    }: ${advice}`,
    { cause: options.cause },
  );
}

/** What {@linkcode guardNodes} is told by the command line. */
export interface GuardOptions {
  /** `--force`: go ahead anyway, and record it. */
  force: boolean;
  /**
   * Take a lease on the nodes for this long (`--lease`), instead of
   * checking them: held until the command ends.
   */
  hold?: number;
  /** Aborts a take. */
  signal?: AbortSignal;
  /** Says what `--force` overrode (a line on stderr). */
  notice: (text: string) => void;
}

/**
 * The check before a subcommand touches `nodes`: refuses (a
 * `ConfigurationError`, one line, exit 2) when another owner holds one of
 * them, or, on a rig with `requireLease: true`, when one has no lease of
 * this owner. `--force` goes ahead and records the override in the lease
 * history with both names. With `hold`, a lease is taken on the nodes
 * instead and returned (the caller renews and drops it). A rig without a
 * lease store checks nothing.
 */
export async function guardNodes(
  rig: Rig,
  nodes: readonly SshNode[],
  o: GuardOptions,
): Promise<Lease | null> {
  const names = nodes.map((n) => n.name);
  if (names.length === 0) return null;
  if (o.hold !== undefined) return await holdNodes(rig, names, o);
  const store = await openOwnStore(rig);
  if (!store) return null;
  const others = await store.held(names);
  const unleased = rig.requireLease
    ? await withoutOwnLease(store, names, others)
    : [];
  if (others.length === 0 && unleased.length === 0) return null;
  if (!o.force) {
    if (others.length) {
      throw heldError(others, names, "wait, or pass --force");
    }
    const list = formatNodeList(unleased);
    throw new ConfigurationError(
      `${unleased.length > 1 ? "Nodes" : "Node"} "${list}" ${
        unleased.length > 1 ? "have" : "has"
      } no lease of yours and rig "${rig.name}" requires one: fiwi lease take -w '${list}' --for DURATION, or pass --force`,
    );
  }
  const forced = names.filter((n) =>
    unleased.includes(n) || others.some((l) => l.nodes.includes(n))
  );
  await store.recordForce(forced, others, ownHolder());
  o.notice(
    others.length
      ? `Forced: ${describeHolders(others, names)} (recorded)`
      : `Forced: "${formatNodeList(unleased)}" without a lease (recorded)`,
  );
  return null;
}

/** Which of `names` no lease of this owner covers, others' aside. */
async function withoutOwnLease(
  store: LeaseStore,
  names: readonly string[],
  others: readonly LeaseInfo[],
): Promise<string[]> {
  const { leases } = await store.list();
  const covered = new Set(
    [...leases.filter((l) => l.mine), ...others].flatMap((l) => l.nodes),
  );
  return names.filter((n) => !covered.has(n));
}

/** `--lease`: take a lease on `names` (forced with `--force`). */
async function holdNodes(
  rig: Rig,
  names: string[],
  o: GuardOptions,
): Promise<Lease> {
  if (!await openOwnStore(rig)) {
    throw new ConfigurationError(
      `Rig "${rig.name}" has no lease store for --lease: set "leases:" in ${rig.file}`,
    );
  }
  try {
    return await rig.lease(names, {
      for: o.hold!,
      force: o.force,
      signal: o.signal,
    });
  } catch (e) {
    if (e instanceof LeaseHeldError) {
      throw heldError(e.holders, names, "wait, or pass --force", {
        cause: e,
        waiting: e.waiting,
      });
    }
    throw e;
  }
}
