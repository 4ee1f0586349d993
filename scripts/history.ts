/**
 * `fiwi history`: what fiwi did, from the state store every subcommand
 * records in (any terminal, any CI job on this machine): the recent
 * invocations (time, who, what, where, outcome counts), one invocation
 * node by node (`fiwi history ID`), and the poll samples as CSV or NDJSON
 * (`--samples`), filtered by node set, command and time range.
 *
 * @module
 */

import {
  ConfigurationError,
  type InvocationRecord,
  type SampleFilter,
  StateStore,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  intFlag,
  runCli,
  UsageError,
  userPath,
} from "./_cli.ts";
import {
  invocationDetail,
  invocationJson,
  invocationTable,
  nodeRecordJson,
  parseTimeBound,
  sampleCsv,
  sampleJson,
  SAMPLES_CSV_HEADER,
} from "./_history.ts";
import { statePathOf } from "./_state.ts";
import { expandRanges } from "../nodeset.ts";

/** Invocations listed unless `--limit` says otherwise. */
const DEFAULT_LIMIT = 20;
/** Invocations looked through for a time range or an id prefix. */
const SEARCH_LIMIT = 10_000;
/** Samples read per query while exporting. */
const EXPORT_PAGE = 10_000;

export const SPEC: CliSpec = {
  name: "history",
  summary:
    "Show recent fiwi invocations from the state store, one node by node, or export poll samples.",
  positional: "[ID]",
  connects: false,
  checksLeases: false,
  state: "read",
  options: [
    {
      name: "limit",
      short: "n",
      arg: "N",
      help:
        `list at most N invocations, newest first (default ${DEFAULT_LIMIT})`,
    },
    {
      name: "since",
      arg: "TIME",
      help:
        'only what started at or after TIME: a duration ago ("2h", "7d") or an ISO time',
    },
    {
      name: "until",
      arg: "TIME",
      help: "only what started before TIME (same forms as --since)",
    },
    {
      name: "command",
      arg: "CMD",
      help: "only invocations (or samples) of exactly this command text",
    },
    {
      name: "samples",
      help: "export poll samples (CSV unless --json) instead of invocations",
    },
    {
      name: "csv",
      help:
        "with --samples: CSV records time,node,command,tick,value,output,invocation (the default)",
    },
  ],
  notes:
    "Every subcommand that contacts nodes records its invocation in the state store; this\n" +
    "reads it. ID may be a unique prefix of an invocation id. With --json: one JSON object\n" +
    "per invocation (or per sample) per line, or one object for ID. -w, -x and --hostfile\n" +
    "narrow --samples and the list to those nodes.",
  examples: [
    "fiwi history",
    "fiwi history 3f2a9c1e",
    "fiwi history --since 1d --json",
    "fiwi history --samples -w @duts --command uptime --since 2h > uptime.csv",
  ],
};

/** What the command line asks of the store. */
interface Query {
  since?: Date;
  until?: Date;
  command?: string;
  /** Node names, when -w, -x, --hostfile or --pick narrow them. */
  nodes?: string[];
}

function query(ctx: CliContext, nodes: string[] | undefined): Query {
  const { flags } = ctx;
  const now = Date.now();
  const q: Query = {};
  if (flags.since !== undefined) {
    q.since = parseTimeBound("since", String(flags.since), now);
  }
  if (flags.until !== undefined) {
    q.until = parseTimeBound("until", String(flags.until), now);
  }
  if (flags.command !== undefined) q.command = String(flags.command);
  if (nodes) q.nodes = nodes;
  return q;
}

/** Whether the command line narrows the nodes (else every node counts). */
function narrowsNodes(ctx: CliContext): boolean {
  const { lists, flags } = ctx;
  return lists.nodes.length + lists.exclude.length + lists.hostfile.length >
      0 || flags.pick !== undefined;
}

function checkFlags(ctx: CliContext): void {
  const { flags, rest } = ctx;
  if (rest.length > 1) {
    throw new UsageError(`Unexpected argument "${rest[1]}": see --help`);
  }
  if (flags.csv && !flags.samples) {
    throw new UsageError('Option "--csv" goes with "--samples"');
  }
  if (flags.csv && ctx.json) {
    throw new UsageError('Give either "--csv" or "--json", not both');
  }
  if (flags.samples && rest.length > 0) {
    throw new UsageError(
      `Give either "--samples" or an invocation id ("${rest[0]}"), not both`,
    );
  }
}

