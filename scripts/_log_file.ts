/**
 * The file under the central log: opened only when it is the user's own,
 * private file (never through a symbolic link), appended to asynchronously
 * in batches, rotated by size, and bounded in memory.
 *
 * Output never waits for the disk. {@linkcode LogFile.write} appends the
 * text to an in-memory batch; one asynchronous write at a time takes what
 * has accumulated (up to 1 MiB) and appends it, so a busy controller writes
 * fewer, larger chunks instead of stalling on each one, and the fsync (at
 * most once a second) never runs on the event loop.
 *
 * Memory is bounded and nothing is dropped. A synchronous sink cannot
 * await backpressure, so when the batch passes
 * {@linkcode LogFileOptions.maxPending} (1 Mi characters) it is written
 * synchronously: at once if no write is in flight, else as soon as that
 * write completes (so chunks stay in order), or, if the batch reaches four
 * times the bound first, right then (that chunk may land before the one in
 * flight; {@linkcode LogFile.overtaken} counts it). Writing rather than
 * dropping is the policy because the log is the record of what ran, and
 * because, measured here, the asynchronous writer alone falls behind a
 * flood of local output (its completions wait behind the output's own
 * work): with a drop policy most lines of a 16 × `seq 1 100000` run were
 * lost. The synchronous catch-up is a page-cache copy without fsync; the
 * fsync that made the old sink stall stays off the event loop.
 *
 * @module
 */

import {
  checkPrivateFile,
  type PrivateFileKind,
  replacedPrivateFile,
} from "../mod.ts";

/** Options of {@linkcode LogFile.open}. */
export interface LogFileOptions {
  /** Bytes at which the file rotates. */
  maxSize: number;
  /** Rotated files kept (`path.1` … `path.N`). */
  maxFiles: number;
  /** Characters queued before the batch is written synchronously (default 1 Mi). */
  maxPending?: number;
  /** Called once when the file cannot be written any more. */
  onError: (text: string) => void;
}

/** Default bound of the batch: 1 Mi characters. */
export const DEFAULT_MAX_PENDING = 1024 * 1024;
/** Characters taken from the batch for one write. */
const CHUNK = 1024 * 1024;
const encoder = new TextEncoder();

const KIND: PrivateFileKind = { label: "Log file", option: "--log" };

/**
 * Refuse a log path another user could read or redirect (see
 * `checkPrivateFile`). `info` is the path's `lstat`.
 */
export function checkLogFile(path: string, info: Deno.FileInfo): void {
  checkPrivateFile(path, info, KIND);
}

/**
 * Open `path` for appending without following a link there: an existing
 * file must pass {@linkcode checkLogFile}; a missing one is created 0600
 * with O_EXCL (which fails on anything planted meanwhile). After opening,
 * the opened file must be the one the path names (same device and inode).
 * Synchronous: metadata only, at start and at a rotation.
 */
