/**
 * Schema versions and the migration that brings a store up to date, in one
 * transaction, recorded in `schema_version`. A store written by a newer
 * fiwi is refused: its tables may mean something this one does not know.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { SCHEMA_V1 } from "./_schema_v1.ts";

/** Statements of each version, oldest first: entry `k` migrates from `k` to `k + 1`. */
const VERSIONS: readonly { sqlite: string[]; postgres: string[] }[] = [
  SCHEMA_V1,
];

/** The schema version this fiwi writes. */
export const SCHEMA_VERSION: number = VERSIONS.length;

/** A count `n` > 0 when the `schema_version` table exists. */
const HAS_VERSION_TABLE = {
  sqlite:
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
  postgres:
    "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'",
};

/** Run one SQL statement with `?` parameters; rows as objects. */
export type Query = (
  sql: string,
  params?: readonly unknown[],
) => Promise<Record<string, unknown>[]>;

/**
 * Bring the store to {@linkcode SCHEMA_VERSION} inside the caller's
 * transaction; {@linkcode ConfigurationError} when it is newer.
 */
export async function migrate(
  q: Query,
  dialect: "sqlite" | "postgres",
  location: string,
): Promise<void> {
  // Look before creating: a role that may use the tables but not create
  // any (a team's database, migrated by its owner) must still get in.
  const exists = await q(HAS_VERSION_TABLE[dialect]);
  const found = Number(exists[0]?.n) > 0
    ? Number(
      (await q("SELECT max(version) AS version FROM schema_version"))[0]
        ?.version ?? 0,
    )
    : 0;
  if (found > SCHEMA_VERSION) {
    throw new ConfigurationError(
      `Lease store "${location}" has schema version ${found}, newer than this fiwi knows (${SCHEMA_VERSION}): upgrade fiwi`,
    );
  }
  if (found === SCHEMA_VERSION) return;
  await q(
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
  );
  for (let v = found; v < SCHEMA_VERSION; v++) {
    for (const statement of VERSIONS[v][dialect]) await q(statement);
  }
  await q("DELETE FROM schema_version");
  await q("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION]);
}
