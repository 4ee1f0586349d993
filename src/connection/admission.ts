/**
 * Admission: when a run may spawn its client. These rules keep a storm of
 * runs (1280 `rexec` at once, 64 nodes × 20 scheduled commands, 1,000
 * nodes at fan-out 256) from turning into false connect timeouts, dropped
 * handshakes and orphans:
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
 * - At most {@linkcode MAX_HANDSHAKES} of those do a full handshake (a new
 *   master, or a client without one): sshd drops bursts of
 *   unauthenticated connections (`MaxStartups`), so starts are paced
 *   instead of failed.
 * - A new master counts against the cap on live masters
 *   (src/connection/_master_cap.ts): beyond it, the least recently used
 *   idle master is stopped first, or the run waits for one to be idle. A
 *   run uses its master from admission until its last `release(false)`.
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
import { masterCap } from "./_master_cap.ts";

/** Clients that may be connecting at once. */
export const MAX_CONNECTING = 32;
/**
 * Full ssh handshakes (a new ControlMaster, or a client without one) that
 * may be under way at once, within {@linkcode MAX_CONNECTING}. sshd drops
 * unauthenticated connections beyond its `MaxStartups` (default 10:30:100:
 * from 10 on, at random), and nodes often share an sshd (a NAT, a relay,
 * the 16 addresses of a loopback sshd), so a burst of handshakes fails
 * nodes that a paced one does not. 8 stays under sshd's first threshold.
 * Measured on the 2-core test machine: 16 handshakes at once against one
 * sshd with the default MaxStartups failed 2 of 16 nodes, 8 failed none
 * (tests/flat_scale_test.ts); cold 240-node runs at fan-outs 64 to 240
 * with 8 ended with every node ok, the handshakes still using both cores.
 */
export const MAX_HANDSHAKES = 8;
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
  #size: number;
  #busy = 0;
  #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#size = size;
  }
  /** Slots in all (changed by {@linkcode Slots.resize}). */
  get size(): number {
    return this.#size;
  }
  /** Resolves true with a slot, or false when `signal` aborted first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    if (this.#busy < this.#size) {
      this.#busy++;
      return true;
    }
    // A woken waiter was handed the slot of the one that woke it.
    return await waitInQueue(this.#waiting, signal);
  }
  release(): void {
    this.#busy--;
    this.#handOn();
  }
  /** Let `size` in at once from now on; slots taken stay taken. */
  resize(size: number): void {
    this.#size = size;
    this.#handOn();
  }
  #handOn(): void {
    while (this.#busy < this.#size && this.#waiting.length) {
      this.#busy++;
      this.#waiting.shift()!();
    }
  }
}

/**
 * Fewest clients connecting at once when starts are slow; see
 * {@linkcode paceConnecting}.
 */
export const MIN_CONNECTING = 4;

const connecting = new Slots(MAX_CONNECTING);
let lastSlowdown = 0;

/**
 * Adapt how many clients may be connecting at once to how long starts
 * take. Only runs over a master that was already up count: their start
 * (spawn to start line) is this machine's work and a session opening on a
 * connection that exists, not a handshake with a slow or unreachable node,
 * which must not hold back every other node. A start that took over a
 * quarter of the connect timeout halves the bound (at most once a second, down to
 * {@linkcode MIN_CONNECTING}); one under a tenth raises it by one (up to
 * {@linkcode MAX_CONNECTING}). On a controller starved of CPU (its own
 * fan-out, or other work) every client then waits its turn before it is
 * spawned, where waiting costs nothing, instead of sharing the CPU with
 * 31 others until its connect timeout runs out: on the 2-core test
 * machine at a load of 28, 4 of 240 warm runs at fan-out 128 timed out
 * at 15 s with the fixed 32 (their output arrived 2 s later).
 */
