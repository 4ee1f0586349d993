/**
 * The line format of the central log: `<ISO 8601 local time with offset>
 * <LVL> <invocation id> <category>: <message>`, with the time formatted once
 * per second and the head of a line once per chunk of output.
 *
 * @module
 */

import {
  getTextFormatter,
  type LogLevel,
  type LogRecord,
} from "npm:@logtape/logtape@^2";

const two = (n: number) => (n < 10 ? "0" : "") + n;

/** `ms` as ISO 8601 local time with milliseconds and the UTC offset. */
export function isoLocal(ms: number): string {
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${
    two(d.getHours())
  }:${two(d.getMinutes())}:${two(d.getSeconds())}.${
    String(d.getMilliseconds()).padStart(3, "0")
  }${sign}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
}

/** {@linkcode isoLocal}, computed once per second (one record per line). */
class Stamper {
  #second = NaN;
  #head = "";
  #tail = "";

  stamp(ms: number): string {
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      const full = isoLocal(second * 1000);
      this.#second = second;
      this.#head = full.slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
      this.#tail = full.slice(23); // "+HH:MM"
    }
    const milli = ms - second * 1000;
    return this.#head + (milli < 10 ? "00" : milli < 100 ? "0" : "") + milli +
      this.#tail;
  }
}

const LEVELS: Record<LogLevel, string> = {
  trace: "TRC",
  debug: "DBG",
  info: "INF",
  warning: "WRN",
  error: "ERR",
  fatal: "FTL",
};

/** Properties of a record that holds lines formatted already. */
export const FORMATTED: Readonly<{ formatted: true }> = Object.freeze({
  formatted: true,
});

/**
 * The head of a log line, `<ISO time> <LVL> <invocation id> <category>: `,
 * remembered for the last time, level and category asked (every line of a
 * chunk shares them).
 */
export class LineHead {
  #stamper = new Stamper();
  #key: [number, string, readonly string[]] = [NaN, "", []];
  #head = "";
  #categories = new Map<readonly string[], string>();

  /** @param id the invocation id */
  constructor(readonly id: string) {}

  /** The head for a record at `ms` of `level` in `category`. */
  head(ms: number, level: LogLevel, category: readonly string[]): string {
    const k = this.#key;
    if (k[0] === ms && k[1] === level && k[2] === category) return this.#head;
    let name = this.#categories.get(category);
    if (name === undefined) {
      name = category.join(".");
      if (this.#categories.size < 64) this.#categories.set(category, name);
    }
    this.#key = [ms, level, category];
    this.#head = `${this.#stamper.stamp(ms)} ${
      LEVELS[level]
    } ${this.id} ${name}: `;
    return this.#head;
  }
}

/**
 * The log line format: `<ISO time> <LVL> <invocation id> <category>: <message>`.
 * A record of lines formatted already ({@linkcode CentralLog.line}) is
 * written as it is.
 */
export function logFormatter(id: string): (record: LogRecord) => string {
  const heads = new LineHead(id);
  const render = getTextFormatter({
    value: "bare",
    format: ({ message }) => message,
  });
  return (r) => {
    if (r.properties === FORMATTED) return r.message[0] as string;
    const m = r.message;
    const text = m.length === 1 && typeof m[0] === "string"
      ? m[0]
      : render(r).replace(/\n$/, "");
    return heads.head(r.timestamp, r.level, r.category) + text + "\n";
  };
}
