/**
 * How `fiwi poll` prints its runs: "node: line" under a header per tick
 * (the default), NDJSON (`--json`), CSV (`--csv`) or a table of nodes by
 * tick (`--table`). Within a tick, nodes come in node-set order: the first
 * unfinished node streams, the ones after it are held until it ends
 * ({@linkcode InOrder}).
 *
 * @module
 */

import { describeOutcome, type Line, type RunResult } from "../mod.ts";
import { colors, type Output } from "./_output.ts";
import { resultJson } from "./_runs.ts";

/** What a poll prints, told in node order within a tick. */
export interface PollPrinter {
  /** Once, before the first tick. */
  start(): void;
  /** Tick `tick` fires at `at` (local ISO 8601). */
  tick(tick: number, at: string): void;
  /** An output line (absent: lines are not wanted). */
  line?: (line: Line) => void;
  /** A node's run ended. */
  result(r: RunResult): void;
  /** Every node of the tick has ended. */
  tickDone(): void;
}

/**
 * Prints in node order what arrives in any order: what a node prints goes
 * out at once while every node before it has ended, else it is held until
 * they have.
 */
export class InOrder {
  readonly #slot: Map<string, number>;
  readonly #held: (() => void)[][];
  readonly #ended: boolean[];
  #head = 0;

  /** @param names the nodes, in the order they are to print */
  constructor(names: readonly string[]) {
    this.#slot = new Map(names.map((n, i) => [n, i]));
    this.#held = names.map(() => []);
    this.#ended = names.map(() => false);
  }

