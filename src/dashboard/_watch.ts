/**
 * The store watcher: what other processes record (invocations, outcomes,
 * poll samples) reaches the dashboard by polling the state store for rows
 * newer than the last seen `rowId`, several times a second. SQLite in WAL
 * mode lets these reads run beside the writers without blocking them; an
 * indexed "rowId > N" read of nothing new costs microseconds.
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import type {
  InvocationRecord,
  OutcomeRecord,
  SampleFilter,
  SampleRecord,
} from "../state/_types.ts";
import {
  type DashboardModel,
  type InvocationView,
  invocationView,
  MAX_INVOCATIONS,
  type SampleView,
  sampleView,
  type Tile,
} from "./_model.ts";

/**
 * What the dashboard reads of the state store. `StateStore` satisfies it;
 * the dashboard never writes.
 */
export interface DashboardStore {
  /** Newest first; with `afterRowId`, what is new or changed since, oldest first. */
  invocations(
    options?: { limit?: number; afterRowId?: number },
  ): InvocationRecord[];
  /** One invocation and its outcomes, or null. */
  invocation(
    id: string,
  ): { invocation: InvocationRecord; outcomes: OutcomeRecord[] } | null;
  /** Samples, oldest first. */
  samples(filter?: SampleFilter): SampleRecord[];
  /** The latest outcome per node; with `since`, every outcome since. */
  lastOutcomes(options?: { since?: Date }): OutcomeRecord[];
}

/** Where the watcher's findings go. */
export interface WatchSink {
  samples(samples: SampleView[]): void;
  invocations(invocations: InvocationView[]): void;
  tiles(tiles: Tile[]): void;
  /** A read failed: one line (told once until reads work again). */
  warning(line: string): void;
}

/** Samples read at most per query. */
const PAGE = 5000;
/** How often the last outcomes and the hour's failures are read again. */
const OUTCOMES_EVERY = 5000;
/** The window of "failures in the last hour". */
export const FAILURE_WINDOW = 3_600_000;
/** Invocation ids remembered as counted (their runs are in the counters). */
const MAX_COUNTED = 10_000;
/** How far back the latest value per node and command is looked for at start. */
const LATEST_WINDOW = 3_600_000;

/**
 * The largest sample rowId in the store (0 when none): samples are read
 * oldest first, so it is found by bisection on `afterRowId` with
 * `limit: 1`, each step one indexed lookup.
 */
export function maxSampleRow(store: Pick<DashboardStore, "samples">): number {
  const any = (after: number) =>
    store.samples({ afterRowId: after, limit: 1 }).length > 0;
  if (!any(0)) return 0;
  let low = 0; // some sample has rowId > low
  let high = 1;
  while (any(high)) {
    low = high;
    high *= 2;
    if (high > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  }
  while (high - low > 1) { // any(low), !any(high)
    const mid = Math.floor((low + high) / 2);
    if (any(mid)) low = mid;
    else high = mid;
  }
  return high;
}

/** Follows the store for one dashboard. */
export class StoreWatcher {
  #store: DashboardStore;
  #model: DashboardModel;
  #sink: WatchSink;
  #invocationRow = 0;
  #counted = new Set<string>();
  #outcomesAt = 0;
  #failing = false;

  constructor(store: DashboardStore, model: DashboardModel, sink: WatchSink) {
    this.#store = store;
    this.#model = model;
    this.#sink = sink;
  }

  /**
   * Read the starting state: the recent invocations (their runs not
   * counted: the counters start now), the newest sample rowId, the latest
   * value per node and command of the last hour, the outcomes.
   */
  start(now = Date.now()): void {
    const recent = this.#store.invocations({ limit: MAX_INVOCATIONS });
    for (const r of recent) {
      this.#model.applyInvocation(invocationView(r));
      this.#invocationRow = Math.max(this.#invocationRow, r.rowId);
      if (r.endedAt !== null) this.#remember(r.id);
    }
    const top = maxSampleRow(this.#store);
    let after = 0;
    const since = new Date(now - LATEST_WINDOW);
    for (;;) {
      const page = this.#store.samples({
        since,
        afterRowId: after,
        limit: PAGE,
      })
        .filter((s) => s.rowId <= top);
      this.#model.applySamples(page.map(sampleView));
      if (page.length < PAGE) break;
      after = page[page.length - 1].rowId;
    }
    this.#model.sampleRow = top;
    this.#readOutcomes(now);
  }

  #remember(id: string): void {
    this.#counted.add(id);
    if (this.#counted.size > MAX_COUNTED) {
      this.#counted.delete(this.#counted.values().next().value!);
    }
  }

  #readOutcomes(now: number): void {
    this.#outcomesAt = now;
    const tiles = this.#model.applyOutcomes(
      this.#store.lastOutcomes(),
      this.#store.lastOutcomes({ since: new Date(now - FAILURE_WINDOW) }),
    );
    if (tiles.length) this.#sink.tiles(tiles);
  }

  /** One look for what is new; never throws (a failure is one warning). */
  poll(now = Date.now()): void {
    try {
      const changed = this.#pollInvocations();
      this.#pollSamples();
      if (changed || now - this.#outcomesAt >= OUTCOMES_EVERY) {
        this.#readOutcomes(now);
      }
      this.#failing = false;
    } catch (e) {
      if (!this.#failing) {
        this.#failing = true;
        this.#sink.warning(
          `Reading the state store failed: ${(e as Error)?.message ?? e}`,
        );
      }
    }
  }

  #pollInvocations(): boolean {
    const rows = this.#store.invocations({ afterRowId: this.#invocationRow });
    if (rows.length === 0) return false;
    const views: InvocationView[] = [];
    for (const r of rows) {
      this.#invocationRow = Math.max(this.#invocationRow, r.rowId);
      const v = invocationView(r);
      this.#model.applyInvocation(v);
      views.push(v);
      if (r.endedAt !== null && !this.#counted.has(r.id)) {
        this.#remember(r.id);
        this.#model.countRuns(this.#store.invocation(r.id)?.outcomes ?? []);
      }
    }
    this.#sink.invocations(views);
    return true;
  }

  #pollSamples(): void {
    for (;;) {
      const page = this.#store.samples({
        afterRowId: this.#model.sampleRow,
        limit: PAGE,
      });
      if (page.length === 0) return;
      const views = page.map(sampleView);
      this.#model.applySamples(views);
      this.#sink.samples(views);
      if (page.length < PAGE) return;
    }
  }

  /** Poll every `interval` ms until `signal` aborts. */
  async run(interval: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.poll();
      try {
        await delay(interval, { signal });
      } catch { /* aborted */ }
    }
  }
}
