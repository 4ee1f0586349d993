/**
 * Admission: when a run may spawn its client. Three rules keep a storm of
 * runs (1280 `rexec` at once, 64 nodes × 20 scheduled commands) from
 * turning into false connect timeouts and orphans:
 *
 * - One handshake per master: while a node's ControlMaster socket does not
 *   exist, one run (the pioneer) goes alone and becomes the master; the
 *   others wait until it started (then they multiplex) or failed (then the
 *   next one tries). Without this every client races to become the master
 *   and does a full handshake, and the losers run unmultiplexed.
 * - At most {@linkcode MAX_CONNECTING} clients are connecting (spawned, no
 *   start line yet) at a time: spawning blocks the event loop, and 2 cores
 *   cannot do hundreds of handshakes at once anyway. A run's connect
 *   timeout starts when its client is spawned, so waiting here never counts
 *   against it.
 * - A client multiplexing over an existing master that has not started
 *   after {@linkcode HUNG_MASTER_PROBE_MS} makes the pool look at the
 *   master (`controlPool.repair`). Only a positive finding
 *   replaces it: the check answered that no master listens, or the
 *   master's process is gone, or it stayed stopped through the whole
 *   check. The stuck client then fails as a connection error and is
 *   retried on a fresh master, within the connect timeout. A master that
 *   answers, or merely answers late while its process runs (a loaded
 *   controller), is left alone and looked at again after the same delay
 *   for as long as the client waits; the run's own connect timeout is the
 *   only timer that ends the wait. A timer alone never kills a master:
 *   that would cut every other run using it.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { Admission } from "../process/session.ts";
import { controlPool, type PoolNode } from "./pool.ts";

/** Clients that may be connecting at once. */
export const MAX_CONNECTING = 32;
/**
 * How long a multiplexed client may wait for its start line before its
 * master is looked at, and between two looks: this, or a third of the
 * run's connect timeout if that is shorter. Nothing is decided by this
 * delay; it only says when to ask.
 */
export const HUNG_MASTER_PROBE_MS = 2000;

const log = getLogger(["fiwi", "admission"]);

/**
 * Wait in `queue` until woken (a waker taken from the queue and called):
 * true; or until `signal` aborts: false, and the waker leaves the queue.
 */
function waitInQueue(
  queue: (() => void)[],
  signal: AbortSignal,
): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const wake = () => {
      signal.removeEventListener("abort", cancel);
      resolve(true);
    };
    const cancel = () => {
      const at = queue.indexOf(wake);
      if (at >= 0) queue.splice(at, 1);
      resolve(false);
    };
    queue.push(wake);
    signal.addEventListener("abort", cancel, { once: true });
  });
}

/** A FIFO counting semaphore whose waits end on abort. */
class Slots {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  /** Resolves true with a slot, or false when `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return waitInQueue(this.#waiting, signal);
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

const connecting = new Slots(MAX_CONNECTING);

/** The runs waiting for one master socket to come up. */
class MasterGate {
  #pioneer = false;
  #waiting: (() => void)[] = [];
  constructor(readonly socket: string) {}

  /**
   * Resolves "mux" when the master is up, "pioneer" when this run is to
   * become the master, or null on abort.
   */
  async enter(signal: AbortSignal): Promise<"mux" | "pioneer" | null> {
    for (;;) {
      if (signal.aborted) return null;
      if (await socketExists(this.socket)) return "mux";
      if (!this.#pioneer) {
        this.#pioneer = true;
        return "pioneer";
      }
      await waitInQueue(this.#waiting, signal);
    }
  }

  /** The pioneer's run began or failed: everyone waiting looks again. */
  leave(): void {
    this.#pioneer = false;
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

const gates = new Map<string, MasterGate>();

function socketExists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

async function gateOf(node: PoolNode): Promise<MasterGate | null> {
  if (!node.controlMaster) return null;
  const socket = await controlPool.socketPath(node);
  if (!socket) return null;
  let gate = gates.get(socket);
  if (!gate) gates.set(socket, gate = new MasterGate(socket));
  return gate;
}

/**
 * While a multiplexed client waits for its start line, look at its master
 * every probe delay (one look at a time); a hung or stale one is replaced
 * and the waiting attempt is ended as lost (`lost`), so it is retried on a
 * fresh master. Returns the function that stops looking.
 */
function watchMaster(
  node: PoolNode,
  lost: AbortController,
  connectTimeout: number,
): () => void {
  const delay = connectTimeout > 0
    ? Math.min(HUNG_MASTER_PROBE_MS, connectTimeout / 3)
    : HUNG_MASTER_PROBE_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  const look = async () => {
    const status = await controlPool.repair(node).catch(() => null);
    if (done) return;
    if (status?.state === "hung" || status?.state === "stale") {
      log.warn(
        "The ControlMaster of {node} was {state} and was replaced; the waiting run is retried",
        { node: node.name, state: status.state },
      );
      lost.abort();
      return;
    }
    timer = setTimeout(look, delay);
  };
  timer = setTimeout(look, delay);
  return () => {
    done = true;
    clearTimeout(timer);
  };
}

/**
 * Wait until a run on `node` may spawn (see the module doc). Resolves null
 * when `signal` aborted first; otherwise the caller must call `release`
 * once, when the run started or ended.
 */
export async function admit(
  node: PoolNode,
  signal: AbortSignal,
  connectTimeout = 0,
): Promise<Admission | null> {
  const gate = await gateOf(node);
  const role = gate ? await gate.enter(signal) : "direct";
  if (role === null) return null;
  if (!(await connecting.acquire(signal))) {
    if (role === "pioneer") gate?.leave();
    return null;
  }
  const lost = new AbortController();
  const stopWatching = role === "mux"
    ? watchMaster(node, lost, connectTimeout)
    : undefined;
  let released = false;
  let learning: Promise<unknown> | undefined;
  return {
    lost: lost.signal,
    release(started) {
      if (released) return learning;
      released = true;
      stopWatching?.();
      connecting.release();
      if (role !== "pioneer") return;
      gate?.leave();
      // The new master's pid, so a master that hangs later can be killed.
      if (started) learning = controlPool.check(node).catch(() => {});
      return learning;
    },
  };
}
