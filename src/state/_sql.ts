/**
 * The state store's SQL: writing a batch of records in one transaction and
 * reading them back as records.
 *
 * @module
 */

import { isSuccessKey } from "../process/outcome.ts";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type {
  InvocationRecord,
  OutcomeRecord,
  SampleFilter,
  SampleRecord,
} from "./_types.ts";

/** What `startInvocation` records. */
export type InvocationStart = Omit<
  InvocationRecord,
  "endedAt" | "exitCode" | "ok" | "failed" | "rowId"
>;

/** One queued write. */
export type StateOp =
  | { kind: "start"; record: InvocationStart }
  | { kind: "end"; id: string; exitCode: number; endedAt: Date }
  | { kind: "outcome"; record: OutcomeRecord }
  | { kind: "sample"; record: Omit<SampleRecord, "rowId"> };

type Row = Record<string, SQLInputValue>;

/** Prepared statements of one connection, made on first use. */
export class Statements {
  #db: DatabaseSync;
  #cache = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The statement for `sql`. */
  get(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#cache.set(sql, s);
    }
    return s;
  }

  /** Rows of `sql` with `params`. */
  all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.get(sql).all(...params) as Row[];
  }
}

/** Run `fn` in one `BEGIN IMMEDIATE` transaction of `db`. */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}

const date = (ms: SQLInputValue) => new Date(Number(ms));
const orNull = (v: SQLInputValue) => v === null ? null : Number(v);

/** Write `ops` in order, in one transaction. */
export function writeBatch(
  db: DatabaseSync,
  q: Statements,
  ops: readonly StateOp[],
): void {
  inTransaction(db, () => {
    const top = q.all("SELECT coalesce(max(seq), 0) AS seq FROM invocations");
    let seq = Number(top[0].seq);
    for (const op of ops) {
      if (op.kind === "sample") {
        const r = op.record;
        q.get(
          `INSERT INTO samples (invocation_id, node, command, tick, at, output, value)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          r.invocationId,
          r.node,
          r.command,
          r.tick,
          r.at.getTime(),
          r.output,
          r.value !== null && Number.isFinite(r.value) ? r.value : null,
        );
      } else if (op.kind === "outcome") {
        const r = op.record;
        q.get(
          `INSERT INTO outcomes (invocation_id, node, outcome, code, duration_ms, bytes, at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          r.invocationId,
          r.node,
          r.outcome,
          r.code,
          r.durationMs,
          r.bytes,
          r.at.getTime(),
        );
        const ok = isSuccessKey(r.outcome) ? 1 : 0;
        q.get(
          `UPDATE invocations SET ok = ok + ?, failed = failed + ?, seq = ?
           WHERE id = ?`,
        ).run(ok, 1 - ok, ++seq, r.invocationId);
      } else if (op.kind === "start") {
        const r = op.record;
        q.get(
          `INSERT OR IGNORE INTO invocations
             (id, seq, subcommand, command, nodes, user, started_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          r.id,
          ++seq,
          r.subcommand,
          r.command,
          r.nodes,
          r.user,
          r.startedAt.getTime(),
        );
      } else {
        q.get(
          `UPDATE invocations SET ended_at = ?, exit_code = ?, seq = ?
           WHERE id = ?`,
        ).run(op.endedAt.getTime(), op.exitCode, ++seq, op.id);
      }
    }
  });
}

/** Rows as records: of `invocations`, `outcomes` and `samples`. */
export const fromRow = {
  invocation: (r: Row): InvocationRecord => ({
    id: String(r.id),
    subcommand: String(r.subcommand),
    command: String(r.command),
    nodes: String(r.nodes),
    user: String(r.user),
    startedAt: date(r.started_at),
    endedAt: r.ended_at === null ? null : date(r.ended_at),
    exitCode: orNull(r.exit_code),
    ok: Number(r.ok),
    failed: Number(r.failed),
    rowId: Number(r.seq),
  }),
  outcome: (r: Row): OutcomeRecord => ({
    invocationId: String(r.invocation_id),
    node: String(r.node),
    outcome: String(r.outcome),
    code: orNull(r.code),
    durationMs: Number(r.duration_ms),
    bytes: Number(r.bytes),
    at: date(r.at),
  }),
  sample: (r: Row): SampleRecord => ({
    invocationId: String(r.invocation_id),
    node: String(r.node),
    command: String(r.command),
    tick: Number(r.tick),
    at: date(r.at),
    output: String(r.output),
    value: orNull(r.value),
    rowId: Number(r.row_id),
  }),
};

/** `LIMIT` clause text for a validated limit (-1: none). */
function limitOf(limit: number | undefined): number {
  if (limit === undefined) return -1;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`Invalid limit ${limit}: give a whole number >= 0`);
  }
  return limit;
}

/** Rows of `samples` for `filter`, oldest first. */
export function selectSamples(q: Statements, filter: SampleFilter): Row[] {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  if (filter.nodes !== undefined) {
    // One JSON parameter, so the statement is the same for any node count.
    where.push("node IN (SELECT value FROM json_each(?))");
    params.push(JSON.stringify(filter.nodes));
  }
  if (filter.command !== undefined) {
    where.push("command = ?");
    params.push(filter.command);
  }
  if (filter.since !== undefined) {
    where.push("at >= ?");
    params.push(filter.since.getTime());
  }
  if (filter.until !== undefined) {
    where.push("at < ?");
    params.push(filter.until.getTime());
  }
  if (filter.afterRowId !== undefined) {
    where.push("row_id > ?");
    params.push(filter.afterRowId);
  }
  const sql = `SELECT * FROM samples${
    where.length ? ` WHERE ${where.join(" AND ")}` : ""
  } ORDER BY row_id LIMIT ?`;
  return q.all(sql, ...params, limitOf(filter.limit));
}

/** Rows of `invocations`: newest first, or changed after `afterRowId`, oldest first. */
export function selectInvocations(
  q: Statements,
  options: { limit?: number; afterRowId?: number },
): Row[] {
  const limit = limitOf(options.limit);
  if (options.afterRowId !== undefined) {
    return q.all(
      "SELECT * FROM invocations WHERE seq > ? ORDER BY seq LIMIT ?",
      options.afterRowId,
      limit,
    );
  }
  return q.all(
    "SELECT * FROM invocations ORDER BY started_at DESC, row_id DESC LIMIT ?",
    limit,
  );
}

/** The latest outcome per node; with `since`, every outcome since then, oldest first. */
export function selectLatestPerNode(q: Statements, since?: Date): Row[] {
  if (since !== undefined) {
    return q.all(
      "SELECT * FROM outcomes WHERE at >= ? ORDER BY row_id",
      since.getTime(),
    );
  }
  return q.all(
    `SELECT o.* FROM outcomes o
     JOIN (SELECT max(row_id) AS row_id FROM outcomes GROUP BY node) m
       ON o.row_id = m.row_id
     ORDER BY o.node`,
  );
}
