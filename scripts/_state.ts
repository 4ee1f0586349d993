/**
 * What a `fiwi` subcommand records in the state store (the library's
 * {@linkcode StateStore}): its invocation (subcommand, command, node set,
 * user, start; end and exit code when it ends), each node's outcome for
 * `run`, `push`, `pull`, `power` and `check`, and every `poll` sample. Only
 * subcommands that contact nodes record, from the moment their nodes are
 * selected.
 *
 * The file is `--db FILE`, else the rig's `state:`, else
 * `$XDG_STATE_HOME/fiwi/state.db` (`~/.local/state/fiwi/state.db`);
 * `--no-db` records nothing. Recording never holds up output: records are
 * queued and written in batches (see the library). A store that cannot be
 * opened (not the user's own private file, corrupt, unwritable) stops the
 * subcommand with one line and exit 2, as the central log does; one that
 * cannot be written later (a full disk) costs one warning, and the count of
 * what was dropped goes to the central log.
 *
 * @module
 */

import {
  defaultStatePath,
  describeOutcome,
  formatNodeList,
  parseSampleValue,
  type PowerResult,
  type Rig,
  type RunResult,
  type SshNode,
  StateStore,
  type TransferResult,
} from "../mod.ts";
import { type OptionSpec, type ParsedArgs, UsageError } from "./_args.ts";
import { ownHolder } from "./_lease.ts";

/** `poll --value REGEX`: what picks the number a sample records. */
export const VALUE_OPTION: OptionSpec = {
  name: "value",
  arg: "REGEX",
  help:
    "record REGEX's first group (or its match) as each sample's number in the state store (default: the first number of the output)",
};

/** The pattern of `--value`, or undefined; a bad one is a usage error. */
export function valuePattern(
  flags: ParsedArgs["flags"],
): RegExp | undefined {
  const given = flags.value;
  if (given === undefined) return undefined;
  try {
    return new RegExp(String(given));
  } catch (e) {
    throw new UsageError(
      `Invalid --value "${given}": ${(e as Error).message}`,
    );
  }
}

/** What `fiwi check` decides per node, as far as the store needs it. */
export interface CheckOutcome {
  node: string;
  ok: boolean;
  /** What failed: `timeout`, `unreachable`, `auth`, `host-key`, `command`, `config`. */
  problem: string | null;
  ms: number;
}

/** Check's problems in the words of `describeOutcome`. */
const CHECK_KEYS: Record<string, string> = {
  timeout: "connect timeout",
  "host-key": "host key rejected",
  auth: "auth failed",
};

/**
 * The state file an invocation records in, or null for none: `--no-db`,
 * `--db FILE` (`resolve`d against the user's directory), the rig's
 * `state:`, the default.
 */
export function statePathOf(
  flags: ParsedArgs["flags"],
  rig: Pick<Rig, "state"> | null,
  resolve: (path: string) => string,
): string | null {
  if (flags["no-db"] === true) return null;
  if (flags.db !== undefined) return resolve(String(flags.db));
  return rig?.state ?? defaultStatePath();
}

/** What a {@linkcode StateRecorder} is told at the start. */
export interface RecorderSetup {
  /** The subcommand. */
  subcommand: string;
  /** Its arguments, as given. */
  args: readonly string[];
  /** Its positional arguments (the command of `run` and `poll`). */
  rest: readonly string[];
  /** Parsed options (`--db`, `--no-db`). */
  flags: ParsedArgs["flags"];
  /** The invocation id (the central log's). */
  id: string;
  /** Resolves `--db` against the user's directory. */
  resolve: (path: string) => string;
  /** Told the store's one warning. */
  warn: (line: string) => void;
}

/** One invocation's recording; every method is a no-op until {@linkcode StateRecorder.begin}. */
export class StateRecorder {
  #s: RecorderSetup;
  #startedAt = new Date();
  #store: StateStore | null = null;
  #begun = false;

  /** Throws a `UsageError` for `--db` given with `--no-db`. */
  constructor(setup: RecorderSetup) {
    if (setup.flags.db !== undefined && setup.flags["no-db"]) {
      throw new UsageError('Give either "--db FILE" or "--no-db", not both');
    }
    this.#s = setup;
  }

