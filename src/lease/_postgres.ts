/**
 * The PostgreSQL dialect of the lease store, over the npm `postgres` client
 * (porsager/postgres). Loaded only when a store URL asks for it.
 *
 * Locking: every operation is one transaction that first takes one
 * transaction-scoped advisory lock (`pg_advisory_xact_lock`), so decisions
 * are serialised exactly as SQLite's `BEGIN IMMEDIATE` serialises them, and
 * the one algorithm in `_decide.ts` reasons the same on both stores. Why
 * not SERIALIZABLE: FIFO fairness reads every lease and waiter, so under
 * contention most transactions would fail with serialization errors and
 * need a retry loop; row locks cannot lock "the queue". A lease transaction
 * lasts a few ms, so one lock costs nothing at a lab's scale. The lock wait
 * is bounded by `lock_timeout`; the clock is the server's
 * `clock_timestamp()` read once the lock is held.
 *
 * @module
 */

import postgres from "npm:postgres@^4";
import { ConfigurationError, type FiwiError } from "../errors.ts";
import type { Backend } from "./_store.ts";
import { migrate, type Query } from "./_schema.ts";

/** The advisory lock of the lease tables: "fiwi" in ASCII, then 1. */
const LOCK = "SELECT pg_advisory_xact_lock(1718187881, 1)";

/** SQLSTATE classes and client codes of a server that is down or busy. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "55P03", // lock_not_available (lock_timeout)
  "57014", // query_canceled (statement_timeout)
  "40001",
  "40P01",
]);

/** `postgres://user:secret@host/db` without the secret, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "";
    return u.toString().replace(/:@/, "@");
  } catch {
    return url.replace(/:[^:@/]*@/, "@");
  }
}

/** `?` placeholders as PostgreSQL's `$1`, `$2`, … (no `?` in the SQL's literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function explain(
  location: string,
  e: unknown,
): { error: FiwiError; transient: boolean } {
  const err = e as { code?: string; name?: string; message?: string };
  const msg = (err?.message ?? String(e)).replace(/\s+/g, " ").trim();
  const code = String(err?.code ?? "");
  const say = (what: string, transient = false) => ({
    error: new ConfigurationError(`${what}: ${msg}`, { cause: e }),
    transient,
  });
  if (err?.name === "NotCapable" || /^Requires \w+ access/.test(msg)) {
    return say(`Cannot use lease store "${location}": no permission`);
  }
  if (
    TRANSIENT_CODES.has(code) || code.startsWith("08") ||
    code.startsWith("57P") || /connect|closed|ended/i.test(code)
  ) {
    return say(`Lease store "${location}" is unreachable`, true);
  }
  if (code.startsWith("28") || code === "3D000" || code === "42501") {
    return say(`Lease store "${location}" refused access`);
  }
  return say(`Lease store "${location}" failed`);
}

/**
 * Connect to the PostgreSQL lease store at `url` and bring its schema up to
 * date; {@linkcode ConfigurationError} when it cannot be reached or used.
 */
export async function openPostgres(
  url: string,
  location: string,
  timeout: number,
): Promise<Backend> {
  let sql: postgres.Sql;
  try {
    sql = postgres(url, {
      max: 2,
      connect_timeout: Math.max(1, Math.ceil(timeout / 1000)),
      idle_timeout: 60,
      // The client's type lookup costs a round trip (~10 ms) on every
      // connect; the lease tables use only built-in types.
      fetch_types: false,
      onnotice: () => {},
      connection: {
        application_name: "fiwi",
        lock_timeout: timeout,
        statement_timeout: 2 * timeout,
      },
    });
  } catch (e) {
    throw explain(location, e).error;
  }
  const backend: Backend = {
    dialect: "postgres",
    nowSql:
      "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now",
    contains: (column) => `strpos(${column}, ?) > 0`,
    transaction: async <T>(fn: (q: Query) => Promise<T>): Promise<T> =>
      await sql.begin(async (tx) => {
        await tx.unsafe(LOCK);
        const q: Query = async (text, params = []) =>
          [
            ...await tx.unsafe(
              numbered(text),
              params as postgres.ParameterOrJSON<never>[],
            ),
          ] as Record<string, unknown>[];
        return await fn(q);
      }) as T,
    explain: (e) => explain(location, e),
    close: () => sql.end({ timeout: 1 }),
  };
  try {
    await backend.transaction((q) => migrate(q, "postgres", location));
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    if (e instanceof ConfigurationError) throw e;
    throw explain(location, e).error;
  }
  return backend;
}
