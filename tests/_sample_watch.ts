/**
 * When each poll sample was recorded, as another process sees it: a reader
 * of the state store that asks for new sample rows every few milliseconds
 * and notes the time each row first appears. The browser test and the
 * dashboard benchmark time "recorded → drawn in the page" from these
 * times (a sample's own `at` is the poll's idea of when its run ended).
 *
 * @module
 */

import { StateStore } from "../mod.ts";

/** Rows asked for at most per look. */
const PAGE = 10_000;

/** A running watch; disposing it stops the reads and closes the store. */
export interface SampleWatch extends AsyncDisposable {
  /** `Date.now()` when each sample row (by rowId) was first seen. */
  readonly seenAt: ReadonlyMap<number, number>;
  /**
   * Resolves once row `rowId` (or a newer one) has been seen; rejects
   * after `ms` (default 5000).
   */
  seen(rowId: number, ms?: number): Promise<void>;
}

/**
 * Start watching the store at `db` (opened as a reader; created if it does
 * not exist yet) every `everyMs` milliseconds (default 20).
 */
export async function watchSamples(
  db: string,
  everyMs = 20,
): Promise<SampleWatch> {
  if (!Number.isFinite(everyMs) || everyMs <= 0) {
    throw new RangeError(`Invalid everyMs ${everyMs}: give a positive number`);
  }
  const store = await StateStore.open(db);
  const seenAt = new Map<number, number>();
  const stop = new AbortController();
  let after = 0;
  const looked = new EventTarget();
  const look = () => {
    for (;;) {
      const rows = store.samples({ afterRowId: after, limit: PAGE });
      const now = Date.now();
      for (const r of rows) seenAt.set(r.rowId, now);
      if (rows.length > 0) after = rows[rows.length - 1].rowId;
      if (rows.length < PAGE) break;
    }
    looked.dispatchEvent(new Event("look"));
  };
  const loop = (async () => {
    while (!stop.signal.aborted) {
      look();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, everyMs);
        function done() {
          clearTimeout(timer);
          stop.signal.removeEventListener("abort", done);
          resolve();
        }
        stop.signal.addEventListener("abort", done, { once: true });
      });
    }
  })();
  return {
    seenAt,
    seen(rowId, ms = 5000) {
      if (after >= rowId) return Promise.resolve();
      let check = () => {};
      let timer: ReturnType<typeof setTimeout> | undefined;
      return new Promise<void>((resolve, reject) => {
        check = () => after >= rowId && resolve();
        looked.addEventListener("look", check);
        timer = setTimeout(
          () => reject(new Error(`Row ${rowId} not seen within ${ms} ms`)),
          ms,
        );
      }).finally(() => {
        clearTimeout(timer);
        looked.removeEventListener("look", check);
      });
    },
    async [Symbol.asyncDispose]() {
      stop.abort();
      await loop;
      await store.close();
    },
  };
}
