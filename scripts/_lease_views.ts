/**
 * What `fiwi lease list` and `fiwi lease history` print, and the JSON
 * records of leases and events every `fiwi lease` action shares: local
 * times, other owners' text made printable, NDJSON with a summary.
 *
 * @module
 */

import type { LeaseEvent, LeaseInfo, LeaseStore } from "../mod.ts";
import { formatNodeList } from "../nodeset.ts";
import { printable } from "./_lease.ts";
import { formatTable, isoLocal, type Output } from "./_output.ts";

/** The store and the nodes an action is about (null: every node). */
export interface Scope {
  store: LeaseStore;
  names: string[] | null;
}

/** A time for a table: `2025-12-06 14:32:05`, local. */
export function localTime(d: Date): string {
  return isoLocal(d.getTime()).slice(0, 19).replace("T", " ");
}

/** A lease as a JSON record. */
export function leaseJson(l: LeaseInfo): Record<string, unknown> {
  return {
    id: l.id,
    nodes: l.nodes,
    holder: l.holder,
    note: l.note,
    takenAt: isoLocal(l.takenAt.getTime()),
    expiresAt: isoLocal(l.expiresAt.getTime()),
    mine: l.mine,
  };
}

/**
 * `fiwi lease list`: every live lease and waiting request, those on `names`
 * when given; a table (yours marked), or NDJSON and a summary.
 */
export async function showLeases(
  out: Output,
  json: boolean,
  { store, names }: Scope,
): Promise<number> {
  const wanted = names && new Set(names);
  const covers = (nodes: string[]) =>
    !wanted || nodes.some((n) => wanted.has(n));
  const all = await store.list();
  const leases = all.leases.filter((l) => covers(l.nodes));
  const waiting = all.waiting.filter((w) => covers(w.nodes));
  if (json) {
    for (const l of leases) {
      out.out(JSON.stringify({ state: "held", ...leaseJson(l) }));
    }
    for (const w of waiting) {
      out.out(JSON.stringify({
        state: "waiting",
        id: w.id,
        nodes: w.nodes,
        holder: w.holder,
        note: w.note,
        since: isoLocal(w.since.getTime()),
      }));
    }
    out.out(JSON.stringify({
      summary: {
        store: store.location,
        leases: leases.length,
        waiting: waiting.length,
      },
    }));
    return 0;
  }
  if (leases.length === 0 && waiting.length === 0) {
    out.err(`No leases in ${store.location}`);
    return 0;
  }
  const rows = [["ID", "NODES", "HOLDER", "UNTIL", "NOTE"]];
  for (const l of leases) {
    rows.push([
      l.id,
      formatNodeList(l.nodes),
      l.mine ? `${l.holder} (you)` : l.holder,
      localTime(l.expiresAt),
      l.note,
    ]);
  }
  for (const w of waiting) {
    rows.push([
      w.id,
      formatNodeList(w.nodes),
      w.holder,
      `waiting since ${localTime(w.since)}`,
      w.note,
    ]);
  }
  printTable(out, rows);
  return 0;
}

/** Rows as columns on stdout; others' text made printable first. */
function printTable(out: Output, rows: string[][]): void {
  for (const line of formatTable(rows.map((r) => r.map(printable)))) {
    out.out(line);
  }
}

/** An event as a JSON record. */
function eventJson(e: LeaseEvent): Record<string, unknown> {
  return {
    at: isoLocal(e.at.getTime()),
    kind: e.kind,
    lease: e.leaseId,
    nodes: e.nodes,
    holder: e.holder,
    note: e.note,
    ...(e.overridden && { overridden: e.overridden }),
  };
}

/**
 * `fiwi lease history`: the events since `since` (all when undefined), those
 * on `names` when given, oldest first; a table, or NDJSON and a summary.
 */
export async function showHistory(
  out: Output,
  json: boolean,
  { store, names }: Scope,
  since: Date | undefined,
): Promise<number> {
  const wanted = names && new Set(names);
  const events = (await store.history({
    ...(since && { since }),
    // One node: the store filters (and its limit counts that node's events).
    ...(names?.length === 1 && { node: names[0] }),
  })).filter((e) => !wanted || e.nodes.some((n) => wanted.has(n)));
  if (json) {
    for (const e of events) out.out(JSON.stringify(eventJson(e)));
    out.out(JSON.stringify({ summary: { events: events.length } }));
    return 0;
  }
  if (events.length === 0) {
    out.err(`No lease events in ${store.location}`);
    return 0;
  }
  const rows = [["TIME", "EVENT", "ID", "NODES", "BY", "NOTE"]];
  for (const e of events) {
    const over = e.overridden?.length ? ` over ${e.overridden.join(", ")}` : "";
    rows.push([
      localTime(e.at),
      e.kind,
      e.leaseId,
      formatNodeList(e.nodes),
      e.holder + over,
      e.note,
    ]);
  }
  printTable(out, rows);
  return 0;
}
