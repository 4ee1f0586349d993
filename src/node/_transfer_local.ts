/**
 * The local side of file transfers: checking sources, packing them into a
 * tar archive once (a push to many nodes sends the same bytes to each),
 * reading it as a counted stream, unpacking what a pull receives, hashing,
 * and putting received entries in place. Local `tar` runs through
 * src/process/spawn.ts like every other subprocess.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join, resolve } from "jsr:@std/path@^1";
import { ConfigurationError, FiwiError } from "../errors.ts";
import { type Client, runHelper, spawnClient } from "../process/spawn.ts";
import { RAW_MARK, TAR_MARK, TEMP_PREFIX } from "./_transfer_scripts.ts";

/**
 * Bytes read from the archive per chunk: one pipe buffer. Measured against
 * 256 KiB and 1 MiB on 16 loopback nodes at once, it fed the clients
 * fastest.
 */
const CHUNK_BYTES = 64 * 1024;
/** Longest a local tar may run (a bound, not an expected duration). */
const LOCAL_TAR_LIMIT_MS = 6 * 60 * 60 * 1000;
/** How long a local tar may take to finish once its input ended. */
const EXTRACT_FINISH_MS = 60_000;

/** One local source of a push: where it is and the name it gets. */
export interface LocalSource {
  /** Absolute path of its parent directory. */
  parent: string;
  /** Base name: the name it gets in the destination directory. */
  name: string;
}

/** A regular file in a transfer, relative to the destination directory. */
export interface TreeFile {
  /** Path relative to the destination, `/`-separated. */
  path: string;
  /** Absolute local path. */
  local: string;
}

/** What a walk over local entries found. */
export interface TreeSummary {
  /** Entries that are not directories (files and symlinks). */
  entries: number;
  /** The regular files, for hashing. */
  files: TreeFile[];
}

/** The arguments of a transfer as a list; refuses an empty or odd one. */
export function sourceList(sources: string | readonly string[]): string[] {
  const list = typeof sources === "string" ? [sources] : sources;
  if (
    !Array.isArray(list) || list.length === 0 ||
    list.some((s) => typeof s !== "string" || s === "" || s.includes("\0"))
  ) {
    throw new ConfigurationError(
      `Invalid sources ${
        JSON.stringify(sources)
      }: give a path or a non-empty list of paths`,
    );
  }
  return [...list];
}

/** Refuse two sources that would land on the same name. */
export function refuseDuplicateNames(names: readonly string[]): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) {
      throw new ConfigurationError(
        `Two sources are named "${n}": they would overwrite each other in the destination, copy them separately`,
      );
    }
    seen.add(n);
  }
}

/**
 * Check that every local source exists (a link counts as itself) and
 * return its parent and name; throws {@linkcode ConfigurationError} naming
 * the first missing one.
 */
export async function localSources(
  sources: readonly string[],
): Promise<LocalSource[]> {
  const out: LocalSource[] = [];
  for (const source of sources) {
    const path = resolve(source);
    try {
      await Deno.lstat(path);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "was not found"
        : `cannot be read (${(e as Error).name})`;
      throw new ConfigurationError(
        `Local source "${source}" ${why}: check the path`,
        { cause: e },
      );
    }
    const name = basename(path);
    if (name === "" || path === "/") {
      throw new ConfigurationError(
        `Local source "${source}" has no name to copy it under: give a file or a directory below "/"`,
      );
    }
    out.push({ parent: dirname(path), name });
  }
  refuseDuplicateNames(out.map((s) => s.name));
  return out;
}

/** Walk `path` (not following links), adding what it holds to `into`. */
async function walk(path: string, rel: string, into: TreeSummary) {
  const info = await Deno.lstat(path);
  if (!info.isDirectory) {
    into.entries++;
    if (info.isFile) into.files.push({ path: rel, local: path });
    return;
  }
  for await (const entry of Deno.readDir(path)) {
    await walk(join(path, entry.name), `${rel}/${entry.name}`, into);
  }
}

