/**
 * The SQLite dialect of the lease store: Deno's built-in `node:sqlite`, in
 * WAL mode, every operation one `BEGIN IMMEDIATE` transaction (the write
 * lock is taken first, so two controllers' decisions never interleave), with
 * the store timeout as SQLite's busy timeout.
 *
 * `node:sqlite` is synchronous and its busy handler blocks the thread, so
 * two stores of one process must not hold transactions at once (the second
 * would block the event loop the first needs to commit): every transaction
 * of this process runs in turn, in the order asked.
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { ConfigurationError, type FiwiError } from "../errors.ts";
import type { Backend } from "./_store.ts";
import { migrate, type Query } from "./_schema.ts";

/** The process-wide turn of SQLite transactions. */
let turn: Promise<unknown> = Promise.resolve();

function inTurn<T>(fn: () => Promise<T>): Promise<T> {
  const run = turn.then(fn, fn);
  turn = run.catch(() => {});
  return run;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A SQLite or permission error as one line naming the file. */
function explain(
  path: string,
  timeout: number,
  e: unknown,
): { error: FiwiError; transient: boolean } {
  const msg = message(e);
  const name = e instanceof Error ? e.name : "";
  const say = (what: string, transient = false) => ({
    error: new ConfigurationError(`${what}: ${msg}`, { cause: e }),
    transient,
  });
  if (name === "NotCapable" || /^Requires \w+ access/.test(msg)) {
    return say(`Cannot use lease store "${path}": no permission`);
  }
  if (/not a database|malformed|corrupt/i.test(msg)) {
    return say(`Lease store "${path}" is corrupt or not a SQLite database`);
  }
  if (/readonly|read-only|permission denied|access permission/i.test(msg)) {
    return say(
      `Cannot write lease store "${path}" (check the file's and its directory's owner, group and mode)`,
    );
  }
  if (/unable to open/i.test(msg)) {
    return say(
      `Cannot open lease store "${path}" (does its directory exist, may you write to it?)`,
    );
  }
  if (/locked|busy/i.test(msg)) {
    return say(
      `Lease store "${path}" stayed locked for over ${timeout} ms`,
      true,
    );
  }
  return say(`Lease store "${path}" failed`);
}

/**
 * Open (creating when missing) the SQLite lease store at `path` and bring
 * its schema up to date; {@linkcode ConfigurationError} when it cannot be
 * opened, written or read.
 */
export async function openSqlite(
  path: string,
  timeout: number,
): Promise<Backend> {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout });
    db.exec(`PRAGMA busy_timeout = ${timeout}`);
    db.exec("PRAGMA journal_mode = WAL");
    // In WAL mode a commit without fsync is still atomic and consistent; a
    // power cut may lose the last lease taken, never corrupt the file.
    db.exec("PRAGMA synchronous = NORMAL");
  } catch (e) {
    db?.close();
    throw explain(path, timeout, e).error;
  }
  const backend = sqliteBackend(db, path, timeout);
  try {
    await backend.transaction((q) => migrate(q, "sqlite", path));
  } catch (e) {
    db.close();
    if (e instanceof ConfigurationError) throw e;
    throw backend.explain(e).error;
  }
  return backend;
}

function sqliteBackend(
  db: DatabaseSync,
  path: string,
  timeout: number,
): Backend {
  const statements = new Map<string, StatementSync>();
  const q: Query = (sql, params = []) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return Promise.resolve(
      statement.all(...(params as (string | number | null)[])) as Record<
        string,
        unknown
      >[],
    );
  };
  return {
    dialect: "sqlite",
    nowSql: "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER) AS now",
    contains: (column) => `instr(${column}, ?) > 0`,
    transaction: <T>(fn: (q: Query) => Promise<T>) =>
      inTurn(async () => {
        db.exec("BEGIN IMMEDIATE");
        try {
          const out = await fn(q);
          db.exec("COMMIT");
          return out;
        } catch (e) {
          if (db.isTransaction) db.exec("ROLLBACK");
          throw e;
        }
      }),
    explain: (e) => explain(path, timeout, e),
    close: () => {
      if (db.isOpen) db.close();
      return Promise.resolve();
    },
  };
}
