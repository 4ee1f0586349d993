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

import { ConsoleStream, type ConsoleStreamOptions } from "../node/console.ts";
import type { SessionNode } from "../process/session.ts";
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

/** Options of {@linkcode openSerialConsole}. */
export type SerialConsoleOptions = Pick<
  ConsoleStreamOptions,
  "onLine" | "silent"
>;

/**
 * Open `node`'s serial console: the port is read on `via` (the node named
 * by `serial.via`) as a {@linkcode ConsoleStream} whose lines carry `node`
 * and are logged under `fiwi.console.serial` (unless silent; default: the
 * `via` node's `silent`). Close it to stop the reader on the `via` node.
 *
 * @example
 * ```ts
 * import { openSerialConsole, SshNode } from "../../mod.ts";
 * const pi = new SshNode({ name: "pi1", host: "localhost", transport: "local" });
 * const serial = { via: "pi1", port: "/nonexistent/ttyUSB0", baud: 115200 };
 * await using boot = openSerialConsole("dut1", pi, serial, {
 *   silent: true,
 *   onLine: (line) => console.log(line.text), // "[fiwi serial] port … is not there yet: …"
 * });
 * console.log(boot.node); // "dut1"
 * ```
 */
export function openSerialConsole(
  node: string,
  via: SessionNode,
  serial: SerialConfig,
  options: SerialConsoleOptions = {},
): ConsoleStream {
  return new ConsoleStream(via, serialReaderCommand(serial), {
    ...options,
    node,
    category: ["fiwi", "console", "serial"],
  });
}
