/**
 * Bounded retention: records older than the retention period are deleted,
 * then the oldest ones while the file holds more than its byte bound (poll
 * samples first: they are the bulk; invocations with their outcomes after
 * them). Deletes go in chunks, each its own short transaction, so another
 * process waits for none of them long; freed pages go back to the file
 * system (`auto_vacuum = INCREMENTAL`).
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { inTransaction, type Statements } from "./_sql.ts";

/** What bounds the store. */
export interface Retention {
  retentionDays: number;
  maxBytes: number;
}

/** Rows deleted per transaction. */
const CHUNK = 5000;
const DAY = 86_400_000;

/** Bytes the file's pages in use take. */
export function usedBytes(q: Statements): number {
  const n = (sql: string) => Number(Object.values(q.all(sql)[0])[0]);
  return (n("PRAGMA page_count") - n("PRAGMA freelist_count")) *
    n("PRAGMA page_size");
}

/** Delete in chunks with `sql` (parameters: ...`params`, limit) until none is left. */
function deleteAll(
  db: DatabaseSync,
  q: Statements,
  sql: string,
  ...params: number[]
): number {
  let deleted = 0;
  for (;;) {
    const n = inTransaction(
      db,
      () => Number(q.get(sql).run(...params, CHUNK).changes),
    );
    deleted += n;
    if (n < CHUNK) return deleted;
  }
}

function deleteOlderThan(db: DatabaseSync, q: Statements, cutoff: number) {
  return deleteAll(
    db,
    q,
    `DELETE FROM samples WHERE row_id IN
       (SELECT row_id FROM samples WHERE at < ? ORDER BY at LIMIT ?)`,
    cutoff,
  ) + deleteAll(
    db,
    q,
    `DELETE FROM outcomes WHERE row_id IN
       (SELECT row_id FROM outcomes WHERE at < ? ORDER BY at LIMIT ?)`,
    cutoff,
  ) + deleteAll(
    db,
    q,
    `DELETE FROM invocations WHERE row_id IN
       (SELECT row_id FROM invocations WHERE started_at < ? ORDER BY started_at LIMIT ?)`,
    cutoff,
  );
}

/** Delete the oldest `n` samples, or else the oldest invocations; 0 when empty. */
function deleteOldest(db: DatabaseSync, q: Statements, n: number): number {
  return inTransaction(db, () => {
    const samples = Number(
      q.get(
        `DELETE FROM samples WHERE row_id IN
           (SELECT row_id FROM samples ORDER BY row_id LIMIT ?)`,
      ).run(n).changes,
    );
    if (samples > 0) return samples;
    const ids = `SELECT id FROM invocations ORDER BY started_at LIMIT ?`;
    const outcomes = Number(
      q.get(`DELETE FROM outcomes WHERE invocation_id IN (${ids})`).run(
        Math.max(1, Math.ceil(n / 100)),
      ).changes,
    );
    return outcomes + Number(
      q.get(`DELETE FROM invocations WHERE id IN (${ids})`).run(
        Math.max(1, Math.ceil(n / 100)),
      ).changes,
    );
  });
}

function rowCount(q: Statements): number {
  return Number(
    q.all(
      `SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM outcomes)
         + (SELECT count(*) FROM invocations) AS n`,
    )[0].n,
  );
}

/**
 * Apply `retention` now; returns the rows deleted. Throws what SQLite
 * throws (a locked database: the caller tries again later).
 */
export function applyRetention(
  db: DatabaseSync,
  q: Statements,
  retention: Retention,
  now = Date.now(),
): number {
  let deleted = deleteOlderThan(db, q, now - retention.retentionDays * DAY);
  // Down to 90 % of the bound, so the next check does not delete again at once.
  const target = retention.maxBytes * 0.9;
  for (let round = 0; round < 100; round++) {
    const used = usedBytes(q);
    if (used <= retention.maxBytes && round === 0) break;
    if (used <= target) break;
    const rows = rowCount(q);
    if (rows === 0) break;
    const n = Math.max(100, Math.ceil(rows * (used - target) / used));
    const d = deleteOldest(db, q, Math.min(n, 10 * CHUNK));
    if (d === 0) break;
    deleted += d;
  }
  // Stepped to the end: exec() would free one page only.
  if (deleted > 0) q.all("PRAGMA incremental_vacuum");
  return deleted;
}