function openPrivate(path: string): Deno.FsFile {
  let before: Deno.FileInfo | null = null;
  try {
    before = Deno.lstatSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (before) checkLogFile(path, before);
  const file = before
    ? Deno.openSync(path, { append: true })
    : Deno.openSync(path, { append: true, createNew: true, mode: 0o600 });
  try {
    const opened = file.statSync();
    const now = Deno.lstatSync(path);
    if (opened.dev !== now.dev || opened.ino !== now.ino) {
      throw replacedPrivateFile(KIND, path);
    }
    checkLogFile(path, opened);
    return file;
  } catch (e) {
    file.close();
    throw e;
  }
}

/** One pending chunk's worth of text. */
interface Batch {
  parts: string[];
  chars: number;
}

/** An append-only, rotated, asynchronously written log file; see the module doc. */
export class LogFile {
  /** Path of the current file. */
  readonly path: string;
  #file: Deno.FsFile | null;
  #size: number;
  #o: Required<LogFileOptions>;
  #batch: Batch = { parts: [], chars: 0 };
  #writing: Promise<void> | null = null;
  #overtaken = 0;
  #syncedAt = Date.now();
  #closed = false;

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    options: LogFileOptions,
  ) {
    this.path = path;
    this.#file = file;
    this.#size = size;
    this.#o = { maxPending: DEFAULT_MAX_PENDING, ...options };
  }

  /**
   * Open (or create, 0600) the log file at `path`; rejects with a
   * `ConfigurationError` for a file that is not safely the user's own.
   */
  static async open(path: string, options: LogFileOptions): Promise<LogFile> {
    const file = openPrivate(path);
    const size = (await file.stat()).size;
    return new LogFile(path, file, size, options);
  }

  /**
   * Times the batch reached 4x its bound with a write in flight and was
   * written synchronously ahead of it (that chunk may precede the one in
   * flight in the file).
   */
  get overtaken(): number {
    return this.#overtaken;
  }

  /** Queue `text` (whole lines) for the file; see the module doc for the bound. */
  write(text: string): void {
    if (this.#closed || this.#file === null) return;
    this.#batch.parts.push(text);
    this.#batch.chars += text.length;
    const over = this.#batch.chars > this.#o.maxPending;
    // A write in flight that does not complete within 4x the bound (its
    // completion starved by the output's own work, or a stalled disk):
    // write anyway, so memory stays bounded and nothing is lost.
    if (
      over &&
      (this.#writing === null || this.#batch.chars > 4 * this.#o.maxPending)
    ) {
      this.#overtaken += this.#writing === null ? 0 : 1;
      this.#flushSync();
    } else if (this.#writing === null) this.#writing = this.#pump();
  }

  /** Write the whole batch now, synchronously (no write is in flight). */
  #flushSync(): void {
    try {
      const text = this.#take(Infinity);
      if (text) this.#appendSync(encoder.encode(text));
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Resolves once everything queued so far is in the file. */
  async drain(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** Write what is queued, sync and close the file. */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
    const file = this.#file;
    this.#file = null;
    if (!file) return;
    await file.sync().catch(() => {});
    file.close();
  }

  /**
   * For a process that exits at once (a second Ctrl-C): write what is
   * queued synchronously, through the same descriptor. A chunk whose
   * asynchronous write is still under way may land after it.
   */
  closeSync(): void {
    if (this.#closed || this.#file === null) return;
    this.#closed = true;
    const text = this.#take(Infinity);
    try {
      if (text) this.#appendSync(encoder.encode(text));
    } catch { /* exiting: nothing left to tell */ }
  }

  /** The text of up to `limit` characters from the front of the batch. */
  #take(limit: number): string {
    const b = this.#batch;
    if (b.chars <= limit) {
      this.#batch = { parts: [], chars: 0 };
      return b.parts.join("");
    }
    let n = 0;
    let chars = 0;
    while (
      n < b.parts.length && (n === 0 || chars + b.parts[n].length <= limit)
    ) {
      chars += b.parts[n++].length;
    }
    const text = b.parts.splice(0, n).join("");
    b.chars -= chars;
    return text;
  }

  /** The one write in flight: takes chunks until the batch is empty. */
  async #pump(): Promise<void> {
    // Let the code that queued this line queue the rest of its chunk.
    await Promise.resolve();
    try {
      while (this.#batch.chars > 0 && this.#file) {
        const text = this.#take(CHUNK);
        await this.#append(encoder.encode(text));
        // Behind by more than the bound: catch up now, in order.
        if (this.#batch.chars > this.#o.maxPending) this.#flushSync();
      }
      if (this.#file && Date.now() - this.#syncedAt >= 1000) {
        this.#syncedAt = Date.now();
        await this.#file.sync();
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#writing = null;
    }
    if (this.#batch.chars > 0 && this.#file) this.#writing = this.#pump();
  }

  /** Append `bytes`, rotating at line ends so no file exceeds the size. */
  async #append(bytes: Uint8Array): Promise<void> {
    for (let n; (n = this.#fit(bytes)) !== null; bytes = bytes.subarray(n)) {
      if (n > 0) await writeAll(this.#file!, bytes.subarray(0, n));
      this.#size += n;
    }
  }

  /** {@linkcode LogFile.#append}, synchronously. */
  #appendSync(bytes: Uint8Array): void {
    for (let n; (n = this.#fit(bytes)) !== null; bytes = bytes.subarray(n)) {
      if (n > 0) writeAllSync(this.#file!, bytes.subarray(0, n));
      this.#size += n;
    }
  }

  /**
   * How many bytes of `bytes` go into the current file (whole lines, within
   * the size), rotating first when none fit; null when nothing is left.
   */
  #fit(bytes: Uint8Array): number | null {
    if (bytes.length === 0 || this.#file === null) return null;
    const room = this.#o.maxSize - this.#size;
    if (bytes.length <= room) return bytes.length;
    const end = bytes.subarray(0, Math.max(room, 0)).lastIndexOf(0x0a);
    if (end >= 0) return end + 1;
    if (this.#size > 0) {
      this.#rotate();
      return 0;
    }
    return bytes.indexOf(0x0a) + 1 || bytes.length; // a line over the size
  }

  /**
   * path.N-1 → path.N … path → path.1, then a new private path.
   * Synchronous: a few renames, once per file's worth of log.
   */
  #rotate(): void {
    this.#file?.close();
    this.#file = null;
    for (let i = this.#o.maxFiles - 1; i > 0; i--) {
      try {
        Deno.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch { /* not there yet */ }
    }
    Deno.renameSync(this.path, `${this.path}.1`);
    this.#size = 0;
    // O_EXCL: anything planted at the path meanwhile is refused, not followed.
    this.#file = openPrivate(this.path);
  }

  #fail(e: unknown): void {
    try {
      this.#file?.close();
    } catch { /* closed already */ }
    this.#file = null;
    this.#batch = { parts: [], chars: 0 };
    this.#o.onError(
      `Log file "${this.path}": ${(e as Error)?.message ?? e}: logging stopped`,
    );
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await file.write(bytes));
}

function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
}