  /**
   * Open the store and record the start (once; later calls do nothing).
   * Rejects with a one-line `ConfigurationError` when the store cannot be
   * opened.
   */
  async begin(rig: Rig, nodes: readonly SshNode[]): Promise<void> {
    if (this.#begun) return;
    this.#begun = true;
    const s = this.#s;
    const path = statePathOf(s.flags, rig, s.resolve);
    if (path === null) return;
    this.#store = await StateStore.open(path, { onWarning: s.warn });
    const command = s.subcommand === "run" || s.subcommand === "poll"
      ? s.rest.join(" ")
      : s.args.join(" ");
    this.#store.startInvocation({
      id: s.id,
      subcommand: s.subcommand,
      command,
      nodes: formatNodeList(nodes.map((n) => n.name)),
      user: ownHolder(),
      startedAt: this.#startedAt,
    });
  }

  /** Each node's outcome of a run (`bytes`: the output kept of it). */
  runs(results: readonly RunResult[]): void {
    const store = this.#store;
    if (!store) return;
    for (const r of results) {
      store.recordOutcome({
        invocationId: this.#s.id,
        node: r.node,
        outcome: describeOutcome(r).key,
        code: r.code,
        durationMs: r.durationMs,
        bytes: r.stdout.length + r.stderr.length,
        at: endedAt(r),
      });
    }
  }

  /** Each node's outcome of a push or pull. */
  transfers(results: readonly TransferResult[]): void {
    for (const r of results) {
      this.#outcome(r.node, describeOutcome(r).key, r.durationMs, r.bytes);
    }
  }

  /** Each node's outcome of `power`. */
  power(results: readonly PowerResult[]): void {
    for (const r of results) {
      this.#outcome(
        r.node,
        r.success ? "ok" : "failed",
        Date.now() - this.#startedAt.getTime(),
      );
    }
  }

  /** Each node's outcome of `check`. */
  checks(checks: readonly CheckOutcome[]): void {
    for (const c of checks) {
      const key = c.ok ? "ok" : CHECK_KEYS[c.problem ?? ""] ?? c.problem;
      this.#outcome(c.node, key ?? "failed", c.ms);
    }
  }

  /**
   * One poll sample: `r` of tick `tick` of `command`; its value by
   * `pattern` (`--value`), else the first number. A run the interrupt
   * stopped is no sample.
   */
  sample(r: RunResult, tick: number, command: string, pattern?: RegExp): void {
    if (!this.#store || r.aborted) return;
    const output = r.stdout.replace(/\n$/, "");
    this.#store.recordSample({
      invocationId: this.#s.id,
      node: r.node,
      command,
      tick,
      at: endedAt(r),
      output,
      value: parseSampleValue(output, pattern),
    });
  }

  /** Record the end with `code`, write what is queued, close the store. */
  async end(code: number): Promise<void> {
    const store = this.#store;
    this.#store = null;
    if (!store) return;
    store.endInvocation(this.#s.id, code);
    try {
      await store.close();
    } catch (e) {
      // The run is over: its exit code stands; say why the record may lack its end.
      this.#s.warn(
        `State store "${store.path}": ${(e as Error)?.message ?? e}`,
      );
    }
  }

  /** {@linkcode StateRecorder.end} for a process that exits at once. */
  endSync(code: number): void {
    const store = this.#store;
    this.#store = null;
    if (!store) return;
    store.endInvocation(this.#s.id, code);
    store.closeSync();
  }

  #outcome(node: string, outcome: string, durationMs: number, bytes = 0) {
    this.#store?.recordOutcome({
      invocationId: this.#s.id,
      node,
      outcome,
      code: null,
      durationMs,
      bytes,
      at: new Date(),
    });
  }
}

/**
 * When `r` ended, on the wall clock, never later than now. `startedAt` is
 * when the client was spawned, but a node's `durationMs` (from `retryRun`)
 * also counts the wait for admission before it, so their sum placed samples
 * of a loaded poll up to 8.7 s in the future.
 */
function endedAt(r: RunResult): Date {
  return new Date(Math.min(Date.now(), r.startedAt.getTime() + r.durationMs));
}
