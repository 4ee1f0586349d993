/**
 * The cap on live ControlMasters. A master is an ssh process holding one
 * connection: 3.6 MB resident each on this machine (1.3 MB of it its own,
 * the rest shared libraries), so 1,000 warm masters hold about 3.6 GB of
 * RSS. {@linkcode MasterCap} counts the masters this process opened or
 * used, least recently used first, and before a new one is opened beyond
 * the cap it stops the least recently used one that no run of this process
 * is using (`ssh -O stop`, which also lets another program's sessions on it
 * finish) and waits until its process is gone. When every master is in use
 * the new one waits for a run to end: the cap bounds memory, the fan-out
 * then effectively becomes the cap.
 *
 * Masters left warm by an earlier fiwi count once a run here uses them;
 * masters this process never touched are not counted.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { controlPool } from "./pool.ts";
import { killAndWait, mastersBySocket } from "./_master_procs.ts";

/**
 * Default cap on live masters: 1,024, so a 1,000-node rig stays warm
 * between runs within `controlPersist` (the second run then skips every
 * handshake), at about 3.6 GB of RSS (1.3 GB not shared). Lower it on a
 * controller with less memory (`maxMasters:` in the rig file,
 * `--max-masters`).
 */
export const DEFAULT_MAX_MASTERS = 1024;

/** How long an evicted master may take to exit once it stopped listening. */
const EVICT_WAIT_MS = 2000;

const log = getLogger(["fiwi", "pool"]);

/** One master the cap counts. */
interface Entry {
  /** Runs of this process admitted on it and not ended. */
  users: number;
}

/** See the module doc. One process-wide instance, {@linkcode masterCap}. */
export class MasterCap {
  #max = DEFAULT_MAX_MASTERS;
  /** By socket; Map order is use order, least recent first. */
  #masters = new Map<string, Entry>();
  #waiting: (() => void)[] = [];
  /** Masters being stopped: their processes still count. */
  #evicting = 0;
  #trimming = false;

  /** The cap. */
  get max(): number {
    return this.#max;
  }

  set max(value: number) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Invalid maxMasters ${JSON.stringify(value)}: give a whole number >= 1`,
      );
    }
    this.#max = value;
    this.#wake();
  }

  /** Masters counted now. */
  get size(): number {
    return this.#masters.size;
  }

  /** The sockets of the masters counted, least recently used first. */
  get sockets(): string[] {
    return [...this.#masters.keys()];
  }

  /** A run was admitted on the existing master of `socket`. */
  use(socket: string): void {
    const entry = this.#masters.get(socket) ?? { users: 0 };
    entry.users++;
    this.#masters.delete(socket);
    this.#masters.set(socket, entry);
    if (this.#masters.size + this.#evicting > this.#max) void this.#trim();
  }

  /**
   * Make room for a new master on `socket` and count it, with this run
   * using it: stops idle masters beyond the cap, or waits for a run to end
   * when none is idle. Resolves false when `signal` aborted first.
   */
  async open(socket: string, signal: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal.aborted) return false;
      const live = this.#masters.size + this.#evicting;
      if (this.#masters.has(socket) || live < this.#max) {
        this.use(socket);
        return true;
      }
      const idle = this.#leastRecentIdle();
      if (idle) await this.#evict(idle);
      else if (!(await this.#waitForEnd(signal))) return false;
    }
  }

  /**
   * A run on `socket` ended. A master that never came up (its socket is
   * not there) stops counting once no run uses it.
   */
  async done(socket: string): Promise<void> {
    const entry = this.#masters.get(socket);
    if (!entry) return;
    entry.users = Math.max(0, entry.users - 1);
    if (entry.users === 0) {
      const there = await Deno.lstat(socket).then(() => true, () => false);
      if (!there && this.#masters.get(socket)?.users === 0) {
        this.#masters.delete(socket);
      }
    }
    this.#wake();
  }

  /** Forget every master (they were all closed). */
  clear(): void {
    this.#masters.clear();
    this.#wake();
  }

  #leastRecentIdle(): string | null {
    for (const [socket, entry] of this.#masters) {
      if (entry.users === 0) return socket;
    }
    return null;
  }

  async #evict(socket: string): Promise<void> {
    this.#masters.delete(socket);
    this.#evicting++;
    try {
      const pids = (await mastersBySocket([socket])).get(socket) ?? [];
      const stopped = await controlPool.stopSocket(socket);
      if (stopped && !(await killAndWait(pids, null, EVICT_WAIT_MS))) {
        // Sessions of another program keep it: it takes no new ones and
        // ends with them.
        log.info("A ControlMaster past the cap still carries sessions", {
          socket,
        });
      }
    } finally {
      this.#evicting--;
      this.#wake();
    }
    log.debug("Closed the least recently used ControlMaster {socket}", {
      socket,
      max: this.#max,
    });
  }

  async #trim(): Promise<void> {
    if (this.#trimming) return;
    this.#trimming = true;
    try {
      while (this.#masters.size + this.#evicting > this.#max) {
        const idle = this.#leastRecentIdle();
        if (!idle) return;
        await this.#evict(idle);
      }
    } finally {
      this.#trimming = false;
    }
  }

  #waitForEnd(signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener("abort", cancel);
        resolve(true);
      };
      const cancel = () => {
        const at = this.#waiting.indexOf(wake);
        if (at >= 0) this.#waiting.splice(at, 1);
        resolve(false);
      };
      this.#waiting.push(wake);
      signal.addEventListener("abort", cancel, { once: true });
    });
  }

  #wake(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

/** The process-wide cap every admission goes through. */
export const masterCap: MasterCap = new MasterCap();
