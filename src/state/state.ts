/**
 * The state store: what fiwi did, in one SQLite file that any fiwi process
 * may write and read at once (Deno's built-in `node:sqlite`, WAL mode).
 * Invocations with their per-node outcomes, and poll samples; output lines
 * are not stored (the central log keeps them).
 *
 * Writes never wait: they are queued and written in batches, one
 * transaction per batch, from a timer (see `_batch_writer.ts` for a locked
 * database, a full disk and the memory bound). Reads are synchronous and
 * see what is committed; call {@linkcode StateStore.flush} first to read
 * this process's own records.
 *
 * The file is private as the central log is: 0600 in a directory of the
 * user that others cannot write (created 0700), never through a symbolic
 * link. Retention is bounded by age and size, applied at open and then
 * every few minutes while writing.
 *
 * @example
 * ```ts
 * import { StateStore } from "../../mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await using store = await StateStore.open(`${dir}/state.db`);
 * store.startInvocation({
 *   id: "a1b2c3d4", subcommand: "run", command: "uptime", nodes: "n[1-2]",
 *   user: "me@host", startedAt: new Date(),
 * });
 * store.endInvocation("a1b2c3d4", 0);
 * await store.flush();
 * console.log(store.invocations({ limit: 1 })[0].exitCode); // 0
 * ```
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError } from "../errors.ts";
import { BatchWriter } from "./_batch_writer.ts";
import { openDatabase } from "./_open.ts";
import { applyRetention, type Retention } from "./_retention.ts";
import {
  fromRow,
  selectInvocations,
  selectLatestPerNode,
  selectSamples,
  Statements,
  type StateOp,
  writeBatch,
} from "./_sql.ts";
import type {
  InvocationRecord,
  OutcomeRecord,
  SampleFilter,
  SampleRecord,
  StateStoreOptions,
} from "./_types.ts";

export type {
  InvocationRecord,
  OutcomeRecord,
  SampleFilter,
  SampleRecord,
  StateStoreOptions,
} from "./_types.ts";

export { defaultStatePath } from "./state_path.ts";

const logger = getLogger(["fiwi", "state"]);

/** Default retention: 30 days. */
export const DEFAULT_STATE_RETENTION_DAYS = 30;
/** Default size bound: 1 GiB. */
export const DEFAULT_STATE_MAX_BYTES = 1024 ** 3;
/** Retention is applied again after this many milliseconds of writing. */
const RETENTION_EVERY = 10 * 60_000;
/** Records per transaction. */
const BATCH_SIZE = 2000;
/** Records held in memory at most while the file cannot be written. */
const MAX_QUEUED = 200_000;
/** How long a reader waits inside SQLite for a lock (rare in WAL mode). */
const READ_TIMEOUT = 2000;

function positive(name: string, value: number | undefined, fallback: number) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`Invalid ${name} ${value}: give a number > 0`);
  }
  return value;
}

/** The state store; see the module doc. */
export class StateStore implements AsyncDisposable {
  /** The database file. */
  readonly path: string;
  #db: DatabaseSync;
  #q: Statements;
  #reader: Statements | null = null;
  #readerDb: DatabaseSync | null = null;
  #writer: BatchWriter<StateOp>;
  #retention: Retention;
  #retainedAt = Date.now();
  #warn: ((line: string) => void) | null;
  #closed: Promise<void> | null = null;