  /** Print now if every node before `node` has ended, else later. */
  emit(node: string, print: () => void): void {
    const i = this.#slot.get(node);
    if (i === undefined || i <= this.#head) print();
    else this.#held[i].push(print);
  }

  /** `node` has ended; `print` is the last thing it prints. */
  end(node: string, print: () => void): void {
    this.emit(node, print);
    const i = this.#slot.get(node);
    if (i === undefined) return;
    this.#ended[i] = true;
    while (this.#ended[this.#head]) {
      this.#head++;
      for (const held of this.#held[this.#head] ?? []) held();
      if (this.#head < this.#held.length) this.#held[this.#head] = [];
    }
  }

  /** Whether `node` has ended. */
  hasEnded(node: string): boolean {
    return this.#ended[this.#slot.get(node) ?? -1] ?? true;
  }
}

/** One CSV field, quoted as RFC 4180 says when it must be. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The CSV header of `--csv`. */
export const CSV_HEADER = "tick,time,node,code,value";

/** A run's stdout without its final line breaks: the value of a row. */
export function runValue(r: RunResult): string {
  return r.stdout.replace(/(\r?\n)+$/, "");
}

/** `text` fitted to `width` columns: padded, or cut with "…". */
export function fit(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width);
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/** Width of the table's TICK column and of its TIME column (HH:MM:SS). */
const TICK_WIDTH = 5;
const TIME_WIDTH = 8;
/** No node column is narrower, however many nodes share the line. */
export const MIN_CELL_WIDTH = 5;

/**
 * The width of each node column when `count` columns share a line of
 * `columns` characters after TICK and TIME (one spare, so a full line does
 * not wrap on a terminal), at least {@linkcode MIN_CELL_WIDTH}.
 */
export function cellWidth(count: number, columns: number): number {
  const free = columns - 1 - (TICK_WIDTH + 2 + TIME_WIDTH + 2);
  return Math.max(MIN_CELL_WIDTH, Math.floor((free + 2) / count) - 2);
}

/** What a cell shows: the output on one line, or how the run ended. */
export function cellText(r: RunResult): string {
  return r.success
    ? r.stdout.replace(/\s+/g, " ").trim()
    : describeOutcome(r).key;
}

/**
 * A table row: TICK, TIME, then one cell per node fitted to `width`, each
 * passed through `paint` once fitted (colour does not count in widths).
 */
export function tableRow(
  tick: string,
  time: string,
  cells: readonly string[],
  width: number,
  paint: (text: string, i: number) => string = (text) => text,
): string {
  const last = cells.length - 1;
  const fitted = cells.map((c, i) =>
    paint(i === last ? fit(c, width).trimEnd() : fit(c, width), i)
  );
  return [tick.padEnd(TICK_WIDTH), time.padEnd(TIME_WIDTH), ...fitted]
    .join("  ").trimEnd();
}

/** The terminal's width when stdout is one, else 80. */
export function stdoutColumns(): number {
  try {
    if (Deno.stdout.isTerminal()) return Deno.consoleSize().columns || 80;
  } catch { /* not a terminal after all */ }
  return 80;
}

/** A failed run, as "node: why (message)" on stderr. */
function printFailure(out: Output, pad: string, r: RunResult): void {
  if (r.success || r.aborted) return;
  const why = describeOutcome(r).key;
  out.err(
    `${pad}: ${out.paint(colors.red, why, "stderr")}${
      r.error ? ` (${r.error.message})` : ""
    }`,
    `${pad}: ${why}`,
  );
}

/** A line as "node: text", on the stream it came from. */
function printLine(out: Output, pad: string, line: Line): void {
  const shown = `${out.paint(colors.cyan, pad, line.stream)}: ${line.text}`;
  if (line.stream === "stdout") out.out(shown, `${pad}: ${line.text}`);
  else out.err(shown, `${pad}: ${line.text}`);
}

/** The default: a header per tick, then "node: line", failures on stderr. */
export function linesPrinter(
  out: Output,
  pad: (name: string) => string,
): PollPrinter {
  return {
    start() {},
    tick(tick, at) {
      const header = `--- tick ${tick} ${at}`;
      out.out(out.paint(colors.bold, header), header);
    },
    line: (line) => printLine(out, pad(line.node), line),
    result: (r) => printFailure(out, pad(r.node), r),
    tickDone() {},
  };
}

/** `--json`: one object per run, as each node's turn comes. */
export function jsonPrinter(out: Output): PollPrinter {
  let current = { tick: 0, at: "" };
  return {
    start() {},
    tick(tick, at) {
      current = { tick, at };
    },
    result: (r) => out.out(JSON.stringify({ ...current, ...resultJson(r) })),
    tickDone() {},
  };
}

/**
 * `--csv`: RFC 4180 records (CRLF line ends, fields quoted when they must
 * be), one per run: `tick,time,node,code,value`, where `value` is the
 * run's stdout without its final line break and `code` is empty when the
 * run has no exit code. stderr lines and failures go to stderr.
 */
export function csvPrinter(
  out: Output,
  pad: (name: string) => string,
): PollPrinter {
  let current = { tick: 0, at: "" };
  const record = (fields: string[]) => {
    const text = fields.map(csvField).join(",");
    out.out(`${text}\r`, text);
  };
  return {
    start: () => record(CSV_HEADER.split(",")),
    tick(tick, at) {
      current = { tick, at };
    },
    line(line) {
      if (line.stream === "stderr") printLine(out, pad(line.node), line);
    },
    result(r) {
      const { tick, at } = current;
      record([String(tick), at, r.node, String(r.code ?? ""), runValue(r)]);
      printFailure(out, pad(r.node), r);
    },
    tickDone() {},
  };
}

/**
 * `--table`: a header of node names, then a row per tick, a column per
 * node, each `width` wide (what a cell holds is cut to fit); a failed run
 * shows how it ended, in red on a terminal.
 */
export function tablePrinter(
  out: Output,
  names: readonly string[],
  width: number,
): PollPrinter {
  const col = new Map(names.map((n, i) => [n, i]));
  let row = {
    tick: "",
    time: "",
    cells: [] as string[],
    failed: [] as boolean[],
  };
  return {
    start() {
      out.out(tableRow("TICK", "TIME", names, width));
    },
    tick(tick, at) {
      row = {
        tick: String(tick),
        time: at.slice(11, 19),
        cells: names.map(() => ""),
        failed: names.map(() => false),
      };
    },
    result(r) {
      const i = col.get(r.node);
      if (i === undefined) return;
      row.cells[i] = cellText(r);
      row.failed[i] = !r.success;
    },
    tickDone() {
      const { tick, time, cells, failed } = row;
      out.out(
        tableRow(
          tick,
          time,
          cells,
          width,
          (text, i) => failed[i] ? out.paint(colors.red, text) : text,
        ),
        tableRow(tick, time, cells, width),
      );
    },
  };
}
