/**
 * Where the lines of one run go: the start line is taken off stderr (it
 * tells that the command began and its pid), ssh's noise before it is
 * dropped, the lifeline watcher's report of what it killed after the
 * linger is taken off too (a fragment a process wrote before it without a
 * newline stays, as a final fragment), and every other line is kept (up to
 * `maxOutput` bytes), logged unless the node is silent, and handed to
 * `onLine`. Pure: no I/O, so it is tested by feeding it lines.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import {
  isClientNoise,
  parseKilledLine,
  parseStartLine,
} from "../transport/wrapper.ts";
import type { Line, LineSink, StreamName } from "./lines.ts";

const log = getLogger(["fiwi", "session"]);

/** Bytes of `text` in UTF-8 (decoded text holds no lone surrogates). */
export function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // Two bytes below U+0800; a surrogate pair is two units for four bytes.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

/** One stream's kept output under a byte cap. */
export class Kept {
  #parts: string[] = [];
  #bytes = 0;
  /** True once a line did not fit. */
  truncated = false;
  /** @param max bytes to keep */
  constructor(readonly max: number) {}
  /** Keep `text` (and its newline), unless the cap was reached. */
  add(text: string, newline: boolean): void {
    if (this.truncated) return;
    const n = utf8Length(text) + (newline ? 1 : 0);
    if (this.#bytes + n > this.max) {
      this.truncated = true;
      return;
    }
    this.#bytes += n;
    this.#parts.push(newline ? text + "\n" : text);
  }
  /** Everything kept. */
  text(): string {
    return this.#parts.join("");
  }
}

/** Settings of {@linkcode OutputRouter}. */
export interface OutputRouterOptions {
  /** Node name on every line. */
  node: string;
  /** Bytes kept per stream. */
  maxOutput: number;
  /** Send every line to the logger. */
  logLines: boolean;
  /** The caller's per-line callback. */
  onLine?: (line: Line) => void;
  /** Called once, with the remote pid, when the start line arrives. */
  onStart(pid: number): void;
  /** Drop a final fragment (`eof: "strict"`). */
  strict?: boolean;
}

/** Routes the lines of one run; see the module doc. */
export class OutputRouter {
  /** Kept stdout. */
  readonly stdout: Kept;
  /** Kept stderr. */
  readonly stderr: Kept;
  /** The remote pid, once the start line arrived. */
  remotePid: number | null = null;
  /** Processes the watcher killed after the linger, from its report. */
  killed = 0;
  /** Arrival time of the current chunk: every line of a chunk shares it. */
  now = Date.now();
  #o: OutputRouterOptions;

  /** @param options where lines go */
  constructor(options: OutputRouterOptions) {
    this.#o = options;
    this.stdout = new Kept(options.maxOutput);
    this.stderr = new Kept(options.maxOutput);
  }

  /** True once the start line arrived. */
  get started(): boolean {
    return this.remotePid !== null;
  }

  /** A start line or ssh's noise before it: true when consumed. */
  #beforeStart(text: string): boolean {
    if (isClientNoise(text)) return true;
    const pid = parseStartLine(text);
    if (pid === null) return false;
    this.remotePid = pid;
    this.#o.onStart(pid);
    return true;
  }

  /**
   * The watcher's report: its count is noted, and whatever preceded it on
   * that line is returned as a final fragment, or null when there is none
   * to deliver.
   */
  #killed(text: string): { rest: string | null } | null {
    const report = parseKilledLine(text);
    if (!report) return null;
    this.killed += report.killed;
    return { rest: report.rest === "" || this.#o.strict ? null : report.rest };
  }

  /** The sink for one stream's lines. Runs once per line: kept flat. */
  sink(stream: StreamName): LineSink {
    const keep = this[stream];
    const stderr = stream === "stderr";
    const { node, logLines, onLine } = this.#o;
    return (text, partial) => {
      if (stderr && this.remotePid === null && this.#beforeStart(text)) return;
      if (stderr && this.remotePid !== null) {
        const report = this.#killed(text);
        if (report) {
          if (report.rest === null) return;
          text = report.rest;
          partial = true;
        }
      }
      if (!keep.truncated) keep.add(text, !partial);
      if (logLines) log.info("{node} {stream}: {text}", { node, stream, text });
      if (onLine) {
        try {
          onLine({ node, stream, text, partial, time: this.now });
        } catch (e) {
          log.error("onLine callback threw on node {node}: {error}", {
            node,
            error: e,
          });
        }
      }
    };
  }
}
