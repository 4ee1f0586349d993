/**
 * The local end of a pull: what the node's stdout becomes. A local
 * `tar -x` (spawned through src/process/spawn.ts) for an archive, or a
 * file written as it arrives for a single regular file.
 *
 * @module
 */

import { join } from "jsr:@std/path@^1";
import { FiwiError } from "../errors.ts";
import { type Client, spawnClient } from "../process/spawn.ts";
import { firstLines } from "./_transfer_local.ts";
import { RAW_MARK, TAR_MARK } from "./_transfer_scripts.ts";

/** How long a local tar may take to finish once its input ended. */
const EXTRACT_FINISH_MS = 60_000;

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

/** What the header of a raw file says about it. */
interface RawInfo {
  mode: number;
  mtime: Date;
  size: number;
}

/** Where one received file is written as it arrives, then given its mode and mtime. */
class RawFile {
  #file: Deno.FsFile;
  #path: string;
  #info: RawInfo;
  #written = 0;

  private constructor(file: Deno.FsFile, path: string, info: RawInfo) {
    this.#file = file;
    this.#path = path;
    this.#info = info;
  }

  /** Create `path` (private until it is complete). */
  static async create(path: string, info: RawInfo): Promise<RawFile> {
    const file = await Deno.open(path, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    return new RawFile(file, path, info);
  }

  async write(chunk: Uint8Array): Promise<void> {
    for (let done = 0; done < chunk.length;) {
      done += await this.#file.write(chunk.subarray(done));
    }
    this.#written += chunk.length;
  }

  async finish(): Promise<string | null> {
    try {
      this.#file.close();
      // A file that shrank on the node while cat read it ends early, not
      // with an error.
      if (this.#written !== this.#info.size) {
        return `${this.#written} of ${this.#info.size} bytes arrived (the file changed while it was read)`;
      }
      await Deno.chmod(this.#path, this.#info.mode);
      await Deno.utime(this.#path, this.#info.mtime, this.#info.mtime);
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
 * raw file (`fiwi-file MODE MTIME SIZE`) or a tar archive (`fiwi-tar`) follows,
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
    const m = new RegExp(`^${RAW_MARK} ([0-7]{1,4}) (\\d+) (\\d+)$`).exec(head);
    if (!m) {
      throw new FiwiError(`Unexpected transfer header ${JSON.stringify(head)}`);
    }
    return RawFile.create(join(this.#dir, this.#name), {
      mode: parseInt(m[1], 8),
      mtime: new Date(Number(m[2]) * 1000),
      size: Number(m[3]),
    });
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
