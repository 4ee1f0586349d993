/**
 * The central log of the `fiwi` command: one private (0600) file of the
 * user's own, written asynchronously in batches (never synchronously while
 * a run is under way), rotated by size (`FIWI_LOG_SIZE`, `FIWI_LOG_FILES`),
 * every record stamped with ISO 8601 local time with its offset and the
 * invocation id. `--log FILE` is not trusted blindly: a symbolic link, a
 * file of another user or one group or others may access is refused
 * (exit 2), see {@linkcode checkLogFile}.
 *
 * Output lines take a short path: {@linkcode CentralLog.line} formats each
 * line as one log line (its own time, level, id and category) and queues it
 * for the file directly. LogTape's logger dispatch costs about 4 µs a
 * record: more than everything else fiwi does for a line. Records from
 * loggers go through {@linkcode CentralLog.sink} into the same queue, so
 * the file keeps the order things happened in. How the queue is written,
 * and what happens when the disk falls behind (past a bound of a few MiB
 * the batch is written synchronously), is in `_log_file.ts`.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "jsr:@std/path@^1";
import {
  configure,
  dispose,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "npm:@logtape/logtape@^2";
import { ConfigurationError } from "../mod.ts";
import { LineHead, logFormatter } from "./_log_format.ts";
import { LogFile } from "./_log_file.ts";

export { checkLogFile } from "./_log_file.ts";
export { isoLocal } from "./_log_format.ts";

/**
 * The central log file: `$XDG_STATE_HOME/fiwi/fiwi.log`, else
 * `~/.local/state/fiwi/fiwi.log` (a relative XDG_STATE_HOME is ignored, as
 * the XDG spec says). `env` reads a variable (undefined when unset).
 * Throws a `ConfigurationError` when neither variable gives a place.
 */
export function defaultLogFile(
  env: (name: string) => string | undefined,
): string {
  const state = env("XDG_STATE_HOME");
  if (state && isAbsolute(state)) return join(state, "fiwi", "fiwi.log");
  const home = env("HOME");
  if (home && isAbsolute(home)) {
    return join(home, ".local", "state", "fiwi", "fiwi.log");
  }
  throw new ConfigurationError(
    "No place for the central log: neither XDG_STATE_HOME nor HOME is an absolute path: set one, or give --log FILE or --no-log",
  );
}
/** Default size at which the log rotates: 50 MiB. */
export const DEFAULT_LOG_SIZE = 50 * 1024 * 1024;
/** Default number of rotated files kept (fiwi.log.1 … fiwi.log.N). */
export const DEFAULT_LOG_FILES = 5;

/** Where the log goes and how it rotates. */
export interface LogSettings {
  /** Absolute path of the log file; null: no log. */
  path: string | null;
  /** The path is the default one: its directory may be created (0700). */
  isDefault: boolean;
  /** Bytes at which the file rotates. */
  maxSize: number;
  /** Rotated files kept. */
  maxFiles: number;
  /** Id stamped on every record. */
  id: string;
}

/** A byte size: `1048576`, `512K`, `50M`, `1G`; a string says what is wrong. */
export function parseSize(text: string): number | string {
  const m = /^(\d+)([KMG]i?B?|B)?$/i.exec(text.trim());
  if (!m) return 'give bytes or a size like "512K", "50M", "1G"';
  const unit = (m[2] ?? "").charAt(0).toUpperCase();
  const scale = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[unit] ?? 1;
  const n = Number(m[1]) * scale;
  return n >= 1024 ? n : "give at least 1K";
}

