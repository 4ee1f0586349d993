/**
 * The one place that decides who may have which nodes: expiry and fairness,
 * as pure functions over the rows a store transaction has loaded. Both
 * stores call them under their one write lock, so the rows are the truth.
 *
 * Fairness is strict FIFO per node: a request may not take a node that an
 * earlier waiter of another token also wants, even when that node is free
 * (no back-filling). The earliest waiter for a node is blocked by leases
 * only, and leases expire, so every waiter is served in bounded time: a
 * large set is never starved by a stream of small ones. The price is that a
 * small request may wait behind a large one whose other nodes are busy.
 *
 * @module
 */

/** A lease row. Times are ms since the epoch by the store's clock. */
export interface LeaseRow {
  id: string;
  token: string;
  holder: string;
  note: string;
  nodes: string[];
  takenAt: number;
  expiresAt: number;
}

/** A waiter row; `seq` is its place in the one queue. */
export interface WaiterRow {
  seq: number;
  id: string;
  token: string;
  holder: string;
  note: string;
  nodes: string[];
  since: number;
  heartbeatAt: number;
}

/** What stands between a request and its nodes. */
export interface Blockers {
  /** Live leases of other tokens on a requested node. */
  held: LeaseRow[];
  /** Earlier waiters of other tokens for a requested node. */
  ahead: WaiterRow[];
}

function overlaps(a: readonly string[], b: ReadonlySet<string>): boolean {
  return a.some((n) => b.has(n));
}

/** Leases that have ended at `now`: a lease ends at its expiry, whoever holds it. */
export function expiredAt(
  leases: readonly LeaseRow[],
  now: number,
): LeaseRow[] {
  return leases.filter((l) => l.expiresAt <= now);
}

/** Waiters whose holder has not shown life for `ttl` ms: they leave the queue. */
export function staleAt(
  waiters: readonly WaiterRow[],
  now: number,
  ttl: number,
): WaiterRow[] {
  return waiters.filter((w) => now - w.heartbeatAt > ttl);
}

/**
 * What blocks a request for `nodes` by `token`: others' live leases on them,
 * and others' waiters for them queued before `seq` (all of them when the
 * request is not queued). Leases and waiters of the same token never block.
 */
export function blockers(
  nodes: readonly string[],
  token: string,
  seq: number | undefined,
  leases: readonly LeaseRow[],
  waiters: readonly WaiterRow[],
  now: number,
): Blockers {
  const wanted = new Set(nodes);
  return {
    held: leases.filter((l) =>
      l.token !== token && l.expiresAt > now && overlaps(l.nodes, wanted)
    ),
    ahead: waiters.filter((w) =>
      w.token !== token && (seq === undefined || w.seq < seq) &&
      overlaps(w.nodes, wanted)
    ),
  };
}

/** Live leases (any token) on any of `nodes`; all of them without `nodes`. */
export function liveOn(
  leases: readonly LeaseRow[],
  now: number,
  nodes?: readonly string[],
): LeaseRow[] {
  const wanted = nodes && new Set(nodes);
  return leases.filter((l) =>
    l.expiresAt > now && (!wanted || overlaps(l.nodes, wanted))
  );
}
