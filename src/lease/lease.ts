/**
 * Leases on nodes, so a shared rig is used by one holder at a time: a lease
 * covers a set of nodes (all or nothing) for a duration, carries a holder, a
 * note and an owner token, and ends at its expiry whatever happens to its
 * holder. Requests that wait are served first come, first served per node.
 * Every take, renewal, drop, expiry and forced override is kept in a
 * history.
 *
 * The store is a SQLite file (one controller and its users; the file's group
 * decides who may take leases) or a PostgreSQL database (a team with several
 * controllers); its clock, not the caller's, decides expiry. fiwi creates
 * and migrates the schema itself.
 *
 * @example
 * ```ts
 * import { openLeaseStore } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using store = await openLeaseStore(`${dir}/leases.db`);
 * {
 *   await using lease = await store.take({ nodes: ["dut1"], for: 60_000, note: "bisecting" });
 *   console.log((await store.list()).leases.map((l) => [l.id === lease.id, l.note]));
 * }
 * console.log((await store.history()).map((e) => e.kind)); // ["take", "drop"]
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { openSqlite } from "./_sqlite.ts";
import { SqlLeaseStore } from "./_store.ts";

export { defaultLeaseHolder } from "./_request.ts";
import type { LeaseStore, LeaseStoreOptions } from "./_lease.ts";

export { Lease, LeaseHeldError, LeaseLostError } from "./_lease.ts";
export type {
  LeaseEvent,
  LeaseEventKind,
  LeaseHistoryOptions,
  LeaseInfo,
  LeaseRequest,
  LeaseStore,
  LeaseStoreOptions,
  LeaseWaiter,
} from "./_lease.ts";

/**
 * The default bound on connecting to a lease store and waiting for its
 * lock (ms).
 *
 * @example
 * ```ts
 * import { DEFAULT_LEASE_STORE_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_LEASE_STORE_TIMEOUT); // 5000
 * ```
 */
export const DEFAULT_LEASE_STORE_TIMEOUT = 5_000;

/** Whether `location` names a PostgreSQL database rather than a file. */
function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Open the lease store at `location`: a `postgres://` or `postgresql://`
 * URL, or else a SQLite file path (created when missing). The schema is
 * created or migrated first. Rejects with {@linkcode ConfigurationError},
 * in one line naming the store, when it is unreachable, unwritable,
 * corrupt, or has a schema newer than this fiwi.
 *
 * @param location file path or database URL
 * @param options timeout
 *
 * @example
 * ```ts
 * import { openLeaseStore } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using store = await openLeaseStore(`${dir}/leases.db`, { timeout: 2000 });
 * const lease = await store.take({ nodes: ["dut1", "dut2"], for: 2 * 3600_000 });
 * console.log(await store.held(["dut1"])); // []: a lease of this store's token
 * await lease.drop();
 * ```
 */
export async function openLeaseStore(
  location: string,
  options: LeaseStoreOptions = {},
): Promise<LeaseStore> {
  if (typeof location !== "string" || location.trim() === "") {
    throw new TypeError(
      "Invalid lease store: give a file path or a postgres:// URL",
    );
  }
  const timeout = options.timeout ?? DEFAULT_LEASE_STORE_TIMEOUT;
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 2 ** 31 - 1) {
    throw new RangeError(
      `Invalid lease store timeout ${timeout}: give 1 to ${2 ** 31 - 1} ms`,
    );
  }
  if (isPostgresUrl(location)) {
    const { openPostgres, redactUrl } = await import("./_postgres.ts");
    const shown = redactUrl(location);
    const backend = await openPostgres(location, shown, timeout);
    return new SqlLeaseStore(backend, shown, timeout);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new ConfigurationError(
      `Invalid lease store "${location}": give a file path or a postgres:// URL`,
    );
  }
  return new SqlLeaseStore(
    await openSqlite(location, timeout),
    location,
    timeout,
  );
}