function paceConnecting(startMs: number, connectTimeout: number): void {
  if (!(connectTimeout > 0)) return;
  const now = performance.now();
  if (startMs > connectTimeout / 4) {
    if (now - lastSlowdown < 1000) return;
    lastSlowdown = now;
    const size = Math.max(MIN_CONNECTING, Math.floor(connecting.size / 2));
    if (size < connecting.size) {
      log.info("Starts take {ms} ms: at most {size} clients connect at once", {
        ms: Math.round(startMs),
        size,
      });
    }
    connecting.resize(size);
  } else if (startMs < connectTimeout / 10) {
    connecting.resize(Math.min(MAX_CONNECTING, connecting.size + 1));
  }
}
const handshakes = new Slots(MAX_HANDSHAKES);

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
 * when `signal` aborted first; otherwise the caller must call `release`:
 * with `true` when the run started, and with `false` when it ended (the
 * last call), which is when it stops using its master.
 */
export async function admit(
  node: PoolNode,
  signal: AbortSignal,
  connectTimeout = 0,
): Promise<Admission | null> {
  const gate = await gateOf(node);
  const role = gate ? await gate.enter(signal) : "direct";
  if (role === null) return null;
  // The master this run will use counts against the cap until it ends.
  if (role === "mux") masterCap.use(gate!.socket);
  if (role === "pioneer" && !(await masterCap.open(gate!.socket, signal))) {
    gate!.leave();
    return null;
  }
  const ended = once(() => gate ? masterCap.done(gate.socket) : undefined);
  const handshake = role === "pioneer" ||
    role === "direct" && node.spec.transport === "ssh";
  if (!(await acquireSlots(handshake, signal))) {
    if (role === "pioneer") gate?.leave();
    void ended();
    return null;
  }
  const lost = new AbortController();
  const stopWatching = role === "mux"
    ? watchMaster(node, lost, connectTimeout)
    : undefined;
  let released = false;
  let learning: Promise<unknown> | undefined;
  const spawned = performance.now();
  return {
    lost: lost.signal,
    release(started) {
      if (!started) void ended();
      if (released) return learning;
      released = true;
      if (started && role === "mux") {
        paceConnecting(performance.now() - spawned, connectTimeout);
      }
      stopWatching?.();
      connecting.release();
      if (handshake) handshakes.release();
      if (role !== "pioneer") return;
      gate?.leave();
      // The new master's pid, so a master that hangs later can be killed.
      if (started) learning = controlPool.check(node).catch(() => {});
      return learning;
    },
  };
}

/** Handshake slots of the nodes behind each gateway. */
const behind = new WeakMap<object, Slots>();

/**
 * Wait until a run on a node behind `gateway` may spawn its client: at most
 * {@linkcode MAX_HANDSHAKES} of that gateway's clients are between spawn and
 * start line at once. The gateway program starts each ssh the moment it
 * gets it, so without this a fan-out of 64 is 64 handshakes at once from
 * one gateway: on the loopback rig (256 nodes, 4 gateways, fan-out 64),
 * 14 to 16 nodes ran past their 15 s connect timeout, all queued behind
 * the gateway that got the first 64 nodes; none did paced. Resolves null
 * when `signal` aborted first; `release` is the same as {@linkcode admit}'s.
 */
export async function admitBehind(
  gateway: object,
  signal: AbortSignal,
): Promise<Admission | null> {
  let slots = behind.get(gateway);
  if (!slots) behind.set(gateway, slots = new Slots(MAX_HANDSHAKES));
  if (!(await slots.acquire(signal))) return null;
  const release = once(() => slots.release());
  return { release: () => release() };
}

/** A handshake slot when `handshake`, then a connecting slot; false on abort. */
async function acquireSlots(
  handshake: boolean,
  signal: AbortSignal,
): Promise<boolean> {
  if (handshake && !(await handshakes.acquire(signal))) return false;
  if (await connecting.acquire(signal)) return true;
  if (handshake) handshakes.release();
  return false;
}

/** `fn`, called at most once. */
function once(fn: () => unknown): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}
