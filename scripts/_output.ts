/**
 * Terminal output of the `fiwi` command: lines to stdout and stderr, each
 * also one record in the central log, written in batches (one write per
 * stream per chunk of output, not one per line), colours and a live
 * progress line only on a terminal (never colours with `NO_COLOR`), and
 * small formatting helpers.
 *
 * @module
 */

import * as colors from "jsr:@std/fmt@^1/colors";
import { getLogger, type Logger } from "npm:@logtape/logtape@^2";
import type { SshNode } from "../mod.ts";
import type { CentralLog } from "./_log.ts";

export { colors };
export { isoLocal } from "./_log.ts";
import { noteChurn } from "./_log.ts";

const encoder = new TextEncoder();

/** Write all of `bytes`, however the stream splits the writes. */
export function writeAllBytes(
  stream: { writeSync(p: Uint8Array): number },
  bytes: Uint8Array,
): void {
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/** Write all of `text`, however the stream splits the writes. */
export function writeAllSync(
  stream: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  writeAllBytes(stream, encoder.encode(text));
}

/** Flush pending output when this many UTF-16 units are waiting. */
const BATCH_LIMIT = 1 << 16;

/**
 * Terminal output of one invocation: lines to stdout / stderr, each logged
 * at once and written with the other lines of its chunk (a microtask after
 * the first, or at 64 K characters); a progress line on stderr kept below
 * the output (terminal only).
 */
export class Output {
  /** stdout is a terminal and NO_COLOR is not set. */
  readonly color: boolean;
  /** stderr is a terminal and NO_COLOR is not set. */
  readonly colorErr: boolean;
  /** Logger of the command's own records. */
  readonly log: Logger;
  #central: CentralLog | null;
  #category: readonly string[];
  #progressOn: boolean;
  #progress = "";
  #closed = { stdout: false, stderr: false };
  #pending = { stdout: "", stderr: "" };
  #scheduled = false;

  /**
   * @param command the subcommand's name, used as log category
   * @param central the central log (null: none)
   */
  constructor(command: string, central: CentralLog | null = null) {
    this.#category = ["fiwi", "cli", command];
    this.log = getLogger(this.#category);
    this.#central = central;
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

  #queue(stream: "stdout" | "stderr", text: string): void {
    this.#pending[stream] += text;
    if (this.#pending[stream].length >= BATCH_LIMIT) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  #writeTo(stream: "stdout" | "stderr", text: string): void {
    if (this.#closed[stream] || text === "") return;
    try {
      writeAllSync(stream === "stdout" ? Deno.stdout : Deno.stderr, text);
    } catch {
      // A reader that went away (`| head`) or a terminal that hung up ends
      // that stream's output, not the run.
      this.#closed[stream] = true;
    }
  }

  /** Write everything pending now (progress line kept below it). */
  flush(): void {
    this.#scheduled = false;
    const { stdout, stderr } = this.#pending;
    if (stdout === "" && stderr === "") return;
    this.#pending = { stdout: "", stderr: "" };
    noteChurn(stdout.length + stderr.length);
    const progress = this.#progress;
    if (progress) this.#writeTo("stderr", "\r\x1b[K");
    this.#writeTo("stdout", stdout);
    this.#writeTo("stderr", stderr + progress);
  }

  /** A line of data or result to stdout (and the log). */
  out(line: string, plain: string = line): void {
    this.#central?.line(this.#category, "info", plain);
    this.#queue("stdout", line + "\n");
  }

  /**
   * A block of lines to stdout, each ending in `\n` (an empty block writes
   * nothing); `plain` is the same block without colours, for the log (one
   * record per line).
   */
  outText(text: string, plain: string = text): void {
    if (text === "") return;
    for (const line of plain.replace(/\n$/, "").split("\n")) {
      this.#central?.line(this.#category, "info", line);
    }
    this.#queue("stdout", text.endsWith("\n") ? text : text + "\n");
  }

  /** A line of diagnostics to stderr (and the log). */
  err(line: string, plain: string = line): void {
    this.#central?.line(this.#category, "warning", plain);
    this.#queue("stderr", line + "\n");
  }

  /** Redraw the progress line: done / failed / total (terminal only). */
  progress(done: number, failed: number, total: number, extra = ""): void {
    if (!this.#progressOn) return;
    const text = `[${done}/${total} done${
      failed ? `, ${this.paint(colors.red, `${failed} failed`, "stderr")}` : ""
    }]${extra ? ` ${extra}` : ""}`;
    if (text === this.#progress) return;
    this.flush();
    this.#progress = text;
    this.#writeTo("stderr", "\r\x1b[K" + text);
  }

  /** Write what is pending and remove the progress line. */
  clearProgress(): void {
    this.flush();
    if (!this.#progress) return;
    this.#progress = "";
    this.#writeTo("stderr", "\r\x1b[K");
  }
}

/** The names of `nodes`, padded to the longest (for `name: line` prefixes). */
export function padNames(
  nodes: readonly Pick<SshNode, "name">[],
): (name: string) => string {
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
