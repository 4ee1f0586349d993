/**
 * The lease store both backends share: every operation is one transaction
 * that reads the store's clock, ends what has expired (recording it at its
 * expiry time), and then decides with `_decide.ts`. A backend supplies only
 * its dialect: how to run a serialised transaction, its clock, and how to
 * explain its errors.
 *
 * Waiting polls the store with the one backoff helper (20 ms doubling to
 * 250 ms), refreshing the waiter's heartbeat each time; a waiter unseen for
 * {@linkcode WAITER_TTL} ms leaves the queue, so a killed waiter blocks no
 * one for long.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../errors.ts";
import { backoff, resolveRetry } from "../process/backoff.ts";
import {
  type Blockers,
  blockers,
  expiredAt,
  type LeaseRow,
  liveOn,
  staleAt,
  type WaiterRow,
} from "./_decide.ts";
import {
  Lease,
  type LeaseEvent,
  type LeaseEventKind,
  LeaseHeldError,
  type LeaseHistoryOptions,
  type LeaseInfo,
  LeaseLostError,
  type LeaseRequest,
  type LeaseStore,
  type LeaseWaiter,
} from "./_lease.ts";
import type { Query } from "./_schema.ts";
import {
  checkMs,
  checkNodes,
  checkText,
  defaultLeaseHolder,
  envOr,
  type Resolved,
  resolveRequest,
} from "./_request.ts";
import { leaseRow, names, newId, num, waiterInfo, waiterRow } from "./_rows.ts";

const log = getLogger(["fiwi", "lease"]);

/** A waiter whose heartbeat is older than this (ms) has left the queue. */
export const WAITER_TTL = 5_000;
/** Waits between polls of a waiting request: 20 ms doubling to 250 ms. */
const POLL = resolveRetry({ attempts: 100, baseDelay: 20, maxDelay: 250 });
/** History records returned when no limit is given. */
const DEFAULT_HISTORY_LIMIT = 1000;

/** What a backend provides: its dialect of the one algorithm. */
export interface Backend {
  /** Which statements of a schema version to run. */
  readonly dialect: "sqlite" | "postgres";
  /** SQL yielding the store clock as integer ms since the epoch, column `now`. */
  readonly nowSql: string;
  /** SQL condition: text column `column` contains the `?` parameter. */
  contains(column: string): string;
  /**
   * Run `fn` as one transaction, serialised against every other writer of
   * the store (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock).
   */
  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  /**
   * A driver error as one line naming the store; `transient` when the
   * store is unreachable or locked (a waiter rides that out a while).
   */
  explain(e: unknown): { error: FiwiError; transient: boolean };
  /** Close the connection. */
  close(): Promise<void>;
}

/** The rows of one transaction: the clock, and what is live at it. */
interface State {
  q: Query;
  now: number;
  leases: LeaseRow[];
  waiters: WaiterRow[];
}

/** Errors a waiter may ride out (an unreachable or locked store). */
const transientErrors = new WeakSet<Error>();

/** The store over a {@linkcode Backend}; {@linkcode openLeaseStore} makes one. */
export class SqlLeaseStore implements LeaseStore {
  readonly location: string;
  readonly token: string;
  #backend: Backend;
  #timeout: number;
  #holder: string | undefined;
  #closing = new AbortController();
  #closed = false;
  #busy = new Set<Promise<unknown>>();
  /** Leases taken here, to stop their renewals on close. */
  #taken = new Map<string, Lease>();
  /** Tokens that are "mine": the store's own and every one it took with. */
  #tokens = new Set<string>();

  constructor(backend: Backend, location: string, timeout: number) {
    this.#backend = backend;
    this.location = location;
    this.#timeout = timeout;
    this.token = envOr("FIWI_LEASE_TOKEN") ?? crypto.randomUUID();
    this.#tokens.add(this.token);
  }

  // --- transactions ------------------------------------------------------

