/**
 * `fiwi lease take|drop|renew|list|history`: leases on nodes, in the store
 * the rig file names (`leases:`, a SQLite file or a `postgres://` URL). A
 * lease covers a set of nodes, all or nothing, until it expires; while it
 * lasts every other owner's `run`, `poll`, `push`, `pull`, `power`,
 * `consoles`, `check` and `discover` refuse those nodes (`_lease.ts`).
 * The owner is the token `FIWI_LEASE_TOKEN`, else the user's own (in the
 * state directory), so a lease taken in one shell serves the user's later
 * commands, and a CI job's steps share one by setting the variable.
 *
 * @module
 */

import {
  type Lease,
  LeaseHeldError,
  type LeaseInfo,
  type LeaseStore,
  type Rig,
} from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import {
  describeHolders,
  heldError,
  openOwnStore,
  TOKEN_ENV,
} from "./_lease.ts";
import {
  leaseJson,
  localTime,
  type Scope,
  showHistory,
  showLeases,
} from "./_lease_views.ts";
import { isoLocal } from "./_output.ts";

const ACTIONS = ["take", "drop", "renew", "list", "history"] as const;
type Action = (typeof ACTIONS)[number];

export const SPEC: CliSpec = {
  name: "lease",
  summary:
    "Take, drop, renew and list leases on nodes, so that others leave them alone.",
  positional: "take|drop|renew|list|history [ID]",
  connects: false,
  options: [
    {
      name: "for",
      arg: "DURATION",
      help:
        "take: how long the lease lasts (required); renew: from now (default: as last given)",
    },
    {
      name: "wait",
      arg: "DURATION",
      help:
        "take: wait up to DURATION for nodes others hold, in turn (default: refuse at once)",
    },
    {
      name: "note",
      arg: "TEXT",
      help: "take: what it is for, shown to others",
    },
    {
      name: "force",
      help: "take: take the nodes even from their holders (recorded)",
    },
    {
      name: "since",
      arg: "DURATION",
      help: "history: only the last DURATION (e.g. 24h; default: all)",
    },
  ],
  notes: [
    'The store is the rig\'s "leases:" (a SQLite file, or a postgres:// URL). take leases',
    "the -w nodes, all or none, and prints the lease's id and expiry; with --wait it",
    "queues behind earlier requests for the same nodes. drop ends a lease: ID, the ones",
    "covering -w, or every lease of yours. renew extends ID (or each lease of yours,",
    "or those covering -w) from now. list shows every lease and waiting request of",
    "every owner; history every take, renew, drop, expiry and --force, with -w only",
    "those of those nodes.",
    `Leases are yours by owner token: ${TOKEN_ENV} when set (a CI job sets it once for`,
    "all its steps), else your own, made once in ${XDG_STATE_HOME:-~/.local/state}/fiwi/",
    "lease-token (0600). Subcommands that touch nodes refuse a node another owner holds",
    "(exit 2) unless given --force, which the history records with both names.",
    "A node others hold makes take exit 2, as does --wait running out. With --json, one",
    "object per lease (or event), then a summary object.",
  ].join("\n"),
  examples: [
    'fiwi lease take -w @duts --for 2h --note "wifi regression"',
    "fiwi lease take -w dut3 --for 30m --wait 1h",
    "fiwi lease list",
    "fiwi lease renew --for 1h",
    "fiwi lease drop -w @duts",
    "fiwi lease history -w dut3 --since 24h",
  ],
};

/** A lease just taken, as {@linkcode LeaseStore.list} would show it. */
function infoOf(lease: Lease): LeaseInfo {
  const { id, holder, note, takenAt, expiresAt } = lease;
  return {
    id,
    nodes: [...lease.nodes],
    holder,
    note,
    takenAt,
    expiresAt,
    mine: true,
  };
}

/** What every action works with: `names` are what `-w`, `-x` and `--hostfile` select. */
interface Leasing extends Scope {
  rig: Rig;
}

