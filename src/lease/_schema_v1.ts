/**
 * Lease store schema, version 1, in both dialects. Times are integer
 * milliseconds since the epoch by the store's clock; node lists are JSON
 * arrays of names (a lab has few live leases: the store loads them all and
 * decides in one place, `_decide.ts`). A later version adds a file
 * `_schema_v2.ts` with the statements that migrate from this one.
 *
 * @module
 */

/** Statements creating version 1, per dialect. */
export const SCHEMA_V1: { sqlite: string[]; postgres: string[] } = {
  sqlite: [
    `CREATE TABLE leases (
      id TEXT PRIMARY KEY,
      token TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      nodes TEXT NOT NULL,
      taken_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    )`,
    `CREATE TABLE waiters (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      token TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      nodes TEXT NOT NULL,
      since INTEGER NOT NULL,
      heartbeat_at INTEGER NOT NULL
    )`,
    `CREATE TABLE history (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      kind TEXT NOT NULL,
      lease_id TEXT NOT NULL,
      nodes TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      overridden TEXT
    )`,
    `CREATE INDEX history_at ON history (at)`,
  ],
  postgres: [
    `CREATE TABLE leases (
      id TEXT PRIMARY KEY,
      token TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      nodes TEXT NOT NULL,
      taken_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL
    )`,
    `CREATE TABLE waiters (
      seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      token TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      nodes TEXT NOT NULL,
      since BIGINT NOT NULL,
      heartbeat_at BIGINT NOT NULL
    )`,
    `CREATE TABLE history (
      seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at BIGINT NOT NULL,
      kind TEXT NOT NULL,
      lease_id TEXT NOT NULL,
      nodes TEXT NOT NULL,
      holder TEXT NOT NULL,
      note TEXT NOT NULL,
      overridden TEXT
    )`,
    `CREATE INDEX history_at ON history (at)`,
  ],
};