  /** Run `fn` in one transaction after expiring what has ended. */
  async #tx<T>(fn: (s: State) => Promise<T>): Promise<T> {
    if (this.#closed) {
      throw new ConfigurationError(`Lease store "${this.location}" is closed`);
    }
    try {
      return await this.#backend.transaction(async (q) => {
        const now = num((await q(this.#backend.nowSql))[0].now);
        return fn(await this.#load(q, now));
      });
    } catch (e) {
      if (e instanceof FiwiError || e instanceof RangeError) throw e;
      const { error, transient } = this.#backend.explain(e);
      if (transient) transientErrors.add(error);
      throw error;
    }
  }

  /** Load leases and waiters, ending expired leases and stale waiters. */
  async #load(q: Query, now: number): Promise<State> {
    const leases = (await q("SELECT * FROM leases")).map(leaseRow);
    const waiters = (await q("SELECT * FROM waiters ORDER BY seq")).map(
      waiterRow,
    );
    const ended = expiredAt(leases, now);
    for (const l of ended) {
      await this.#record(q, l.expiresAt, "expire", l.id, l.nodes, l);
      await q("DELETE FROM leases WHERE id = ?", [l.id]);
    }
    const stale = staleAt(waiters, now, WAITER_TTL);
    for (const w of stale) await q("DELETE FROM waiters WHERE id = ?", [w.id]);
    return {
      q,
      now,
      leases: leases.filter((l) => !ended.includes(l)),
      waiters: waiters.filter((w) => !stale.includes(w)),
    };
  }

