/**
 * The lease model: what a caller asks for, what the store keeps, the errors,
 * and {@linkcode Lease}, the handle of a lease held. `lease.ts` re-exports
 * all of it; the stores (`_store.ts`) build on it.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../errors.ts";

const log = getLogger(["fiwi", "lease"]);

/** Options of {@linkcode openLeaseStore}. */
export interface LeaseStoreOptions {
  /**
   * Bound in ms on connecting to the store and on waiting for its lock
   * (SQLite's busy timeout, PostgreSQL's connect and lock timeouts); also
   * how long a waiting request rides out an unreachable store. Default 5000.
   */
  timeout?: number;
}

/** What a caller asks for. Times are milliseconds. */
export interface LeaseRequest {
  /** Node names: the lease covers all of them or none. */
  nodes: readonly string[];
  /** How long the lease lasts (> 0), from the store's clock. */
  for: number;
  /**
   * 0 (default): fail at once with {@linkcode LeaseHeldError} if any node
   * is held (or promised to an earlier waiter); > 0: queue up to this long.
   */
  wait?: number;
  /** Free text shown to others (what the nodes are used for). */
  note?: string;
  /** Aborting it ends a wait; the request leaves the queue. */
  signal?: AbortSignal;
  /**
   * Owner token: leases with the same token never block each other. Default:
   * env `FIWI_LEASE_TOKEN`, else the store's own random token.
   */
  token?: string;
  /** Who holds it (default `user@host` of this process). */
  holder?: string;
  /**
   * Take the nodes even from others' leases and ahead of every waiter. The
   * overridden leases end; the override is recorded in the history with
   * both names.
   */
  force?: boolean;
}

/** One lease as stored. */
export interface LeaseInfo {
  /** Lease id (short hex text). */
  id: string;
  /** Nodes it covers. */
  nodes: string[];
  /** Who holds it (`user@host`). */
  holder: string;
  /** The holder's note (may be empty). */
  note: string;
  /** When it was taken (store clock). */
  takenAt: Date;
  /** When it ends unless renewed (store clock). */
  expiresAt: Date;
  /** True when the asking store's token owns it. */
  mine: boolean;
}

/** A request queued for its nodes. */
export interface LeaseWaiter {
  /** Waiter id. */
  id: string;
  /** Nodes it waits for. */
  nodes: string[];
  /** Who waits. */
  holder: string;
  /** The waiter's note. */
  note: string;
  /** When it joined the queue (store clock). */
  since: Date;
}

/** Kinds of {@linkcode LeaseEvent}. */
export type LeaseEventKind = "take" | "renew" | "drop" | "expire" | "force";

/** One record of the lease history. */
export interface LeaseEvent {
  /** When it happened (store clock; for "expire", the expiry time). */
  at: Date;
  /** What happened. */
  kind: LeaseEventKind;
  /** The lease (for a forced command run: the overridden leases' ids, comma-separated). */
  leaseId: string;
  /** Nodes concerned. */
  nodes: string[];
  /** Who did it (for "expire": who held the lease). */
  holder: string;
  /** The lease's note. */
  note: string;
  /** For "force": the holders overridden. */
  overridden?: string[];
}

/** Options of {@linkcode LeaseStore.history}. */
export interface LeaseHistoryOptions {
  /** Only events about this node. */
  node?: string;
  /** Only events at or after this time. */
  since?: Date;
  /** At most this many, the latest (default 1000). */
  limit?: number;
}

/**
 * A lease store: a SQLite file or a PostgreSQL database that records who
 * holds which nodes until when, who waits, and what happened. Open one with
 * {@linkcode openLeaseStore}.
 */