/**
 * The rig, its store (a one-line error without `leases:`), the names
 * selected. `readOnly` (list, history): works without a token of one's own.
 */
async function leasing(
  ctx: CliContext,
  readOnly = false,
): Promise<Leasing> {
  const { nodes, hostfile, exclude } = ctx.lists;
  const given = nodes.length + hostfile.length + exclude.length > 0;
  const selected = await ctx.selectNodes();
  const store = await openOwnStore(selected.rig, { readOnly });
  if (!store) {
    throw new UsageError(
      `Rig "${selected.rig.name}" has no lease store: set "leases:" (a SQLite file or a postgres:// URL) in ${selected.rig.file}`,
    );
  }
  return {
    rig: selected.rig,
    store,
    names: given ? selected.nodes.map((n) => n.name) : null,
  };
}

async function take(ctx: CliContext): Promise<number> {
  const { flags, out, json } = ctx;
  const forMs = durationFlag(flags, "for");
  if (forMs === undefined || forMs <= 0) {
    throw new UsageError(
      'Give how long the lease lasts: fiwi lease take -w PATTERN --for DURATION (e.g. "2h")',
    );
  }
  const wait = durationFlag(flags, "wait") ?? 0;
  const note = (flags.note as string | undefined) ?? "";
  const { rig, store, names } = await leasing(ctx);
  if (!names) {
    throw new UsageError(
      "Give the nodes to lease: fiwi lease take -w PATTERN --for DURATION",
    );
  }
  if (wait > 0) {
    const others = await store.held(names);
    if (others.length) {
      out.err(`Waiting up to ${flags.wait}: ${describeHolders(others, names)}`);
    }
  }
  let lease: Lease;
  try {
    lease = await rig.lease(names, {
      for: forMs,
      wait,
      note,
      force: flags.force === true,
      signal: ctx.interrupt,
    });
  } catch (e) {
    if (ctx.interrupt.aborted) {
      out.err("Interrupted while waiting: no lease taken");
      return ctx.interrupt.exitCode ?? 130;
    }
    if (!(e instanceof LeaseHeldError)) throw e;
    throw heldError(
      e.holders,
      names,
      wait > 0
        ? `still held after --wait ${flags.wait}`
        : "give --wait DURATION to queue, or --force",
      { cause: e, waiting: e.waiting },
    );
  }
  if (json) {
    out.out(JSON.stringify(leaseJson(infoOf(lease))));
    out.out(JSON.stringify({ summary: { taken: 1, store: store.location } }));
  } else {
    out.out(
      `${lease.id}  ${formatNodeList([...lease.nodes])}  until ${
        localTime(lease.expiresAt)
      }`,
    );
  }
  return 0;
}

/** This owner's leases: those covering any of `names` (every one when null). */
async function ownLeases(
  store: LeaseStore,
  names: string[] | null,
): Promise<LeaseInfo[]> {
  const { leases } = await store.list();
  const wanted = names && new Set(names);
  return leases.filter((l) =>
    l.mine && (!wanted || l.nodes.some((n) => wanted.has(n)))
  );
}

/** The leases an ID or `-w` names; an ID that names none is an error. */
async function targets(
  ctx: CliContext,
  { store, names }: Leasing,
): Promise<LeaseInfo[]> {
  const [, id, extra] = ctx.rest;
  if (extra !== undefined) {
    throw new UsageError(`Unexpected argument "${extra}": see --help`);
  }
  if (id !== undefined && names) {
    throw new UsageError("Give either a lease ID or -w PATTERN, not both");
  }
  if (id === undefined) return await ownLeases(store, names);
  const { leases } = await store.list();
  const found = leases.find((l) => l.id === id);
  if (!found) {
    throw new UsageError(
      `No lease "${id}" is held (expired, dropped, or never taken): see fiwi lease list`,
    );
  }
  if (!found.mine) {
    throw heldError([found], found.nodes, `lease "${id}" is not yours`);
  }
  return [found];
}

