/**
 * Rows as the stores read and write them: ids, numbers (PostgreSQL's
 * BIGINT arrives as text), node lists as JSON text.
 *
 * @module
 */

import type { LeaseRow, WaiterRow } from "./_decide.ts";
import type { LeaseWaiter } from "./_lease.ts";

/** A new short random id (12 hex digits). */
export function newId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** A number column (PostgreSQL's BIGINT is text). */
export function num(value: unknown): number {
  return typeof value === "number" ? value : Number(value);
}

/** A JSON list of node names. */
export function names(value: unknown): string[] {
  return JSON.parse(String(value));
}

/** A `leases` row. */
export function leaseRow(r: Record<string, unknown>): LeaseRow {
  return {
    id: String(r.id),
    token: String(r.token),
    holder: String(r.holder),
    note: String(r.note),
    nodes: names(r.nodes),
    takenAt: num(r.taken_at),
    expiresAt: num(r.expires_at),
  };
}

/** A `waiters` row. */
export function waiterRow(r: Record<string, unknown>): WaiterRow {
  return {
    seq: num(r.seq),
    id: String(r.id),
    token: String(r.token),
    holder: String(r.holder),
    note: String(r.note),
    nodes: names(r.nodes),
    since: num(r.since),
    heartbeatAt: num(r.heartbeat_at),
  };
}

/** A waiter as the public API shows it. */
export function waiterInfo(w: WaiterRow): LeaseWaiter {
  return {
    id: w.id,
    nodes: w.nodes,
    holder: w.holder,
    note: w.note,
    since: new Date(w.since),
  };
}