export interface LeaseStore extends AsyncDisposable {
  /** The file path, or the URL without its password. */
  readonly location: string;
  /** This store's owner token: leases taken with it are "mine". */
  readonly token: string;
  /**
   * Take a lease on all of `request.nodes`, waiting up to `request.wait`.
   * Rejects with {@linkcode LeaseHeldError} when a node is held by another
   * token (or promised to an earlier waiter) and the wait is 0 or ran out,
   * with the signal's reason when it aborts.
   */
  take(request: LeaseRequest): Promise<Lease>;
  /** Live leases of other tokens on any of `nodes`. */
  held(nodes: readonly string[]): Promise<LeaseInfo[]>;
  /** Every live lease and every waiter, in queue order. */
  list(): Promise<{ leases: LeaseInfo[]; waiting: LeaseWaiter[] }>;
  /** Recorded events, oldest first. */
  history(options?: LeaseHistoryOptions): Promise<LeaseEvent[]>;
  /**
   * Record that `by` ran on `nodes` over the `overridden` leases
   * (`--force`): a "force" event naming both.
   */
  recordForce(
    nodes: readonly string[],
    overridden: readonly LeaseInfo[],
    by: string,
  ): Promise<void>;
  /**
   * Extend lease `id` of this token to `forMs` from now (store clock).
   * Rejects with {@linkcode LeaseLostError} when it has ended, and with
   * {@linkcode ConfigurationError} when another token owns it.
   */
  renew(id: string, forMs: number): Promise<Date>;
  /**
   * End lease `id` of this token. False when it has already ended;
   * {@linkcode ConfigurationError} when another token owns it.
   */
  drop(id: string): Promise<boolean>;
  /**
   * Stop waits in progress (they leave the queue), stop background
   * renewals and close the connection. Leases stay until they expire.
   */
  close(): Promise<void>;
}