async function drop(ctx: CliContext): Promise<number> {
  const { out, json } = ctx;
  const scope = await leasing(ctx);
  const { store } = scope;
  const leases = await targets(ctx, scope);
  const dropped: LeaseInfo[] = [];
  for (const l of leases) if (await store.drop(l.id)) dropped.push(l);
  if (json) {
    for (const l of dropped) {
      out.out(JSON.stringify({ ...leaseJson(l), dropped: true }));
    }
    out.out(JSON.stringify({ summary: { dropped: dropped.length } }));
  } else if (dropped.length === 0) {
    out.err("No lease of yours to drop");
  } else {
    for (const l of dropped) {
      out.err(`Dropped ${l.id}: ${formatNodeList(l.nodes)}`);
    }
  }
  return 0;
}

/**
 * The duration lease `l` was last given (taken or renewed for): its expiry
 * less the time of its latest take or renew event, both by the store's
 * clock.
 */
async function lastSpan(store: LeaseStore, l: LeaseInfo): Promise<number> {
  const events = await store.history({ node: l.nodes[0], since: l.takenAt });
  const last = events.findLast((e) =>
    e.leaseId === l.id && (e.kind === "take" || e.kind === "renew")
  );
  const from = last?.at ?? l.takenAt;
  return Math.max(1, l.expiresAt.getTime() - from.getTime());
}

async function renew(ctx: CliContext): Promise<number> {
  const { flags, out, json } = ctx;
  const forMs = durationFlag(flags, "for");
  if (forMs !== undefined && forMs <= 0) {
    throw new UsageError(
      `Invalid --for "${flags.for}": give a duration above 0`,
    );
  }
  const scope = await leasing(ctx);
  const { store } = scope;
  const leases = await targets(ctx, scope);
  if (leases.length === 0) {
    throw new UsageError("No lease of yours to renew: see fiwi lease list");
  }
  for (const l of leases) {
    const until = await store.renew(l.id, forMs ?? await lastSpan(store, l));
    if (json) {
      out.out(
        JSON.stringify({
          ...leaseJson(l),
          expiresAt: isoLocal(until.getTime()),
        }),
      );
    } else {
      out.out(`${l.id}  ${formatNodeList(l.nodes)}  until ${localTime(until)}`);
    }
  }
  if (json) out.out(JSON.stringify({ summary: { renewed: leases.length } }));
  return 0;
}

function parseAction(rest: string[]): Action {
  const [action] = rest;
  if (action === undefined) {
    throw new UsageError(
      'Missing action: give one of "take", "drop", "renew", "list", "history"',
    );
  }
  if (!ACTIONS.includes(action as Action)) {
    throw new UsageError(
      `Unknown action "${action}": use "take", "drop", "renew", "list" or "history"`,
    );
  }
  const takesId = action === "drop" || action === "renew";
  if (!takesId && rest.length > 1) {
    throw new UsageError(`Unexpected argument "${rest[1]}": see --help`);
  }
  return action as Action;
}

const BODIES: Record<Action, (ctx: CliContext) => Promise<number>> = {
  take,
  drop,
  renew,
  list: async (ctx) => showLeases(ctx.out, ctx.json, await leasing(ctx, true)),
  history: async (ctx) => {
    const since = durationFlag(ctx.flags, "since");
    const scope = await leasing(ctx, true);
    const from = since === undefined ? undefined : new Date(Date.now() - since);
    return await showHistory(ctx.out, ctx.json, scope, from);
  },
};

/** `fiwi lease`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  // `lease drop 7 --json`: options may follow the action and the ID, which
  // the common parser would take for the start of positional arguments.
  let lead = 0;
  while (lead < args.length && !args[lead].startsWith("-")) lead++;
  const ordered = [...args.slice(lead), ...args.slice(0, lead)];
  return runCli(SPEC, ordered, (ctx) => BODIES[parseAction(ctx.rest)](ctx));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
