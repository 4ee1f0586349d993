/**
 * The central log of the `fiwi` command: one LogTape rotating file sink,
 * created private (0600), buffered (written and synced once per MiB or
 * second, never once per record), rotated by size (`FIWI_LOG_SIZE`,
 * `FIWI_LOG_FILES`), every record stamped with ISO 8601 local time with its
 * offset and the invocation id.
 *
 * Output lines take a short path: {@linkcode CentralLog.line} formats each
 * line as one log line (its own time, level, id and category) and hands the
 * sink the lines of a chunk of output together, as one pre-formatted
 * record. LogTape's logger dispatch costs about 4 µs a record, and its
 * buffer a rope node per record: more than everything else fiwi does for a
 * line. The sink, the file and the format are the ones every other record
 * goes through; a record from a logger first flushes the lines before it,
 * so the file keeps the order things happened in.
 *
 * @module
 */

import { dirname } from "jsr:@std/path@^1";
import {
  configure,
  dispose,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "npm:@logtape/logtape@^2";
import { getRotatingFileSink } from "npm:@logtape/file@^2";
import { ConfigurationError } from "../src/errors.ts";
import { FORMATTED, LineHead, logFormatter } from "./_log_format.ts";

export { isoLocal } from "./_log_format.ts";

/** The central log file, relative to the user's working directory. */
export const DEFAULT_LOG_FILE = "logs/fiwi.log";
/** Default size at which the log rotates: 50 MiB. */
export const DEFAULT_LOG_SIZE = 50 * 1024 * 1024;
/** Default number of rotated files kept (fiwi.log.1 … fiwi.log.N). */
export const DEFAULT_LOG_FILES = 5;

/** Where the log goes and how it rotates. */
export interface LogSettings {
  /** Absolute path of the log file; null: no log. */
  path: string | null;
  /** The path is the default one: its directory may be created. */
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
 * (the log's 1 MiB flushes) that V8 only frees in a major collection; left
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
 * reach the file through {@linkcode CentralLog.sink}.
 */
export class CentralLog {
  /** Where records go, or null without a log. */
  readonly path: string | null;
  /** Id on every record of this invocation. */
  readonly id: string;
  #sink: (Sink & Partial<Disposable>) | null;
  #heads: LineHead;
  #batch: string[] = [];
  #batchChars = 0;
  #batchLimit: number;
  #scheduled = false;

  /** @param path the file @param id invocation id @param sink its sink */
  constructor(
    path: string | null,
    id: string,
    sink: (Sink & Partial<Disposable>) | null,
    batchLimit = 64 * 1024,
  ) {
    this.#batchLimit = batchLimit;
    this.path = path;
    this.id = id;
    this.#sink = sink;
    this.#heads = new LineHead(id);
  }

  /**
   * The sink LogTape's loggers use: the lines queued so far go first.
   * Disposing it (LogTape's `dispose`) flushes and closes the file.
   */
  readonly sink: Sink & Disposable = Object.assign((record: LogRecord) => {
    this.flush();
    this.#sink?.(record);
  }, {
    [Symbol.dispose]: () => {
      this.flush();
      this.#sink?.[Symbol.dispose]?.();
      this.#sink = null;
    },
  });

  /**
   * One output line, one line in the log (`level`: info for stdout, warning
   * for stderr), written with the other lines of its chunk of output.
   */
  line(
    category: readonly string[],
    level: LogLevel,
    text: string,
    time: number = Date.now(),
  ): void {
    if (this.#sink === null) return;
    const entry = this.#heads.head(time, level, category) + text + "\n";
    this.#batch.push(entry);
    this.#batchChars += entry.length;
    if (this.#batchChars >= this.#batchLimit) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Hand the queued lines to the sink. */
  flush(): void {
    this.#scheduled = false;
    if (this.#batch.length === 0 || this.#sink === null) return;
    const text = this.#batch.join("");
    this.#batch = [];
    this.#batchChars = 0;
    noteChurn(text.length);
    this.#sink({
      category: ["fiwi", "cli"],
      level: "info",
      message: [text],
      rawMessage: text,
      timestamp: Date.now(),
      properties: FORMATTED,
    });
  }

  /** Flush and close the sink (LogTape's `dispose`). */
  async close(): Promise<void> {
    if (this.#sink) await dispose();
    this.#sink = null;
  }
}

/**
 * The rotating sink opens each new file with the process umask (0644 under
 * the usual 022; changing the umask needs unrestricted --allow-sys). While
 * the file is near its rotation size, the file is looked at after every
 * record, and a new one is made 0600 in the same call that created it,
 * before any other code runs; far from it, records pass straight through.
 * The size is looked at every 256 K characters of records.
 */
export function privateRotation(
  sink: Sink & Disposable,
  path: string,
  maxSize: number,
  bufferSize: number,
): Sink & Disposable {
  const margin = 2 * bufferSize + (1 << 20);
  let near = true;
  let chars = 0;
  let ino: number | null = null;
  const look = () => {
    chars = 0;
    try {
      const st = Deno.statSync(path);
      if (st.ino !== ino) keepPrivate(path);
      ino = st.ino;
      near = st.size + margin >= maxSize;
    } catch {
      near = true;
    }
  };
  look();
  const wrapped = (record: LogRecord) => {
    sink(record);
    const raw = record.rawMessage;
    chars += (typeof raw === "string" ? raw.length : 200) + 80;
    if (near || chars > 256 * 1024) look();
  };
  return Object.assign(wrapped, {
    [Symbol.dispose]: () => {
      sink[Symbol.dispose]();
      look();
    },
  });
}

function keepPrivate(path: string): void {
  try {
    const st = Deno.statSync(path);
    if (st.isFile && st.mode !== null && (st.mode & 0o077) !== 0) {
      Deno.chmodSync(path, 0o600);
    }
  } catch { /* rotated away meanwhile */ }
}

function failure(what: string, path: string, e: unknown): ConfigurationError {
  return new ConfigurationError(
    `${what} "${path}": ${(e as Error).message}`,
    { cause: e },
  );
}

/**
 * Make sure the log file can be written: its directory exists (the default
 * one is created, 0700, with a notice from `notice`), the file exists and is
 * private (0600). Returns false for a path that is no file to log to but is
 * meant to swallow it (`/dev/null`).
 */
async function prepareFile(
  s: LogSettings & { path: string },
  notice: (text: string) => void,
): Promise<boolean> {
  const path = s.path;
  const info = await Deno.stat(path).catch(() => null);
  if (info && !info.isFile) {
    if (path === "/dev/null") return false;
    throw new ConfigurationError(
      `Log file "${path}" is not a regular file: give a file path, or --no-log`,
    );
  }
  const dir = dirname(path);
  const dirInfo = await Deno.stat(dir).catch(() => null);
  if (!dirInfo) {
    if (!s.isDefault) {
      throw new ConfigurationError(
        `Log directory "${dir}" does not exist: create it, or give --log another file or --no-log`,
      );
    }
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw failure("Cannot create the log directory", dir, e);
    }
    notice(`Created the log directory ${dir} (0700) for ${path}`);
  }
  try {
    (await Deno.open(path, { create: true, append: true, mode: 0o600 }))
      .close();
  } catch (e) {
    throw failure("Cannot open the log file", path, e);
  }
  keepPrivate(path);
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
  if (s.path === null || !(await prepareFile({ ...s, path: s.path }, notice))) {
    return new CentralLog(null, s.id, null);
  }
  let sink: Sink & Disposable;
  // One write and one fsync per MiB (less for a small FIWI_LOG_SIZE, so
  // files stay near their size) or per second, not per record.
  const bufferSize = Math.min(1024 * 1024, Math.max(1024, s.maxSize >> 3));
  try {
    sink = privateRotation(
      getRotatingFileSink(s.path, {
        maxSize: s.maxSize,
        maxFiles: s.maxFiles,
        bufferSize,
        flushInterval: 1000,
        formatter: logFormatter(s.id),
      }),
      s.path,
      s.maxSize,
      bufferSize,
    );
  } catch (e) {
    throw failure("Cannot open the log file", s.path, e);
  }
  // A batch at most a 16th of the file, so files stay near their size.
  const central = new CentralLog(
    s.path,
    s.id,
    sink,
    Math.min(64 * 1024, bufferSize),
  );
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