  private constructor(
    path: string,
    db: DatabaseSync,
    options: StateStoreOptions,
    retention: Retention,
  ) {
    this.path = path;
    this.#db = db;
    this.#q = new Statements(db);
    this.#retention = retention;
    this.#warn = options.onWarning ?? null;
    const lockTimeout = options.lockTimeout ?? 5000;
    this.#writer = new BatchWriter<StateOp>({
      write: (batch) => writeBatch(this.#db, this.#q, batch),
      flushInterval: options.flushInterval ?? 250,
      batchSize: BATCH_SIZE,
      lockTimeout,
      maxQueued: MAX_QUEUED,
      onDrop: (reason, e) => this.#dropping(reason, e),
      onResume: (dropped) =>
        logger.warn(
          "State store {path}: writing again after dropping {dropped} records",
          { path, dropped },
        ),
      idle: () => this.#retainNowAndThen(),
    });
  }

  /**
   * Open the store at `path`, creating it (directory 0700, file 0600) when
   * missing, in WAL mode, with its schema brought up to date in one
   * transaction, and apply retention. Rejects with a one-line
   * `ConfigurationError` for a file that is not safely the user's own, is
   * corrupt, cannot be written, or stays locked past `lockTimeout`; with a
   * `RangeError` for a bad option.
   *
   * @example
   * ```ts
   * import { StateStore } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const store = await StateStore.open(`${dir}/state.db`, { retentionDays: 7 });
   * await store.close();
   * ```
   */
  static async open(
    path: string,
    options: StateStoreOptions = {},
  ): Promise<StateStore> {
    const retention = {
      retentionDays: positive(
        "retentionDays",
        options.retentionDays,
        DEFAULT_STATE_RETENTION_DAYS,
      ),
      maxBytes: positive("maxBytes", options.maxBytes, DEFAULT_STATE_MAX_BYTES),
    };
    positive("flushInterval", options.flushInterval, 1);
    const lockTimeout = positive("lockTimeout", options.lockTimeout, 5000);
    const db = await openDatabase(path, lockTimeout);
    const store = new StateStore(path, db, options, retention);
    store.#retain();
    return store;
  }

  /**
   * Record the start of an invocation (queued).
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * function started(store: StateStore, id: string) {
   *   store.startInvocation({
   *     id, subcommand: "run", command: "uptime", nodes: "n[1-4]",
   *     user: "me@host", startedAt: new Date(),
   *   });
   * }
   * ```
   */
  startInvocation(
    record: Omit<
      InvocationRecord,
      "endedAt" | "exitCode" | "ok" | "failed" | "rowId"
    >,
  ): void {
    this.#writer.push({ kind: "start", record: { ...record } });
  }

  /**
   * Record the end of invocation `id` with its exit code (queued).
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * const ended = (store: StateStore, id: string) => store.endInvocation(id, 1);
   * ```
   */
  endInvocation(
    id: string,
    exitCode: number,
    endedAt: Date = new Date(),
  ): void {
    this.#writer.push({ kind: "end", id, exitCode, endedAt });
  }

  /**
   * Record one node's outcome (queued); counts towards the invocation's
   * `ok` (`exit 0`, `ok`) or `failed`.
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * function done(store: StateStore, id: string) {
   *   store.recordOutcome({
   *     invocationId: id, node: "n1", outcome: "exit 0", code: 0,
   *     durationMs: 120, bytes: 42, at: new Date(),
   *   });
   * }
   * ```
   */
  recordOutcome(record: OutcomeRecord): void {
    this.#writer.push({ kind: "outcome", record: { ...record } });
  }

  /**
   * Record one poll sample (queued).
   *
   * @example
   * ```ts
   * import { parseSampleValue, type StateStore } from "../../mod.ts";
   * function sampled(store: StateStore, id: string, output: string) {
   *   store.recordSample({
   *     invocationId: id, node: "n1", command: "cat /proc/loadavg", tick: 1,
   *     at: new Date(), output, value: parseSampleValue(output),
   *   });
   * }
   * ```
   */
  recordSample(record: Omit<SampleRecord, "rowId">): void {
    this.#writer.push({ kind: "sample", record: { ...record } });
  }

  /**
   * Resolves once every record queued so far is written (or dropped: see
   * {@linkcode StateStore.dropped}).
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * async function latest(store: StateStore) {
   *   await store.flush();
   *   return store.invocations({ limit: 10 });
   * }
   * ```
   */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  /**
   * Records dropped so far by this store (a full disk, a database locked
   * for too long, the memory bound).
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * const lost = (store: StateStore) => store.dropped > 0;
   * ```
   */
  get dropped(): number {
    return this.#writer.dropped;
  }

  /**
   * Write what is queued and close the file; logs the count of dropped
   * records, if any. Idempotent.
   *
   * @example
   * ```ts
   * import { StateStore } from "../../mod.ts";
   * const store = await StateStore.open(`${await Deno.makeTempDir()}/state.db`);
   * await store.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#db.isOpen) return; // closeSync() came first
      await this.#writer.close();
      if (this.dropped > 0) {
        logger.warn(
          "State store {path}: {dropped} records were not written (dropped)",
          { path: this.path, dropped: this.dropped },
        );
      }
      if (this.#readerDb?.isOpen) this.#readerDb.close();
      if (this.#db.isOpen) this.#db.close();
    })();
    return this.#closed;
  }

  /**
   * For a process that exits at once (a second Ctrl-C): write what is
   * queued now, synchronously, with one try (a locked file is not waited
   * for), and close.
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * function exitNow(store: StateStore, id: string) {
   *   store.endInvocation(id, 130);
   *   store.closeSync();
   *   Deno.exit(130);
   * }
   * ```
   */
  closeSync(): void {
    if (!this.#db.isOpen) return;
    this.#writer.closeSync();
    if (this.#readerDb?.isOpen) this.#readerDb.close();
    this.#db.close();
  }

  /** {@linkcode StateStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Invocations: the newest first (by start), or, with `afterRowId`, those
   * started or changed since that `rowId`, in the order of their changes.
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * let seen = 0;
   * function changed(store: StateStore) {
   *   const news = store.invocations({ afterRowId: seen });
   *   seen = news.at(-1)?.rowId ?? seen;
   *   return news;
   * }
   * ```
   */
  invocations(
    options: { limit?: number; afterRowId?: number } = {},
  ): InvocationRecord[] {
    return selectInvocations(this.#read(), options).map(fromRow.invocation);
  }

  /**
   * One invocation with its outcomes (in the order recorded), or null.
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * const failedNodes = (store: StateStore, id: string) =>
   *   store.invocation(id)?.outcomes.filter((o) => o.outcome !== "exit 0").map((o) => o.node);
   * ```
   */
  invocation(
    id: string,
  ): { invocation: InvocationRecord; outcomes: OutcomeRecord[] } | null {
    const q = this.#read();
    const row = q.all("SELECT * FROM invocations WHERE id = ?", id)[0];
    if (!row) return null;
    const outcomes = q.all(
      "SELECT * FROM outcomes WHERE invocation_id = ? ORDER BY row_id",
      id,
    );
    return {
      invocation: fromRow.invocation(row),
      outcomes: outcomes.map(fromRow.outcome),
    };
  }

  /**
   * Poll samples, oldest first; every field of `filter` narrows (`until`
   * excluded).
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * const lastHour = (store: StateStore) =>
   *   store.samples({ command: "uptime", since: new Date(Date.now() - 3600_000) });
   * ```
   */
  samples(filter: SampleFilter = {}): SampleRecord[] {
    return selectSamples(this.#read(), filter).map(fromRow.sample);
  }

  /**
   * The latest outcome of each node (by node name); with `since`, every
   * outcome since then, oldest first ("failures in the last hour").
   *
   * @example
   * ```ts
   * import type { StateStore } from "../../mod.ts";
   * const failuresLastHour = (store: StateStore) =>
   *   store.lastOutcomes({ since: new Date(Date.now() - 3600_000) })
   *     .filter((o) => o.outcome !== "exit 0");
   * ```
   */
  lastOutcomes(options: { since?: Date } = {}): OutcomeRecord[] {
    return selectLatestPerNode(this.#read(), options.since).map(
      fromRow.outcome,
    );
  }

  /** The reading connection, opened on first use, after the writer's. */
  #read(): Statements {
    if (!this.#db.isOpen) {
      throw new ConfigurationError(`State store "${this.path}" is closed`);
    }
    if (this.#reader === null) {
      this.#readerDb = new DatabaseSync(this.path, {
        timeout: READ_TIMEOUT,
        readOnly: true,
      });
      this.#reader = new Statements(this.#readerDb);
    }
    return this.#reader;
  }

  #retainNowAndThen(): void {
    if (Date.now() - this.#retainedAt >= RETENTION_EVERY) this.#retain();
  }

  /** Apply retention; a locked file is left for the next time. */
  #retain(): void {
    this.#retainedAt = Date.now();
    try {
      const deleted = applyRetention(this.#db, this.#q, this.#retention);
      if (deleted > 0) {
        logger.info("State store {path}: retention deleted {deleted} rows", {
          path: this.path,
          deleted,
        });
      }
    } catch (e) {
      logger.warn("State store {path}: retention skipped: {error}", {
        path: this.path,
        error: e,
      });
    }
  }

  #dropping(reason: string, e: unknown): void {
    const line =
      `State store "${this.path}" cannot be written (${reason}): fiwi goes on without recording until it can; the count of dropped records goes to the log`;
    logger.warn("{line}", { line, error: e });
    if (this.#warn) {
      const warn = this.#warn;
      this.#warn = null; // one warning per store
      warn(line);
    }
  }
}