function when(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

function quoteList(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

/**
 * A node is held by someone else (or promised to an earlier waiter): the
 * message names the holder, the note and the expiry; `holders` has the
 * leases, `waiting` the waiters ahead.
 *
 * @example
 * ```ts
 * import { LeaseHeldError, openLeaseStore } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using a = await openLeaseStore(`${dir}/leases.db`);
 * await using b = await openLeaseStore(`${dir}/leases.db`);
 * await using _held = await a.take({ nodes: ["dut1"], for: 60_000 });
 * try {
 *   await b.take({ nodes: ["dut1"], for: 60_000 });
 * } catch (e) {
 *   if (e instanceof LeaseHeldError) console.log(e.holders[0].holder, e.message);
 * }
 * ```
 */
export class LeaseHeldError extends FiwiError {
  /** A refused node is a usage problem: exit code 2, as the CLI does. */
  override exitCode = 2;
  /** The leases of others on the nodes asked for. */
  readonly holders: LeaseInfo[];
  /** Earlier waiters the request may not jump ahead of. */
  readonly waiting: LeaseWaiter[];
  /**
   * Describe why `nodes` cannot be had.
   *
   * @param nodes the nodes asked for
   * @param holders leases of others on them
   * @param waiting earlier waiters for them
   * @param options standard error options; `prefix` starts the message
   */
  constructor(
    nodes: readonly string[],
    holders: LeaseInfo[],
    waiting: LeaseWaiter[] = [],
    options: ErrorOptions & { prefix?: string } = {},
  ) {
    const wanted = new Set(nodes);
    const parts = holders.map((l) => {
      const mine = l.nodes.filter((n) => wanted.has(n));
      return `${quoteList(mine)} held by ${l.holder}${
        l.note ? ` ("${l.note}")` : ""
      } until ${when(l.expiresAt)} (lease ${l.id})`;
    });
    if (holders.length === 0) {
      parts.push(
        ...waiting.map((w) =>
          `${
            quoteList(w.nodes.filter((n) => wanted.has(n)))
          } promised to ${w.holder}${
            w.note ? ` ("${w.note}")` : ""
          }, waiting since ${when(w.since)}`
        ),
      );
    }
    super(
      `${options.prefix ?? ""}${
        parts.length > 0 ? parts.join("; ") : `${quoteList(nodes)} held`
      }`,
      options,
    );
    this.holders = holders;
    this.waiting = waiting;
  }
}

/**
 * A lease ended under its holder: it expired (renewed too late) or was
 * overridden with `force`. Its nodes may already be someone else's.
 *
 * @example
 * ```ts
 * import { LeaseLostError, openLeaseStore } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using store = await openLeaseStore(`${dir}/leases.db`);
 * const lease = await store.take({ nodes: ["dut1"], for: 50 });
 * await new Promise((r) => setTimeout(r, 100));
 * try {
 *   await lease.renew();
 * } catch (e) {
 *   console.log(e instanceof LeaseLostError); // true: it expired
 * }
 * ```
 */
export class LeaseLostError extends FiwiError {
  /** The lease that ended. */
  readonly leaseId: string;
  /**
   * Say that lease `leaseId` of the store at `location` has ended.
   *
   * @param leaseId the lease that ended
   * @param location the store
   * @param options standard error options
   */
  constructor(leaseId: string, location: string, options?: ErrorOptions) {
    super(
      `Lease "${leaseId}" in "${location}" has ended: it expired or was overridden`,
      options,
    );
    this.leaseId = leaseId;
  }
}

/** Shortest gap between background renewals, so a tiny lease cannot spin. */
const MIN_RENEW_GAP = 10;

/**
 * A lease held: renew it, keep it renewed, drop it, or let `await using`
 * drop it. {@linkcode LeaseStore.take} makes one.
 *
 * @example
 * ```ts
 * import { openLeaseStore } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using store = await openLeaseStore(`${dir}/leases.db`);
 * {
 *   await using lease = await store.take({ nodes: ["dut1", "dut2"], for: 60_000, note: "soak" });
 *   using _renewing = lease.keepRenewing();
 *   console.log(lease.id, lease.nodes, lease.expiresAt > new Date());
 * } // dropped here
 * console.log((await store.list()).leases.length); // 0
 * ```
 */
export class Lease implements AsyncDisposable {
  /** Lease id. */
  readonly id: string;
  /** Nodes it covers. */
  readonly nodes: readonly string[];
  /** Who holds it. */
  readonly holder: string;
  /** Its note. */
  readonly note: string;
  /** When it was taken (store clock). */
  readonly takenAt: Date;
  /** The duration it was taken for, and the default of {@linkcode Lease.renew} (ms). */
  readonly duration: number;
  #store: LeaseStore;
  #expiresAt: Date;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #renewing = 0;
  #inFlight: Promise<unknown> = Promise.resolve();
  #dropped = false;

  /**
   * The handle of a lease held in `store`; made by {@linkcode LeaseStore.take}.
   *
   * @param store the store that holds it
   * @param info the lease as stored
   * @param duration ms it was taken for
   */
  constructor(store: LeaseStore, info: LeaseInfo, duration: number) {
    this.#store = store;
    this.id = info.id;
    this.nodes = Object.freeze([...info.nodes]);
    this.holder = info.holder;
    this.note = info.note;
    this.takenAt = info.takenAt;
    this.duration = duration;
    this.#expiresAt = info.expiresAt;
  }

  /** When it ends unless renewed (store clock), as of the last renewal. */
  get expiresAt(): Date {
    return this.#expiresAt;
  }

  /** True once dropped (by {@linkcode Lease.drop} or disposal). */
  get dropped(): boolean {
    return this.#dropped;
  }

  /**
   * Extend it to `forMs` (default: its duration) from now by the store's
   * clock. Rejects with {@linkcode LeaseLostError} when it has already
   * ended.
   */
  async renew(forMs: number = this.duration): Promise<Date> {
    if (this.#dropped) {
      throw new ConfigurationError(`Lease "${this.id}" was dropped`);
    }
    const at = await this.#store.renew(this.id, forMs);
    this.#expiresAt = at;
    return at;
  }

  /**
   * Renew it in the background every third of its duration until the
   * returned handle is disposed or the lease dropped. A failed renewal is
   * logged (LogTape category `["fiwi", "lease"]`) and retried sooner; a
   * lease found ended is logged as an error and renewing stops.
   */
  keepRenewing(): Disposable {
    this.#renewing++;
    if (this.#renewing === 1) this.#schedule(this.duration / 3);
    let disposed = false;
    return {
      [Symbol.dispose]: () => {
        if (disposed) return;
        disposed = true;
        if (--this.#renewing === 0) this.stopRenewing();
      },
    };
  }

  #schedule(ms: number): void {
    if (this.#dropped || this.#renewing === 0) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = this.#renewOnce();
    }, Math.max(MIN_RENEW_GAP, ms));
    // A forgotten renewer must not keep a finished program alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  async #renewOnce(): Promise<void> {
    const period = this.duration / 3;
    try {
      await this.renew();
      this.#schedule(period);
    } catch (e) {
      if (this.#dropped || this.#renewing === 0) return;
      if (e instanceof LeaseLostError) {
        log.error("Lease {id} on {nodes} ended: {error}", {
          id: this.id,
          nodes: this.nodes,
          error: e.message,
        });
        this.stopRenewing();
        return;
      }
      log.warn("Renewing lease {id} failed, retrying: {error}", {
        id: this.id,
        error: (e as Error).message,
      });
      this.#schedule(Math.min(period / 2, 1000));
    }
  }

  /** Stop background renewal now (the store calls it when it closes). */
  stopRenewing(): void {
    this.#renewing = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** End it now: stop renewing and free its nodes. Idempotent. */
  async drop(): Promise<void> {
    if (this.#dropped) return;
    this.stopRenewing();
    await this.#inFlight;
    this.#dropped = true;
    await this.#store.drop(this.id);
  }

  /** Same as {@linkcode Lease.drop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.drop();
  }
}