/** A fresh invocation id: 8 hex digits. */
export function invocationId(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** Characters of output handled between two hints to the garbage collector. */
const GC_EVERY = 16 * 1024 * 1024;
let churn = 0;

/**
 * Count `chars` of output handled; every 16 M characters ask V8 for an
 * incremental major collection, when fiwi runs with `--v8-flags=--expose-gc`
 * (its tasks and install line do). Output passes through in large strings
 * (the log's 1 MiB writes) that V8 only frees in a major collection; left
 * to itself, it lets the heap grow by 100 MB on a long stream first.
 */
export function noteChurn(chars: number): void {
  churn += chars;
  if (churn < GC_EVERY) return;
  churn = 0;
  const gc = (globalThis as { gc?: (o: object) => void }).gc;
  gc?.({ type: "major", execution: "async" });
}

/**
 * The configured central log. {@linkcode CentralLog.line} logs one output
 * line; everything else logs through LogTape's loggers, whose records
 * reach the file through {@linkcode CentralLog.sink}. Both go into the one
 * batch of the {@linkcode LogFile}, so the file keeps the order things
 * happened in, and neither ever writes synchronously.
 */
export class CentralLog {
  /** Where records go, or null without a log. */
  readonly path: string | null;
  /** Id on every record of this invocation. */
  readonly id: string;
  #file: LogFile | null;
  #heads: LineHead;
  #format: (record: LogRecord) => string;

  /** @param path the file @param id invocation id @param file the open file */
  constructor(path: string | null, id: string, file: LogFile | null) {
    this.path = path;
    this.id = id;
    this.#file = file;
    this.#heads = new LineHead(id);
    this.#format = logFormatter(id);
  }

  /**
   * The sink LogTape's loggers use. Its synchronous dispose (LogTape's
   * `disposeSync`, on the way out of a second Ctrl-C) writes what is queued
   * synchronously; {@linkcode CentralLog.close} is the normal, asynchronous
   * way out.
   */
  readonly sink: Sink & Disposable = Object.assign((record: LogRecord) => {
    this.#file?.write(this.#format(record));
  }, {
    [Symbol.dispose]: () => {
      this.#file?.closeSync();
      this.#file = null;
    },
  });

  /**
   * One output line, one line in the log (`level`: info for stdout, warning
   * for stderr), queued with the lines around it.
   */
  line(
    category: readonly string[],
    level: LogLevel,
    text: string,
    time: number = Date.now(),
  ): void {
    if (this.#file === null) return;
    const entry = this.#heads.head(time, level, category) + text + "\n";
    noteChurn(entry.length);
    this.#file.write(entry);
  }

  /** Resolves once everything logged so far is in the file. */
  async drain(): Promise<void> {
    await this.#file?.drain();
  }

  /**
   * Write everything queued, close the file, and end LogTape's
   * configuration: the one way out of every subcommand (runCli's finally).
   */
  async close(): Promise<void> {
    const file = this.#file;
    if (file === null) return;
    await file.close();
    this.#file = null;
    await dispose();
  }
}

function failure(what: string, path: string, e: unknown): ConfigurationError {
  return new ConfigurationError(
    `${what} "${path}": ${(e as Error).message}`,
    { cause: e },
  );
}

/** Write a line on stderr when the log file breaks mid-run. */
function logBroken(text: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`fiwi: ${text}\n`));
  } catch { /* no stderr */ }
}

/**
 * Make sure the log file can be written: its directory exists (the default
 * one is created, 0700, with a notice from `notice`). Returns false for a
 * path that is no file to log to but is meant to swallow it (`/dev/null`).
 * The file itself is checked when {@linkcode LogFile.open} opens it.
 */
async function prepareDirectory(
  s: LogSettings & { path: string },
  notice: (text: string) => void,
): Promise<boolean> {
  const path = s.path;
  if (path === "/dev/null") return false;
  const dir = dirname(path);
  const dirInfo = await Deno.stat(dir).catch(() => null);
  if (!dirInfo) {
    if (!s.isDefault) {
      throw new ConfigurationError(
        `Log directory "${dir}" does not exist: create it, or give --log another file or --no-log`,
      );
    }
    try {
      // The directories above (~/.local/state) get the usual mode; the
      // log's own is private.
      await Deno.mkdir(dirname(dir), { recursive: true });
      await Deno.mkdir(dir, { mode: 0o700 }).catch((e) => {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      });
    } catch (e) {
      throw failure("Cannot create the log directory", dir, e);
    }
    notice(`Created the log directory ${dir} (0700) for ${path}`);
  }
  return true;
}

/**
 * Configure LogTape for this invocation: every `fiwi` record (library and
 * command) to the central log, or nowhere without one.
 */
export async function setupLogging(
  s: LogSettings,
  notice: (text: string) => void,
): Promise<CentralLog> {
  if (
    s.path === null ||
    !(await prepareDirectory({ ...s, path: s.path }, notice))
  ) {
    return new CentralLog(null, s.id, null);
  }
  let file: LogFile;
  try {
    file = await LogFile.open(s.path, {
      maxSize: s.maxSize,
      maxFiles: s.maxFiles,
      onError: logBroken,
    });
  } catch (e) {
    if (e instanceof ConfigurationError) throw e;
    throw failure("Cannot open the log file", s.path, e);
  }
  const central = new CentralLog(s.path, s.id, file);
  await configure({
    reset: true,
    sinks: { file: central.sink },
    loggers: [
      { category: ["fiwi"], lowestLevel: "debug", sinks: ["file"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["file"],
      },
    ],
  });
  return central;
}
