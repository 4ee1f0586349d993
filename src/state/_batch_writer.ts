/**
 * The write path of the state store: records are queued in memory and
 * written in batches, one transaction per batch, from a timer, so the code
 * that records (the output path of `run` and `poll`) never waits for the
 * database.
 *
 * - The database locked by another process: the transaction is not waited
 *   for inside SQLite (its busy handler would block the event loop) but
 *   tried again after a short, growing pause, for up to `lockTimeout`; the
 *   batch is dropped after that.
 * - A full disk (or any other write failure): the batch is dropped and
 *   counted, the caller is warned once, and the next batch is tried as
 *   usual, so recording catches up when space is freed.
 * - Memory is bounded: past `maxQueued` records, new ones are dropped and
 *   counted.
 *
 * @module
 */

/** Why a batch was not written. */
export type WriteFailure = "busy" | "full" | "failed";

/** Classify an error of `node:sqlite`. */
export function failureOf(e: unknown): WriteFailure {
  const msg = e instanceof Error ? e.message : String(e);
  if (/database is locked|database table is locked|busy/i.test(msg)) {
    return "busy";
  }
  if (/disk is full|disk i\/o error|no space/i.test(msg)) return "full";
  return "failed";
}

/** Settings of a {@linkcode BatchWriter}. */
export interface BatchWriterOptions<T> {
  /** Write `batch` in one transaction, synchronously; throws on failure. */
  write(batch: readonly T[]): void;
  /** Milliseconds a record may wait in the queue. */
  flushInterval: number;
  /** Records written per transaction; a full batch is written at once. */
  batchSize: number;
  /** Milliseconds a locked database is waited for before a batch is dropped. */
  lockTimeout: number;
  /** Records queued at most. */
  maxQueued: number;
  /** Told once, the first time records are dropped. */
  onDrop(reason: string, e: unknown): void;
  /** Told when a batch is written after some were dropped. */
  onResume(dropped: number): void;
  /** Called between batches; may do housekeeping in its own transactions. */
  idle?(): void;
}

const MAX_PAUSE = 250;

/** A queue of records written in batches; see the module doc. */
export class BatchWriter<T> {
  #o: BatchWriterOptions<T>;
  #queue: T[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** The timer is due at once (a full batch). */
  #soon = false;
  #running: Promise<void> | null = null;
  #dropped = 0;
  #droppedSinceWrite = 0;
  #closed = false;

  constructor(options: BatchWriterOptions<T>) {
    this.#o = options;
  }

  /** Records dropped so far (disk full, locked too long, queue full). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queue `record`; written within `flushInterval`. */
  push(record: T): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.#o.maxQueued) {
      this.#drop(1, "its queue is full", null);
      return;
    }
    this.#queue.push(record);
    if (this.#running) return;
    // Never written here, on the caller's path: from a timer, at once
    // (the next turn of the event loop) when a batch is full.
    const full = this.#queue.length >= this.#o.batchSize;
    if (this.#timer === null || (full && !this.#soon)) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#soon = full;
      this.#timer = setTimeout(
        () => this.#start(),
        full ? 0 : this.#o.flushInterval,
      );
    }
  }

  /** Resolves once every record queued so far is written or dropped. */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#running) {
      if (!this.#running) this.#start();
      await this.#running;
    }
  }

  /** Flush, then accept nothing more. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  /**
   * For a process that exits at once: try once to write what is queued,
   * synchronously, and accept nothing more. (A batch stays queued until it
   * is written, so one that a pausing flush holds is written here, once.)
   */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const queued = this.#queue.splice(0);
    for (let i = 0; i < queued.length; i += this.#o.batchSize) {
      const batch = queued.slice(i, i + this.#o.batchSize);
      const failure = this.#tryWrite(batch);
      if (failure) this.#drop(batch.length, "exiting", failure.error);
    }
  }

  #start(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#soon = false;
    this.#running ??= this.#pump().finally(() => this.#running = null);
  }

  async #pump(): Promise<void> {
    let busySince: number | null = null;
    let pause = 5;
    while (this.#queue.length > 0) {
      const n = Math.min(this.#queue.length, this.#o.batchSize);
      const failure = this.#tryWrite(this.#queue.slice(0, n));
      if (failure === null) {
        this.#queue.splice(0, n);
        if (this.#droppedSinceWrite > 0) {
          this.#o.onResume(this.#droppedSinceWrite);
          this.#droppedSinceWrite = 0;
        }
        busySince = null;
        pause = 5;
        this.#o.idle?.();
      } else if (failure.kind === "busy") {
        busySince ??= Date.now();
        if (Date.now() - busySince < this.#o.lockTimeout) {
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(pause * 2, MAX_PAUSE);
          continue;
        }
        this.#queue.splice(0, n);
        this.#drop(
          n,
          `the database stayed locked for over ${this.#o.lockTimeout} ms`,
          failure.error,
        );
        busySince = null;
      } else {
        this.#queue.splice(0, n);
        this.#drop(
          n,
          failure.kind === "full" ? "the disk is full" : "a write failed",
          failure.error,
        );
      }
      // Let output run between two batches of a long queue.
      if (this.#queue.length > 0) await new Promise((r) => setTimeout(r, 0));
    }
  }

  #tryWrite(batch: T[]): { kind: WriteFailure; error: unknown } | null {
    try {
      this.#o.write(batch);
      return null;
    } catch (e) {
      return { kind: failureOf(e), error: e };
    }
  }

  #drop(n: number, reason: string, e: unknown): void {
    const first = this.#droppedSinceWrite === 0;
    this.#dropped += n;
    this.#droppedSinceWrite += n;
    if (first) this.#o.onDrop(reason, e);
  }
}
