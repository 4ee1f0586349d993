/**
 * State store schema, version 1: the SQL text that creates it. Times are
 * integer milliseconds since the epoch. `seq` of an invocation is raised on
 * every change to it (start, end, new outcome counts), so a reader that asks
 * for "changed since" sees a run end. A later version adds `_schema_v2.ts`
 * with the SQL that migrates from this one, and appends it to `VERSIONS` in
 * `_schema.ts`.
 *
 * @module
 */

/** Creates version 1. */
export const SCHEMA_V1 = `
CREATE TABLE invocations (
  row_id INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  seq INTEGER NOT NULL,
  subcommand TEXT NOT NULL,
  command TEXT NOT NULL,
  nodes TEXT NOT NULL,
  user TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  exit_code INTEGER,
  ok INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invocations_seq ON invocations (seq);
CREATE INDEX invocations_started_at ON invocations (started_at);

CREATE TABLE outcomes (
  row_id INTEGER PRIMARY KEY AUTOINCREMENT,
  invocation_id TEXT NOT NULL,
  node TEXT NOT NULL,
  outcome TEXT NOT NULL,
  code INTEGER,
  duration_ms REAL NOT NULL,
  bytes INTEGER NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX outcomes_invocation_id ON outcomes (invocation_id);
CREATE INDEX outcomes_node ON outcomes (node, row_id);
CREATE INDEX outcomes_at ON outcomes (at);

CREATE TABLE samples (
  row_id INTEGER PRIMARY KEY AUTOINCREMENT,
  invocation_id TEXT NOT NULL,
  node TEXT NOT NULL,
  command TEXT NOT NULL,
  tick INTEGER NOT NULL,
  at INTEGER NOT NULL,
  output TEXT NOT NULL,
  value REAL
);
CREATE INDEX samples_at ON samples (at);
CREATE INDEX samples_command ON samples (command, row_id);
CREATE INDEX samples_invocation_id ON samples (invocation_id);
`;