/** Everything under `roots` (each `{ local, rel }`): entries and files. */
export async function summarize(
  roots: readonly { local: string; rel: string }[],
): Promise<TreeSummary> {
  const into: TreeSummary = { entries: 0, files: [] };
  for (const r of roots) await walk(r.local, r.rel, into);
  return into;
}

/** SHA-256 of a local file in lowercase hex, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** The first lines a failed tool printed, for an error message. */
export function firstLines(text: string, max = 3): string {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "")
    .slice(0, max).join("; ");
}

/**
 * Pack `sources` into a tar archive at `archive` (modes, mtimes and links
 * kept; names stored as `./name`, so none is read as an option).
 */
export async function packArchive(
  sources: readonly LocalSource[],
  archive: string,
  signal?: AbortSignal,
): Promise<void> {
  const argv = ["tar", "-c", "-f", archive];
  for (const s of sources) argv.push("-C", s.parent, `./${s.name}`);
  const r = await runHelper(argv, LOCAL_TAR_LIMIT_MS, signal);
  if (r.code !== 0) {
    signal?.throwIfAborted();
    throw new FiwiError(
      `Packing ${sources.map((s) => `"${s.name}"`).join(", ")} failed: ${
        firstLines(r.stderr) || `tar exit ${r.code}`
      }`,
    );
  }
}

/**
 * The first `size` bytes of a file as a stream of chunks; `onBytes` gets
 * the running total as they are read. A file that ends before `size`
 * (changed since it was measured) errors the stream, which stops the run,
 * after `onShort`. The file is closed at the end or on cancel.
 */
export function archiveStream(
  path: string,
  size: number,
  onBytes: (total: number) => void,
  onShort: () => void,
): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | null = null;
  let total = 0;
  const close = () => {
    file?.close();
    file = null;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      file ??= await Deno.open(path);
      const buf = new Uint8Array(Math.min(CHUNK_BYTES, size - total));
      const n = buf.length === 0 ? null : await file.read(buf);
      if (n === null) {
        close();
        if (total < size) {
          onShort();
          controller.error(new FiwiError(`"${path}" ended early`));
        } else controller.close();
        return;
      }
      total += n;
      onBytes(total);
      controller.enqueue(buf.subarray(0, n));
    },
    cancel: close,
  }, { highWaterMark: 0 });
}

/** A local `tar -x` fed chunk by chunk: what a pull receives. */
export class Extractor {
  #client: Client;
  #stderr: Promise<string>;
  #failed = false;

  /** Start `tar -x` into `dir` (files owned by this user). */
  constructor(dir: string) {
    this.#client = spawnClient(
      ["tar", "-x", "--no-same-owner", "-f", "-", "-C", dir],
      { lifeline: true },
    );
    this.#client.stdout.cancel().catch(() => {});
    this.#stderr = new Response(this.#client.stderr).text().catch(() => "");
  }

  /** Write a chunk; throws once tar stopped taking input. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#failed || !(await this.#client.write(chunk))) {
      this.#failed = true;
      throw new FiwiError("Local tar stopped reading");
    }
  }

  /**
   * End the input and wait for tar (bounded); resolves with its complaint,
   * or null when it unpacked everything.
   */
  async finish(): Promise<string | null> {
    this.#client.releaseLifeline();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((r) =>
      timer = setTimeout(() => r(null), EXTRACT_FINISH_MS)
    );
    const status = await Promise.race([this.#client.status, late]).finally(
      () => clearTimeout(timer),
    );
    if (!status) await this.#client.stop();
    const stderr = await this.#stderr;
    if (status?.success) return null;
    return firstLines(stderr) || `tar exit ${status?.code ?? "(stopped)"}`;
  }

  /** Stop tar at once (an aborted pull). */
  async stop(): Promise<void> {
    await this.#client.stop();
    await this.#stderr;
  }
}

/** Where one received file is written as it arrives, then given its mode and mtime. */
class RawFile {
  #file: Deno.FsFile;
  #path: string;
  #mode: number;
  #mtime: Date;

  private constructor(
    file: Deno.FsFile,
    path: string,
    mode: number,
    mtime: Date,
  ) {
    this.#file = file;
    this.#path = path;
    this.#mode = mode;
    this.#mtime = mtime;
  }

