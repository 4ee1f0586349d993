/**
 * Serial consoles: a node's console wired to a serial port of another rig
 * node (`serial: { via, port, baud }`), read on that `via` node so the
 * node's kernel messages are captured even while its own network is down.
 *
 * The reader is a small POSIX sh loop on the `via` node: it sets the port
 * raw at the baud rate (`stty -F PORT raw -echo clocal BAUD`) and copies it
 * to stdout with `cat`. When the port disappears (a USB serial adapter
 * re-enumerating, the node losing power) `cat` ends; the loop prints a
 * notice line, waits for the port to come back, and reopens it with another
 * notice. It runs under fiwi's lifeline like every command, so nothing
 * keeps the port open once fiwi stops.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { SshNode } from "../node/node.ts";
import type { Line } from "../process/lines.ts";
import type { RunResult } from "../process/run_options.ts";
import { SshSession } from "../process/session.ts";
import { shellQuote } from "../transport/quote.ts";

/** A node's `serial:` entry. */
export interface SerialConfig {
  /** The rig node the serial adapter is plugged into. */
  via: string;
  /** The port's device path on the `via` node, e.g. `/dev/ttyUSB0`. */
  port: string;
  /** Baud rate, e.g. 115200. */
  baud: number;
}

/**
 * Baud rates `stty` accepts on Linux.
 *
 * @example
 * ```ts
 * import { BAUD_RATES } from "../../mod.ts";
 * console.log(BAUD_RATES.includes(115200)); // true
 * ```
 */
export const BAUD_RATES: readonly number[] = [
  50,
  75,
  110,
  134,
  150,
  200,
  300,
  600,
  1200,
  1800,
  2400,
  4800,
  9600,
  19200,
  38400,
  57600,
  115200,
  230400,
  460800,
  500000,
  576000,
  921600,
  1000000,
  1152000,
  1500000,
  2000000,
  2500000,
  3000000,
  3500000,
  4000000,
];

/**
 * Prefix of the reader's own notice lines.
 *
 * @example
 * ```ts
 * import { SERIAL_NOTICE } from "../../mod.ts";
 * const fromFiwi = (text: string) => text.startsWith(SERIAL_NOTICE);
 * console.log(fromFiwi(`${SERIAL_NOTICE} port closed`)); // true
 * ```
 */
export const SERIAL_NOTICE = "[fiwi serial]";

/**
 * The reader's command line for the `via` node's shell (see the module
 * doc). `recheckSeconds` is the pause before looking for a missing port
 * again (whole seconds: POSIX `sleep`).
 */
export function serialReaderCommand(
  serial: SerialConfig,
  recheckSeconds = 1,
): string {
  const p = shellQuote(serial.port);
  const note = (text: string) =>
    `echo ${shellQuote(`${SERIAL_NOTICE} ${text}`)}`;
  return [
    `p=${p}; b=${serial.baud}; s=new`,
    "while :; do",
    '  if [ -c "$p" ] && stty -F "$p" raw -echo clocal "$b" 2>/dev/null; then',
    `    [ "$s" = gone ] && ${
      note(`port ${serial.port} is back: reading at ${serial.baud} baud`)
    }`,
    '    s=open; cat "$p" 2>/dev/null',
    `    ${note(`port ${serial.port} went away: waiting for it to come back`)}`,
    "    s=gone",
    '  elif [ "$s" = new ]; then',
    `    ${note(`port ${serial.port} is not there yet: waiting for it`)}`,
    "    s=gone",
    "  fi",
    `  sleep ${Math.max(1, Math.floor(recheckSeconds))}`,
    "done",
  ].join("\n");
}

/** Options of {@linkcode SerialConsole.open}. */
export interface SerialConsoleOptions {
  /** Called for every line, with `node` set to the node the console belongs to. */
  onLine?: (line: Line) => void;
  /** true: lines are not sent to the logger (default: the node's `silent`). */
  silent?: boolean;
}

/**
 * One node's serial console, read on its `via` node.
 *
 * @example
 * ```ts
 * import { SerialConsole, SshNode } from "../../mod.ts";
 * const pi = new SshNode({ name: "pi1", host: "localhost", transport: "local" });
 * const console1 = new SerialConsole("dut1", pi, {
 *   via: "pi1",
 *   port: "/dev/ttyUSB0",
 *   baud: 115200,
 * });
 * // console1.open({ onLine: (line) => console.log(line.text) }); … await console1.close();
 * console.log(console1.node); // "dut1"
 * ```
 */
export class SerialConsole {
  /** The node whose console this is. */
  readonly node: string;
  /** The node the port is read on. */
  readonly via: SshNode;
  /** The port. */
  readonly serial: SerialConfig;
  #run: { session: SshSession; done: Promise<RunResult> } | null = null;

  /**
   * A closed console; {@linkcode SerialConsole.open} starts reading.
   *
   * @param node the node whose console it is (lines carry its name)
   * @param via the node the port is plugged into
   * @param serial the port and its baud rate
   */
  constructor(node: string, via: SshNode, serial: SerialConfig) {
    this.node = node;
    this.via = via;
    this.serial = serial;
  }

  /** Start reading the port in the background; lines go to `onLine` and the logger. */
  open(options: SerialConsoleOptions = {}): void {
    if (this.#run) return;
    const log = getLogger(["fiwi", "console", "serial"]);
    const silent = options.silent ?? this.via.silent;
    const session = new SshSession(this.via);
    const done = session.postCmd(serialReaderCommand(this.serial), {
      onLine: (line) => {
        const own = { ...line, node: this.node };
        if (!silent) {
          log.info("[{node}] {text}", { node: own.node, text: own.text });
        }
        options.onLine?.(own);
      },
    });
    this.#run = { session, done };
  }

  /** Settles when the reader ends (on its own or by close); null when closed. */
  get done(): Promise<RunResult> | null {
    return this.#run?.done ?? null;
  }

  /** Stop reading: the reader and everything it started end on the `via` node. */
  async close(): Promise<RunResult | null> {
    const run = this.#run;
    if (!run) return null;
    this.#run = null;
    await run.session.close();
    return await run.done.catch(() => null);
  }

  /** Same as {@linkcode SerialConsole.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
