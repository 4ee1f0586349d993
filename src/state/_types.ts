/**
 * The records of the state store, as the store's users see them.
 *
 * @module
 */

/**
 * One invocation of a fiwi subcommand (or a library caller's unit of work).
 *
 * @example
 * ```ts
 * import type { InvocationRecord } from "../../mod.ts";
 * const line = (r: InvocationRecord) =>
 *   `${r.startedAt.toISOString()} ${r.user} ${r.subcommand} ${r.nodes}: ${r.ok} ok, ${r.failed} failed`;
 * ```
 */
export interface InvocationRecord {
  /** The log's invocation id. */
  id: string;
  /** `run`, `poll`, ... */
  subcommand: string;
  /** The command text (run, poll), or the arguments. */
  command: string;
  /** The node set, folded (`n[1-4]`). */
  nodes: string;
  /** `user@host` of the caller. */
  user: string;
  /** When it started. */
  startedAt: Date;
  /** When it ended; null while it runs (or when it never said: killed). */
  endedAt: Date | null;
  /** Its exit code; null while it runs. */
  exitCode: number | null;
  /** Nodes whose outcome was a success (`exit 0` or `ok`). */
  ok: number;
  /** Nodes with any other outcome. */
  failed: number;
  /**
   * The record's change sequence: monotonic across every process writing
   * the file, and raised again when the invocation ends or its counts
   * change, so `invocations({ afterRowId })` returns what is new or changed
   * since.
   */
  rowId: number;
}

/**
 * One node's outcome in an invocation.
 *
 * @example
 * ```ts
 * import type { OutcomeRecord } from "../../mod.ts";
 * const slow = (o: OutcomeRecord) => o.durationMs > 10_000;
 * ```
 */
export interface OutcomeRecord {
  /** The invocation it belongs to. */
  invocationId: string;
  /** The node's name. */
  node: string;
  /** `describeOutcome(result).key`: `exit 0`, `unreachable`, `command timeout`, ... */
  outcome: string;
  /** Exit code, when there was one. */
  code: number | null;
  /** How long the node's part took. */
  durationMs: number;
  /** Bytes of output (run) or transferred (push, pull). */
  bytes: number;
  /** When the node's part ended. */
  at: Date;
}

/**
 * One poll sample.
 *
 * @example
 * ```ts
 * import type { SampleRecord } from "../../mod.ts";
 * const point = (s: SampleRecord) => [s.at.getTime() / 1000, s.value] as const;
 * ```
 */
export interface SampleRecord {
  /** The invocation (the `poll`) it belongs to. */
  invocationId: string;
  /** The node's name. */
  node: string;
  /** The polled command. */
  command: string;
  /** The poll's tick, from 1. */
  tick: number;
  /** When the sample was taken. */
  at: Date;
  /** The command's output. */
  output: string;
  /** Its value: see `parseSampleValue`. */
  value: number | null;
  /** Monotonic across every process writing the file. */
  rowId: number;
}

/**
 * Options of `StateStore.open`.
 *
 * @example
 * ```ts
 * import type { StateStoreOptions } from "../../mod.ts";
 * const week: StateStoreOptions = { retentionDays: 7, maxBytes: 256 * 1024 ** 2 };
 * ```
 */
export interface StateStoreOptions {
  /** Records older than this many days are deleted (default 30). */
  retentionDays?: number;
  /** The oldest records are deleted while the file is larger (default 1 GiB). */
  maxBytes?: number;
  /** Milliseconds a record may wait in memory before it is written (default 250). */
  flushInterval?: number;
  /**
   * Milliseconds a database locked by another process is waited for, at
   * open and for each batch, before the batch is dropped (default 5000).
   */
  lockTimeout?: number;
  /**
   * Told once, in one line, the first time records could not be written
   * (a full disk, a locked or broken file); the run goes on. Default: a
   * warning in the log only.
   */
  onWarning?: (line: string) => void;
}

/**
 * What `StateStore.samples` selects; every field narrows.
 *
 * @example
 * ```ts
 * import type { SampleFilter } from "../../mod.ts";
 * const lastHour: SampleFilter = { command: "uptime", since: new Date(Date.now() - 3600_000) };
 * ```
 */
export interface SampleFilter {
  /** Only these nodes. */
  nodes?: readonly string[];
  /** Only this command. */
  command?: string;
  /** Taken at or after. */
  since?: Date;
  /** Taken before. */
  until?: Date;
  /** Only samples with a larger `rowId` (new since a previous read). */
  afterRowId?: number;
  /** At most this many (the oldest of the selection). */
  limit?: number;
}
