/**
 * `/api/samples`: the charts' history, one page at a time. The page asks
 * for the numeric samples after a rowId (oldest first) up to the rowId its
 * snapshot was taken at; live samples after that come over `/events`, so
 * none is drawn twice or missed. Rows are arrays, the repeated strings
 * (nodes, commands, invocations) given once per page: 24 hours of 64
 * nodes at 10 s is half a million rows.
 *
 * @module
 */

import type { DashboardStore } from "./_watch.ts";

/** Rows per page unless asked otherwise, and the most a page may have. */
export const HISTORY_PAGE = 20_000;
const MAX_PAGE = 50_000;

/** One page: rows `[rowId, atMs, node, command, value, invocation, tick]` by index. */
export interface HistoryPage {
  nodes: string[];
  commands: string[];
  invs: string[];
  rows: [number, number, number, number, number, number, number][];
  /** The `afterRowId` of the next page, or null when this was the last. */
  next: number | null;
}

function whole(query: URLSearchParams, key: string): number | undefined {
  const text = query.get(key);
  if (text === null || text === "") return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Invalid ${key} "${text}": give a whole number >= 0`);
  }
  return n;
}

/** Index of each distinct value, in order of first use. */
class Names {
  readonly list: string[] = [];
  #index = new Map<string, number>();
  of(name: string): number {
    let i = this.#index.get(name);
    if (i === undefined) {
      this.#index.set(name, i = this.list.length);
      this.list.push(name);
    }
    return i;
  }
}

/**
 * One page of history. Query: `afterRowId`, `untilRowId`, `since` (ms
 * since the epoch), `limit`, `command`. Throws `RangeError` for a bad
 * number.
 */
export function historyPage(
  store: Pick<DashboardStore, "samples">,
  query: URLSearchParams,
): HistoryPage {
  const after = whole(query, "afterRowId") ?? 0;
  const until = whole(query, "untilRowId") ?? Number.MAX_SAFE_INTEGER;
  const since = whole(query, "since");
  const limit = Math.min(whole(query, "limit") ?? HISTORY_PAGE, MAX_PAGE);
  if (limit < 1) {
    throw new RangeError(`Invalid limit ${limit}: give at least 1`);
  }
  const command = query.get("command") ?? undefined;
  const page = after >= until ? [] : store.samples({
    afterRowId: after,
    limit,
    ...(since !== undefined && { since: new Date(since) }),
    ...(command !== undefined && { command }),
  });
  const nodes = new Names(), commands = new Names(), invs = new Names();
  const rows: HistoryPage["rows"] = [];
  for (const s of page) {
    if (s.rowId > until || s.value === null) continue;
    rows.push([
      s.rowId,
      s.at.getTime(),
      nodes.of(s.node),
      commands.of(s.command),
      s.value,
      invs.of(s.invocationId),
      s.tick,
    ]);
  }
  const last = page.at(-1)?.rowId;
  return {
    nodes: nodes.list,
    commands: commands.list,
    invs: invs.list,
    rows,
    next: page.length === limit && last !== undefined && last < until
      ? last
      : null,
  };
}