/** The invocation `id` names: exact, else a unique prefix of a recent one. */
function findInvocation(store: StateStore, id: string) {
  const exact = store.invocation(id);
  if (exact) return exact;
  const matches = store.invocations({ limit: SEARCH_LIMIT })
    .filter((r) => r.id.startsWith(id));
  if (matches.length > 1) {
    throw new UsageError(
      `Invocation id "${id}" is ambiguous: ${
        matches.slice(0, 5).map((r) => r.id).join(", ")
      }${matches.length > 5 ? ", ..." : ""}`,
    );
  }
  const found = matches.length === 1 && store.invocation(matches[0].id);
  if (!found) {
    throw new ConfigurationError(
      `No invocation "${id}" in the state store "${store.path}": see fiwi history`,
    );
  }
  return found;
}

function showOne(ctx: CliContext, store: StateStore, id: string): number {
  const { invocation, outcomes } = findInvocation(store, id);
  if (ctx.json) {
    ctx.out.out(JSON.stringify({
      ...invocationJson(invocation),
      outcomes: outcomes.map(nodeRecordJson),
    }));
  } else {
    ctx.out.outText(invocationDetail(invocation, outcomes).join("\n"));
  }
  return 0;
}

/** The names of a folded node set (`n[1-3],pdu`); a part that does not expand stays as it is. */
export function unfold(folded: string): string[] {
  return folded.split(/,(?![^[]*\])/).flatMap((part) => {
    try {
      return expandRanges(part);
    } catch {
      return [part];
    }
  });
}

/** Whether `r` is within the query (the store lists invocations unfiltered). */
function matches(r: InvocationRecord, q: Query, nodes: Set<string> | null) {
  if (q.since && r.startedAt < q.since) return false;
  if (q.until && r.startedAt >= q.until) return false;
  if (q.command !== undefined && r.command !== q.command) return false;
  return !nodes || unfold(r.nodes).some((n) => nodes.has(n));
}

function list(ctx: CliContext, store: StateStore, q: Query): number {
  const limit = intFlag(ctx.flags, "limit", 1) ?? DEFAULT_LIMIT;
  const filtered = q.since || q.until || q.command !== undefined || q.nodes;
  const nodes = q.nodes ? new Set(q.nodes) : null;
  const records = store.invocations({ limit: filtered ? SEARCH_LIMIT : limit })
    .filter((r) => matches(r, q, nodes))
    .slice(0, limit);
  if (ctx.json) {
    for (const r of records) ctx.out.out(JSON.stringify(invocationJson(r)));
  } else if (records.length === 0) {
    ctx.out.err(
      `No invocations recorded in "${store.path}"${
        filtered ? " that match" : ""
      }`,
    );
  } else {
    ctx.out.outText(invocationTable(records).join("\n"));
  }
  return 0;
}

function exportSamples(ctx: CliContext, store: StateStore, q: Query): number {
  const filter: SampleFilter = { limit: EXPORT_PAGE };
  if (q.nodes) filter.nodes = q.nodes;
  if (q.command !== undefined) filter.command = q.command;
  if (q.since) filter.since = q.since;
  if (q.until) filter.until = q.until;
  if (!ctx.json) ctx.out.out(SAMPLES_CSV_HEADER);
  let after = 0;
  for (;;) {
    const page = store.samples({ ...filter, afterRowId: after });
    for (const s of page) {
      ctx.out.out(ctx.json ? JSON.stringify(sampleJson(s)) : sampleCsv(s));
    }
    if (page.length < EXPORT_PAGE) return 0;
    after = page[page.length - 1].rowId;
  }
}

async function history(ctx: CliContext): Promise<number> {
  checkFlags(ctx);
  intFlag(ctx.flags, "limit", 1);
  const { rig, nodes } = await ctx.selectNodes();
  const q = query(
    ctx,
    narrowsNodes(ctx) ? nodes.map((n) => n.name) : undefined,
  );
  const path = statePathOf(ctx.flags, rig, userPath)!;
  await using store = await StateStore.open(path);
  if (ctx.rest.length === 1) return showOne(ctx, store, ctx.rest[0]);
  return ctx.flags.samples ? exportSamples(ctx, store, q) : list(ctx, store, q);
}

/** `fiwi history`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, history);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
