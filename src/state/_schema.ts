/**
 * Schema versions of the state store and the migration that brings a file
 * up to date: one SQL text per version, applied in one transaction with the
 * version it reaches (`PRAGMA user_version`). A file written by a newer
 * fiwi is refused: its tables may mean something this one does not know.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { ConfigurationError } from "../errors.ts";
import { SCHEMA_V1 } from "./_schema_v1.ts";

/** SQL of each version, oldest first: entry `k` migrates from `k` to `k + 1`. */
const VERSIONS: readonly string[] = [SCHEMA_V1];

/** The schema version this fiwi writes. */
export const STATE_SCHEMA_VERSION: number = VERSIONS.length;

/** The version the file at `db` has (0: empty). */
export function schemaVersion(db: DatabaseSync): number {
  const row = db.prepare("PRAGMA user_version").get() as
    | { user_version: number }
    | undefined;
  return Number(row?.user_version ?? 0);
}

/**
 * Bring `db` to {@linkcode STATE_SCHEMA_VERSION}. Runs inside the caller's
 * write transaction (so two processes opening a new file at once migrate it
 * once); {@linkcode ConfigurationError} when the file is newer.
 */
export function migrate(db: DatabaseSync, path: string): void {
  const found = schemaVersion(db);
  if (found > STATE_SCHEMA_VERSION) {
    throw new ConfigurationError(
      `State store "${path}" has schema version ${found}, newer than this fiwi knows (${STATE_SCHEMA_VERSION}): upgrade fiwi, or give --db another file`,
    );
  }
  for (let v = found; v < STATE_SCHEMA_VERSION; v++) db.exec(VERSIONS[v]);
  if (found !== STATE_SCHEMA_VERSION) {
    db.exec(`PRAGMA user_version = ${STATE_SCHEMA_VERSION}`);
  }
}