  async #record(
    q: Query,
    at: number,
    kind: LeaseEventKind,
    leaseId: string,
    nodes: readonly string[],
    who: { holder: string; note: string },
    overridden?: readonly string[],
  ): Promise<void> {
    await q(
      "INSERT INTO history (at, kind, lease_id, nodes, holder, note, overridden) VALUES (?, ?, ?, ?, ?, ?, ?)",
      [
        at,
        kind,
        leaseId,
        JSON.stringify(nodes),
        who.holder,
        who.note,
        overridden ? JSON.stringify(overridden) : null,
      ],
    );
  }

  #info(l: LeaseRow): LeaseInfo {
    return {
      id: l.id,
      nodes: l.nodes,
      holder: l.holder,
      note: l.note,
      takenAt: new Date(l.takenAt),
      expiresAt: new Date(l.expiresAt),
      mine: this.#tokens.has(l.token),
    };
  }

  /** Keep `p` counted until it settles, so close() can wait for it. */
  #track<T>(p: Promise<T>): Promise<T> {
    this.#busy.add(p);
    const done = () => this.#busy.delete(p);
    p.then(done, done);
    return p;
  }

  // --- take and wait -----------------------------------------------------

  async take(request: LeaseRequest): Promise<Lease> {
    const r = resolveRequest(request, {
      token: this.token,
      holder: () => this.#holder ??= defaultLeaseHolder(),
    });
    return await this.#track(this.#take(r));
  }

  async #take(r: Resolved): Promise<Lease> {
    r.signal?.throwIfAborted();
    const first = await this.#tx((s) => this.#attempt(s, r, undefined));
    if (first.lease) return this.#handle(first.lease, r);
    if (first.waiterId === undefined) {
      throw this.#heldError(r, first.blockers, "");
    }
    return this.#wait(r, first.waiterId, first.blockers);
  }

  /**
   * One try: take the nodes when nothing blocks (or by force), else queue
   * (`waiterId` undefined and a wait asked: join; given: refresh the
   * heartbeat, joining again at the back if the waiter was dropped as stale).
   */
  async #attempt(
    s: State,
    r: Resolved,
    waiterId: string | undefined,
  ): Promise<{ lease?: LeaseRow; blockers: Blockers; waiterId?: string }> {
    const seq = s.waiters.find((w) => w.id === waiterId)?.seq;
    const found = blockers(r.nodes, r.token, seq, s.leases, s.waiters, s.now);
    if (r.force || (found.held.length === 0 && found.ahead.length === 0)) {
      const lease = await this.#insertLease(s, r, found.held);
      if (waiterId) await s.q("DELETE FROM waiters WHERE id = ?", [waiterId]);
      return { lease, blockers: found };
    }
    if (r.wait === 0) return { blockers: found };
    if (waiterId !== undefined && seq !== undefined) {
      await s.q("UPDATE waiters SET heartbeat_at = ? WHERE id = ?", [
        s.now,
        waiterId,
      ]);
      return { blockers: found, waiterId };
    }
    if (waiterId !== undefined) {
      log.warn("Waiter {id} was dropped from the queue; joining again", {
        id: waiterId,
      });
    }
    const id = waiterId ?? newId();
    await s.q(
      "INSERT INTO waiters (id, token, holder, note, nodes, since, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      [id, r.token, r.holder, r.note, JSON.stringify(r.nodes), s.now, s.now],
    );
    return { blockers: found, waiterId: id };
  }

  async #insertLease(
    s: State,
    r: Resolved,
    overridden: LeaseRow[],
  ): Promise<LeaseRow> {
    const lease: LeaseRow = {
      id: newId(),
      token: r.token,
      holder: r.holder,
      note: r.note,
      nodes: r.nodes,
      takenAt: s.now,
      expiresAt: s.now + r.for,
    };
    if (overridden.length > 0) {
      for (const l of overridden) {
        await s.q("DELETE FROM leases WHERE id = ?", [l.id]);
      }
      await this.#record(
        s.q,
        s.now,
        "force",
        lease.id,
        r.nodes,
        r,
        overridden.map((l) => l.holder),
      );
    }
    await s.q(
      "INSERT INTO leases (id, token, holder, note, nodes, taken_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      [
        lease.id,
        lease.token,
        lease.holder,
        lease.note,
        JSON.stringify(lease.nodes),
        lease.takenAt,
        lease.expiresAt,
      ],
    );
    await this.#record(s.q, s.now, "take", lease.id, r.nodes, r);
    return lease;
  }

  #handle(row: LeaseRow, r: Resolved): Lease {
    this.#tokens.add(r.token);
    const lease = new Lease(this, this.#info(row), r.for);
    this.#taken.set(row.id, lease);
    return lease;
  }

  #heldError(r: Resolved, b: Blockers, prefix: string): LeaseHeldError {
    return new LeaseHeldError(
      r.nodes,
      b.held.map((l) => this.#info(l)),
      b.ahead.map(waiterInfo),
      { prefix },
    );
  }

  /** Poll until the nodes are ours, the wait runs out, or a signal aborts. */
  async #wait(r: Resolved, waiterId: string, first: Blockers): Promise<Lease> {
    const stop = AbortSignal.any([
      AbortSignal.timeout(r.wait),
      this.#closing.signal,
      ...(r.signal ? [r.signal] : []),
    ]);
    let last = first;
    let lease: LeaseRow | undefined;
    let failingSince: number | undefined;
    const attempt = async (): Promise<boolean> => {
      if (stop.aborted) return false;
      try {
        const out = await this.#tx((s) => this.#attempt(s, r, waiterId));
        failingSince = undefined;
        lease = out.lease;
        last = out.blockers;
      } catch (e) {
        if (!transientErrors.has(e as Error)) throw e;
        failingSince ??= performance.now();
        if (performance.now() - failingSince > this.#timeout) throw e;
        log.warn("Lease store unreachable while waiting: {error}", {
          error: (e as Error).message,
        });
      }
      return lease !== undefined;
    };
    try {
      while (lease === undefined && !stop.aborted) {
        await backoff(attempt, POLL, {
          signal: stop,
          again: (done) => !done && !stop.aborted,
        });
      }
    } finally {
      if (lease === undefined) await this.#leaveQueue(waiterId);
    }
    if (lease) return this.#handle(lease, r);
    if (r.signal?.aborted) throw r.signal.reason;
    if (this.#closing.signal.aborted) {
      throw new ConfigurationError(
        `Lease store "${this.location}" was closed while waiting for ${
          r.nodes.map((n) => `"${n}"`).join(", ")
        }`,
      );
    }
    throw this.#heldError(r, last, `Waited ${r.wait} ms: `);
  }

  /** Leave the queue; when the store cannot be reached, the heartbeat lapses instead. */
  async #leaveQueue(waiterId: string): Promise<void> {
    try {
      await this.#tx((s) =>
        s.q("DELETE FROM waiters WHERE id = ?", [waiterId])
      );
    } catch (e) {
      log.warn("Could not leave the lease queue: {error}", {
        error: (e as Error).message,
      });
    }
  }

  // --- the rest ----------------------------------------------------------

  async held(nodes: readonly string[]): Promise<LeaseInfo[]> {
    const wanted = checkNodes(nodes);
    return await this.#track(this.#tx((s) =>
      Promise.resolve(
        liveOn(s.leases, s.now, wanted)
          .map((l) => this.#info(l))
          .filter((l) => !l.mine),
      )
    ));
  }

  list(): Promise<{ leases: LeaseInfo[]; waiting: LeaseWaiter[] }> {
    return this.#track(this.#tx((s) =>
      Promise.resolve({
        leases: liveOn(s.leases, s.now)
          .sort((a, b) => a.takenAt - b.takenAt)
          .map((l) => this.#info(l)),
        waiting: s.waiters.map(waiterInfo),
      })
    ));
  }

  async history(options: LeaseHistoryOptions = {}): Promise<LeaseEvent[]> {
    const limit = options.limit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(
        `Invalid history limit ${limit}: give a whole number >= 1`,
      );
    }
    const where: string[] = [];
    const params: unknown[] = [];
    if (options.node !== undefined) {
      where.push(this.#backend.contains("nodes"));
      params.push(JSON.stringify(checkText("node name", options.node, false)));
    }
    if (options.since !== undefined) {
      if (!(options.since instanceof Date) || isNaN(options.since.getTime())) {
        throw new TypeError("Invalid history since: give a valid Date");
      }
      where.push("at >= ?");
      params.push(options.since.getTime());
    }
    const sql = `SELECT * FROM history${
      where.length ? ` WHERE ${where.join(" AND ")}` : ""
    } ORDER BY at DESC, seq DESC LIMIT ?`;
    return await this.#track(this.#tx(async (s) => {
      const rows = await s.q(sql, [...params, limit]);
      return rows.reverse().map((r): LeaseEvent => ({
        at: new Date(num(r.at)),
        kind: String(r.kind) as LeaseEventKind,
        leaseId: String(r.lease_id),
        nodes: names(r.nodes),
        holder: String(r.holder),
        note: String(r.note),
        ...(r.overridden != null && { overridden: names(r.overridden) }),
      }));
    }));
  }

  async recordForce(
    nodes: readonly string[],
    overridden: readonly LeaseInfo[],
    by: string,
  ): Promise<void> {
    const wanted = checkNodes(nodes);
    checkText("holder", by, false);
    return await this.#track(this.#tx((s) =>
      this.#record(
        s.q,
        s.now,
        "force",
        overridden.map((l) => l.id).join(","),
        wanted,
        { holder: by, note: "" },
        overridden.map((l) => l.holder),
      )
    ));
  }

  /** The live lease `id`, refused when another token owns it. */
  #own(s: State, id: string, what: string): LeaseRow | undefined {
    const row = s.leases.find((l) => l.id === id);
    if (row && !this.#info(row).mine) {
      throw new ConfigurationError(
        `Cannot ${what} lease "${id}": it is held by ${row.holder} under another owner token`,
      );
    }
    return row;
  }

  async renew(id: string, forMs: number): Promise<Date> {
    const ms = checkMs("duration", forMs, 1);
    return await this.#track(this.#tx(async (s) => {
      const row = this.#own(s, id, "renew");
      if (!row) throw new LeaseLostError(id, this.location);
      const at = s.now + ms;
      await s.q("UPDATE leases SET expires_at = ? WHERE id = ?", [at, id]);
      await this.#record(s.q, s.now, "renew", id, row.nodes, row);
      return new Date(at);
    }));
  }

  drop(id: string): Promise<boolean> {
    return this.#track(this.#tx(async (s) => {
      const row = this.#own(s, id, "drop");
      this.#taken.delete(id);
      if (!row) return false;
      await s.q("DELETE FROM leases WHERE id = ?", [id]);
      await this.#record(s.q, s.now, "drop", id, row.nodes, row);
      return true;
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing.abort();
    for (const lease of this.#taken.values()) lease.stopRenewing();
    await Promise.allSettled([...this.#busy]);
    this.#closed = true;
    await this.#backend.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