  /** Create `path` (private until it is complete). */
  static async create(
    path: string,
    mode: number,
    mtime: Date,
  ): Promise<RawFile> {
    const file = await Deno.open(path, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    return new RawFile(file, path, mode, mtime);
  }

  async write(chunk: Uint8Array): Promise<void> {
    for (let done = 0; done < chunk.length;) {
      done += await this.#file.write(chunk.subarray(done));
    }
  }

  async finish(): Promise<string | null> {
    try {
      this.#file.close();
      await Deno.chmod(this.#path, this.#mode);
      await Deno.utime(this.#path, this.#mtime, this.#mtime);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  stop(): Promise<void> {
    try {
      this.#file.close();
    } catch { /* closed */ }
    return Promise.resolve();
  }
}

/**
 * What a pull of one remote path receives: a first line saying whether the
 * raw file (`fiwi-file MODE MTIME`) or a tar archive (`fiwi-tar`) follows,
 * then that, written to `dir/name` or unpacked into `dir`.
 */
export class PullReceiver {
  #dir: string;
  #name: string;
  #head: number[] = [];
  #target: Promise<Extractor | RawFile> | null = null;

  /** Receive into `dir`; a raw file gets `name`. */
  constructor(dir: string, name: string) {
    this.#dir = dir;
    this.#name = name;
  }

  /** Take the next chunk of the node's stdout. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#target) return await (await this.#target).write(chunk);
    const nl = chunk.indexOf(10);
    this.#head.push(
      ...chunk.subarray(0, Math.min(nl < 0 ? chunk.length : nl, 65)),
    );
    if (nl < 0) {
      if (this.#head.length > 64) throw new FiwiError("No transfer header");
      return;
    }
    this.#target = this.#open(
      new TextDecoder().decode(new Uint8Array(this.#head)),
    );
    const rest = chunk.subarray(nl + 1);
    if (rest.length > 0) await (await this.#target).write(rest);
  }

  #open(head: string): Promise<Extractor | RawFile> {
    if (head === TAR_MARK) return Promise.resolve(new Extractor(this.#dir));
    const m = new RegExp(`^${RAW_MARK} ([0-7]{1,4}) (\\d+)$`).exec(head);
    if (!m) {
      throw new FiwiError(`Unexpected transfer header ${JSON.stringify(head)}`);
    }
    return RawFile.create(
      join(this.#dir, this.#name),
      parseInt(m[1], 8),
      new Date(Number(m[2]) * 1000),
    );
  }

  /** All arrived: finish the file or the unpacking; a complaint or null. */
  async finish(): Promise<string | null> {
    if (!this.#target) return "nothing arrived";
    return await (await this.#target).finish();
  }

  /** Stop at once (a failed or aborted pull). */
  async stop(): Promise<void> {
    await (await this.#target?.catch(() => null))?.stop();
  }
}

/**
 * Put `from` at `to`: a file or link by rename (atomic); a directory by
 * rename when `to` is missing, else merged entry by entry, then given the
 * mode and mtime it arrived with.
 */
export async function place(from: string, to: string): Promise<void> {
  const info = await Deno.lstat(from);
  const there = await Deno.lstat(to).catch(() => null);
  if (!info.isDirectory || !there) {
    if (there?.isDirectory && !info.isDirectory) {
      throw new FiwiError(`"${to}" is a directory, in the way of a file`);
    }
    await Deno.rename(from, to);
    return;
  }
  if (!there.isDirectory) {
    throw new FiwiError(`"${to}" is not a directory, in the way of one`);
  }
  for await (const entry of Deno.readDir(from)) {
    await place(join(from, entry.name), join(to, entry.name));
  }
  if (info.mode !== null) await Deno.chmod(to, info.mode & 0o7777);
  if (info.mtime) await Deno.utime(to, info.atime ?? info.mtime, info.mtime);
}

/** A unique hidden name for one transfer's temp directory. */
export function tempName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${TEMP_PREFIX}${
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}
