/**
 * Terminal output of the scripts: lines to stdout and stderr that are also
 * written to the central log file (LogTape file sink), colours and a live
 * progress line only on a terminal (never colours with `NO_COLOR`), and
 * small formatting helpers.
 *
 * @module
 */

import * as colors from "jsr:@std/fmt@^1/colors";
import { dirname } from "jsr:@std/path@^1";
import {
  configure,
  getLogger,
  getTextFormatter,
  type Logger,
} from "npm:@logtape/logtape@^2";
import { getFileSink } from "npm:@logtape/file@^2";
import { ConfigurationError } from "../src/errors.ts";
import type { SshNode } from "../src/node/node.ts";

export { colors };

/** The central log file, relative to the working directory. */
export const DEFAULT_LOG_FILE = "logs/fiwi.log";

const encoder = new TextEncoder();

/** Write all of `text`, however the stream splits the writes. */
export function writeAllSync(
  stream: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/**
 * Terminal output of one script run: lines to stdout / stderr, each also
 * logged; a progress line on stderr kept below the output (TTY only).
 */
export class Output {
  /** stdout is a terminal and NO_COLOR is not set. */
  readonly color: boolean;
  /** stderr is a terminal and NO_COLOR is not set. */
  readonly colorErr: boolean;
  /** Logger of the script's own lines. */
  readonly log: Logger;
  #progressOn: boolean;
  #progress = "";
  #closed = false;

  /** @param script the script's name, used as log category */
  constructor(script: string) {
    this.log = getLogger(["fiwi", "cli", script]);
    this.color = Deno.stdout.isTerminal() && !Deno.noColor;
    this.colorErr = Deno.stderr.isTerminal() && !Deno.noColor;
    this.#progressOn = Deno.stderr.isTerminal();
    colors.setColorEnabled(true);
  }

  /** `paint(colors.red, text)` for stdout: colour only when allowed. */
  paint(
    fn: (s: string) => string,
    text: string,
    stream: "stdout" | "stderr" = "stdout",
  ): string {
    return (stream === "stdout" ? this.color : this.colorErr) ? fn(text) : text;
  }

  #write(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
    if (this.#closed) return;
    try {
      if (this.#progress) writeAllSync(Deno.stderr, "\r\x1b[K");
      writeAllSync(stream, text);
      if (this.#progress) writeAllSync(Deno.stderr, this.#progress);
    } catch (e) {
      // A reader that went away (`| head`) ends the output, not the run.
      if (e instanceof Deno.errors.BrokenPipe) this.#closed = true;
      else throw e;
    }
  }

  /** A line of data or result to stdout (and the log). */
  out(line: string, plain: string = line): void {
    this.log.info("{line}", { line: plain });
    this.#write(Deno.stdout, line + "\n");
  }

  /** A line of diagnostics to stderr (and the log). */
  err(line: string, plain: string = line): void {
    this.log.warn("{line}", { line: plain });
    this.#write(Deno.stderr, line + "\n");
  }

  /** Redraw the progress line: done / failed / total (terminal only). */
  progress(done: number, failed: number, total: number, extra = ""): void {
    if (!this.#progressOn) return;
    const text = `[${done}/${total} done${
      failed ? `, ${this.paint(colors.red, `${failed} failed`, "stderr")}` : ""
    }]${extra ? ` ${extra}` : ""}`;
    this.#progress = text;
    try {
      writeAllSync(Deno.stderr, "\r\x1b[K" + text);
    } catch { /* terminal gone */ }
  }

  /** Remove the progress line. */
  clearProgress(): void {
    if (!this.#progress) return;
    this.#progress = "";
    try {
      writeAllSync(Deno.stderr, "\r\x1b[K");
    } catch { /* terminal gone */ }
  }
}

/** Configure LogTape: every fiwi record to the central log file. */
export async function setupLogging(path: string): Promise<void> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw new ConfigurationError(
      `Cannot create the log directory "${dirname(path)}": ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  let sink;
  try {
    sink = getFileSink(path, {
      bufferSize: 8192,
      flushInterval: 1000,
      // Lines read as printed, not as quoted JavaScript strings.
      formatter: getTextFormatter({ value: "bare" }),
    });
  } catch (e) {
    throw new ConfigurationError(
      `Cannot open the log file "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  await configure({
    reset: true,
    sinks: { file: sink },
    loggers: [
      { category: ["fiwi"], lowestLevel: "debug", sinks: ["file"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["file"],
      },
    ],
  });
}

/** The names of `nodes`, padded to the longest (for `name: line` prefixes). */
export function padNames(nodes: readonly SshNode[]): (name: string) => string {
  const width = Math.max(0, ...nodes.map((n) => n.name.length));
  return (name) => name.padEnd(width);
}

/** Milliseconds as a short human figure: "12 ms", "1.4 s", "2 m 5 s". */
export function humanMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} m ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Lay out rows as columns two spaces apart (last column not padded). */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const width: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => width[i] = Math.max(width[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(width[i]))
      .join("  ").trimEnd()
  );
}
