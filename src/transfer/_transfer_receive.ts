/**
 * The local end of a pull: what the node's stdout becomes. A local
 * `tar -x` fed as the archive arrives (several paths), or, for one path,
 * the file the ssh client wrote its stdout into: renamed into place when
 * it is the file itself, unpacked when it is an archive.
 *
 * @module
 */

import { join } from "jsr:@std/path@^1";
import { FiwiError } from "../errors.ts";
import { type Client, runHelper, spawnClient } from "../process/spawn.ts";
import { firstLines, pulledMode } from "./_transfer_local.ts";
import { RAW_MARK, TAR_MARK } from "./_transfer_scripts.ts";

/**
 * The local `tar -x` of a pull. As root GNU tar would otherwise default to
 * `--same-owner` (chown to the node's uids) and `--same-permissions` (keep
 * setuid and setgid bits): the files are ours, and their modes are made
 * safe afterwards (`tamePulled`) before anything leaves the temp directory.
 */
const TAR_EXTRACT = ["tar", "-x", "--no-same-owner", "--no-same-permissions"];

/** How long a local tar may take to finish once its input ended. */
const EXTRACT_FINISH_MS = 60_000;

/** A local `tar -x` fed chunk by chunk: what a pull receives. */
export class Extractor {
  #client: Client;
  #stderr: Promise<string>;
  #failed = false;

  /** Start `tar -x` into `dir` (see {@linkcode TAR_EXTRACT}). */
  constructor(dir: string) {
    this.#client = spawnClient(
      [...TAR_EXTRACT, "-f", "-", "-C", dir],
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

/** How long a local tar may take to unpack a pulled archive file. */
const EXTRACT_FILE_MS = 60 * 60 * 1000;

/** What the header of a raw file says about it. */
interface RawInfo {
  mode: number;
  mtime: Date;
  size: number;
}

const RAW_RE = new RegExp(`^${RAW_MARK} ([0-7]{1,4}) (\\d+) (\\d+)$`);

/**
 * What a pull of one remote path sent: the header line it printed on
 * stderr (see `pullOneCommand`), and the rest of stderr without it.
 */
export function pulledHeader(
  stderr: string,
): { kind: RawInfo | "tar" | null; rest: string } {
  const lines = stderr.split("\n");
  const at = lines.findIndex((l) => l === TAR_MARK || RAW_RE.test(l));
  if (at < 0) return { kind: null, rest: stderr };
  const m = RAW_RE.exec(lines[at]);
  const kind = m
    ? {
      mode: parseInt(m[1], 8),
      mtime: new Date(Number(m[2]) * 1000),
      size: Number(m[3]),
    }
    : "tar";
  lines.splice(at, 1);
  return { kind, rest: lines.join("\n") };
}

/**
 * Turn the file a pull of one path wrote (`data`) into `dir/name`: a raw
 * file is checked for its size, given its (safe) mode and mtime and renamed; an
 * archive is unpacked into `dir` and removed. Resolves with a complaint,
 * or null when it is in place.
 */
export async function settlePulled(
  data: string,
  kind: RawInfo | "tar",
  dir: string,
  name: string,
): Promise<string | null> {
  try {
    if (kind === "tar") return await extractFile(data, dir);
    const { size } = await Deno.stat(data);
    // A file that shrank on the node while cat read it ends early, not
    // with an error.
    if (size !== kind.size) {
      return `${size} of ${kind.size} bytes arrived (the file changed while it was read)`;
    }
    // The file is ours (the ssh client wrote it); its mode is the node's,
    // made safe (no setuid, no write for others: see pulledMode).
    await Deno.chmod(data, pulledMode(kind.mode, "file"));
    await Deno.utime(data, kind.mtime, kind.mtime);
    await Deno.rename(data, join(dir, name));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Unpack the archive file `data` into `dir`; a complaint or null. */
async function extractFile(data: string, dir: string): Promise<string | null> {
  const r = await runHelper(
    [...TAR_EXTRACT, "-f", data, "-C", dir],
    EXTRACT_FILE_MS,
  );
  if (r.code === 0) return null;
  return firstLines(r.stderr) || `tar exit ${r.code ?? "(stopped)"}`;
}
