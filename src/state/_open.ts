/**
 * Opening the state file: the privacy checks, SQLite's settings (WAL, no
 * busy wait inside SQLite), the schema migration, and every way that can
 * fail as one line naming the file.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { ConfigurationError } from "../errors.ts";
import { failureOf } from "./_batch_writer.ts";
import { checkSameFile, preparePrivateFile } from "./_private_path.ts";
import { migrate, schemaVersion, STATE_SCHEMA_VERSION } from "./_schema.ts";
import { inTransaction } from "./_sql.ts";

/** A SQLite error at open as one line naming the file. */
function openFailure(path: string, e: unknown): ConfigurationError {
  if (e instanceof ConfigurationError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const say = (what: string) =>
    new ConfigurationError(`${what} (${msg})`, { cause: e });
  if (/not a database|malformed|corrupt/i.test(msg)) {
    return say(
      `State store "${path}" is corrupt or not a SQLite database: move it away, or give --db another file`,
    );
  }
  if (/Requires \w+ access|NotCapable/.test(msg)) {
    return say(`Cannot use state store "${path}": no permission`);
  }
  if (failureOf(e) === "busy") {
    return say(
      `State store "${path}" stayed locked by another process: try again, or give --db another file`,
    );
  }
  return say(
    `Cannot write state store "${path}": check the file and its directory, or give --db another file`,
  );
}

/** Wait up to `timeout` ms for `fn` to run without a lock conflict. */
async function whenUnlocked<T>(fn: () => T, timeout: number): Promise<T> {
  const start = Date.now();
  for (let pause = 5;; pause = Math.min(pause * 2, 250)) {
    try {
      return fn();
    } catch (e) {
      if (failureOf(e) !== "busy" || Date.now() - start >= timeout) throw e;
    }
    await new Promise((r) => setTimeout(r, pause));
  }
}

/**
 * Open (creating when missing) the private state file at `path`, up to
 * date; waits up to `lockTimeout` ms for a lock another process holds
 * while a migration is due. One-line `ConfigurationError` on failure.
 */
export async function openDatabase(
  path: string,
  lockTimeout: number,
): Promise<DatabaseSync> {
  const ino = preparePrivateFile(path);
  let db: DatabaseSync | undefined;
  try {
    // No busy wait inside SQLite: its handler would block the event loop.
    db = new DatabaseSync(path, { timeout: 0 });
    checkSameFile(path, ino);
    const opened = db;
    await whenUnlocked(() => {
      // An up-to-date file needs no write lock to open: a writer of
      // another process does not hold this one up.
      const current = schemaVersion(opened) === STATE_SCHEMA_VERSION;
      // Takes effect on a new file only: freed pages go back to the disk.
      if (!current) opened.exec("PRAGMA auto_vacuum = INCREMENTAL");
      opened.exec("PRAGMA journal_mode = WAL");
      // A commit without fsync is still atomic in WAL mode; a power cut
      // may lose the last batch, never corrupt the file.
      opened.exec("PRAGMA synchronous = NORMAL");
      if (!current) inTransaction(opened, () => migrate(opened, path));
    }, lockTimeout);
  } catch (e) {
    if (db?.isOpen) db.close();
    throw openFailure(path, e);
  }
  return db;
}
