/**
 * Watchdog: the connect, command and io timeouts of one run, on an
 * injectable clock so tests can drive it without waiting.
 *
 * - connect: from the moment the client really started until the start
 *   line arrives, or any byte of the command's stdout (which only the node
 *   can send: any byte proves the connection);
 * - command: wall clock from the start of the client;
 * - io: no bytes on either stream for that long, counted once the command
 *   began.
 *
 * A connect or io limit that expires is confirmed before it counts: the
 * watchdog waits {@linkcode CONFIRM_MS} and a few turns of the event loop
 * more, and gives up the expiry when bytes arrived meanwhile. On a busy
 * controller the timer and the data that would have stopped it can become
 * ready in the same turn; the data must win (a run is never failed while
 * its output waits to be read).
 *
 * Activity is recorded as a timestamp, not by re-arming a timer, so a
 * chatty command costs one clock read per chunk; the io timer wakes at the
 * last deadline and sleeps again for whatever time is left.
 *
 * @module
 */

import { type Clock, monotonicClock } from "./clock.ts";

/** How long an expired connect or io limit waits for late bytes, in ms. */
export const CONFIRM_MS = 200;
/** Turns of the event loop (each one polls I/O) after that wait. */
const CONFIRM_TURNS = 3;

/** One turn of the event loop: pending reads complete before it ends. */
function turn(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** Which limit expired. */
export type TimeoutKind = "connect" | "command" | "io";

/** The limits in ms; undefined or 0 means none. */
export interface WatchdogLimits {
  /** Until {@linkcode Watchdog.started}. */
  connect?: number;
  /** Wall clock. */
  command?: number;
  /** Silence on both streams once started. */
  io?: number;
}

/**
 * Calls `onExpire` once, with the first limit that expires, unless
 * {@linkcode Watchdog.dispose} came first.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { CONFIRM_MS, Watchdog } from "./watchdog.ts";
 * const expired: string[] = [];
 * const dog = new Watchdog({ connect: 10 }, (kind) => expired.push(kind));
 * // The limit, then the confirmation wait in which no byte arrived.
 * await new Promise((r) => setTimeout(r, 10 + CONFIRM_MS + 100));
 * dog.dispose();
 * assertEquals(expired, ["connect"]);
 * ```
 */
export class Watchdog {
  #limits: WatchdogLimits;
  #onExpire: (kind: TimeoutKind) => void;
  #clock: Clock;
  #stop = new AbortController();
  #connect = new AbortController();
  #last = 0;
  #bytes = 0;
  #begun = false;
  #done = false;

  /**
   * Start the connect and command timers now.
   *
   * @param limits the timeouts in ms
   * @param onExpire called once with the limit that expired
   * @param clock the clock to measure on (default: `performance.now()`)
   */
  constructor(
    limits: WatchdogLimits,
    onExpire: (kind: TimeoutKind) => void,
    clock: Clock = monotonicClock,
  ) {
    this.#limits = limits;
    this.#onExpire = onExpire;
    this.#clock = clock;
    if (limits.connect) {
      this.#after(limits.connect, "connect", this.#connect.signal);
    }
    if (limits.command) this.#after(limits.command, "command");
  }

  /**
   * The command began (its start line, or a byte of its stdout): the
   * connect timer stops and the io timer starts. Later calls do nothing.
   */
  started(): void {
    if (this.#begun) return;
    this.#begun = true;
    this.#connect.abort();
    if (!this.#limits.io || this.#done) return;
    this.#last = this.#clock.now();
    void this.#watchIo(this.#limits.io);
  }

  /** Bytes arrived. Cheap: one clock read. */
  activity(): void {
    this.#last = this.#clock.now();
    this.#bytes++;
  }

  /**
   * Whether `kind`, which just expired, still holds once pending reads had
   * their chance: no byte arrived (io) and the command did not begin
   * (connect) while it waited.
   */
  async #confirmed(kind: TimeoutKind): Promise<boolean> {
    if (kind === "command") return true;
    const seen = this.#bytes;
    await this.#clock.sleep(CONFIRM_MS, this.#stop.signal);
    for (let i = 0; i < CONFIRM_TURNS && !this.#done; i++) await turn();
    if (this.#done) return false;
    return kind === "connect" ? !this.#begun : this.#bytes === seen;
  }

  /** Stop every timer; `onExpire` will not be called after this. */
  dispose(): void {
    this.#done = true;
    this.#connect.abort();
    this.#stop.abort();
  }

  #expire(kind: TimeoutKind): void {
    if (this.#done) return;
    this.dispose();
    this.#onExpire(kind);
  }

  async #after(ms: number, kind: TimeoutKind, extra?: AbortSignal) {
    const signal = extra
      ? AbortSignal.any([this.#stop.signal, extra])
      : this.#stop.signal;
    await this.#clock.sleep(ms, signal);
    if (signal.aborted || !(await this.#confirmed(kind))) return;
    this.#expire(kind);
  }

  async #watchIo(io: number): Promise<void> {
    for (;;) {
      const left = this.#last + io - this.#clock.now();
      if (left <= 0) {
        if (await this.#confirmed("io")) return this.#expire("io");
        if (this.#done) return;
        continue;
      }
      await this.#clock.sleep(left, this.#stop.signal);
      if (this.#done) return;
    }
  }
}
