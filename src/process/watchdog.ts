/**
 * Watchdog: the connect, command and io timeouts of one run, on an
 * injectable clock so tests can drive it without waiting.
 *
 * - connect: from the moment the client really started until the start
 *   line arrives;
 * - command: wall clock from the start of the client;
 * - io: no bytes on either stream for that long, counted once the command
 *   began.
 *
 * Activity is recorded as a timestamp, not by re-arming a timer, so a
 * chatty command costs one clock read per chunk; the io timer wakes at the
 * last deadline and sleeps again for whatever time is left.
 *
 * @module
 */

import { type Clock, monotonicClock } from "./clock.ts";

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
 * import { Watchdog } from "./watchdog.ts";
 * const expired: string[] = [];
 * const dog = new Watchdog({ connect: 10 }, (kind) => expired.push(kind));
 * await new Promise((r) => setTimeout(r, 30));
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

  /** The command began: the connect timer stops and the io timer starts. */
  started(): void {
    this.#connect.abort();
    if (!this.#limits.io || this.#done) return;
    this.#last = this.#clock.now();
    void this.#watchIo(this.#limits.io);
  }

  /** Bytes arrived. Cheap: one clock read. */
  activity(): void {
    this.#last = this.#clock.now();
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
    if (!signal.aborted) this.#expire(kind);
  }

  async #watchIo(io: number): Promise<void> {
    for (;;) {
      const left = this.#last + io - this.#clock.now();
      if (left <= 0) return this.#expire("io");
      await this.#clock.sleep(left, this.#stop.signal);
      if (this.#done) return;
    }
  }
}
