/**
 * The scale benchmark's results: the JSON rows of its runs, their medians,
 * and the Markdown tables with the ratios the issue sets targets for.
 *
 * @module
 */

import { median } from "./_measure.ts";

/** The contenders, in the order they run. */
export const CONTENDERS = [
  "pdsh",
  "clush",
  "clush tree",
  "fiwi cold",
  "fiwi warm",
  "ssh mux",
  "ssh mux + lifeline",
  "fiwi tree",
] as const;
/** A contender's name. */
export type Contender = typeof CONTENDERS[number];

/** One contender's run, as written to the JSON file. */
export interface Row {
  contender: Contender;
  run: number;
  wallS: number;
  cpuS: number;
  peakProcs: number;
  peakSsh: number;
  peakRssMb: number;
  nodesOk: number;
  falseFailures: number;
  code: number;
  /** The 1-minute load average when it started. */
  load1: number;
  /** Most frequent stderr lines (numbers folded). */
  messages: string[];
  /** Its first stderr lines, as printed (when a node failed). */
  stderrHead: string[];
  /** After `fiwi close`: its wall time and what was still running. */
  closeS?: number;
  leftovers?: string[];
}

/** One mode of the push, measured. */
export interface PushMeasured {
  wallS: number;
  cpuS: number;
  peakSsh: number;
  peakRssMb: number;
  code: number;
  /** What the controller's connections delivered. */
  uploadedMb: number;
  /** uploadedMb over the file's size. */
  copies: number;
  gatewaysReceivedMb: number;
  nodesReceivedMb: number;
  connections: number;
  messages: string[];
  stderrHead: string[];
  leftovers: string[];
}

/** One mode of the push: measured, or why not. */
export type PushMode = PushMeasured | { skipped: string };

/** The push part of a run. */
export interface PushResult {
  mb: number;
  nodes: number;
  flat?: PushMode;
  tree?: PushMode;
}

/** A contender's runs, summed up. */
export interface Summary {
  runs: number;
  wallS: number;
  cpuS: number;
  peakProcs: number;
  peakSsh: number;
  peakRssMb: number;
  minOk: number;
  falseFailures: number;
}

/** Medians of each contender's runs; worst nodes ok; all false failures. */
export function summarize(rows: Row[]): Map<Contender, Summary> {
  const out = new Map<Contender, Summary>();
  for (const c of CONTENDERS) {
    const mine = rows.filter((r) => r.contender === c);
    if (mine.length === 0) continue;
    const med = (f: (r: Row) => number) => median(mine.map(f));
    out.set(c, {
      runs: mine.length,
      wallS: med((r) => r.wallS),
      cpuS: med((r) => r.cpuS),
      peakProcs: med((r) => r.peakProcs),
      peakSsh: med((r) => r.peakSsh),
      peakRssMb: med((r) => r.peakRssMb),
      minOk: Math.min(...mine.map((r) => r.nodesOk)),
      falseFailures: mine.reduce((n, r) => n + r.falseFailures, 0),
    });
  }
  return out;
}

/** What {@linkcode tables} prints. */
export interface Report {
  nodes: number;
  gateways: number;
  fanout: number;
  cmd: string;
  /** Load averages (1 min) at the start and the end. */
  loads: number[];
  rows: Row[];
  summary: Map<Contender, Summary>;
  /** Why a contender (or the push) did not run. */
  skipped: Map<string, string>;
  push?: PushResult;
}

/** The Markdown tables of a run: results, ratios, close, push. */
export function tables(report: Report): string {
  const { summary: sum, skipped, rows } = report;
  const lines = [
    `${report.nodes} loopback nodes, ${report.gateways} gateways, fanout ${report.fanout}, \`${report.cmd}\`; medians of runs; load average ${
      report.loads.map((l) => l.toFixed(2)).join(" → ")
    }`,
    "",
    "| contender | runs | wall s | CPU s | peak procs | peak ssh | peak RSS MB | nodes ok (worst run) | false failures (all runs) |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [c, s] of sum) {
    lines.push(
      `| ${c} | ${s.runs} | ${s.wallS.toFixed(1)} | ${
        s.cpuS.toFixed(1)
      } | ${s.peakProcs} | ${s.peakSsh} | ${
        s.peakRssMb.toFixed(0)
      } | ${s.minOk} | ${s.falseFailures} |`,
    );
  }
  for (const [c, why] of skipped) {
    const short = why.length > 120 ? `${why.slice(0, 117)}...` : why;
    lines.push(`| ${c} | skipped: ${short} |`);
  }
  const ratio = (a: Contender, b: Contender, target: string) => {
    const x = sum.get(a);
    const y = sum.get(b);
    if (!x || !y) return;
    lines.push(
      `| ${a} / ${b} | ${(x.wallS / y.wallS).toFixed(2)} | ${
        (x.cpuS / y.cpuS).toFixed(2)
      } | ${target} |`,
    );
  };
  lines.push("", "| ratio | wall | CPU | target (wall) |", "|---|---|---|---|");
  ratio("fiwi tree", "fiwi cold", "≤ 1.1");
  ratio("fiwi tree", "clush tree", "≤ 1.0");
  ratio("fiwi warm", "pdsh", "≤ 0.25");
  ratio("ssh mux", "pdsh", "the floor of warm / pdsh");
  ratio(
    "ssh mux + lifeline",
    "pdsh",
    "the floor of warm / pdsh, lifeline kept",
  );
  ratio("fiwi warm", "ssh mux", "");
  ratio("fiwi warm", "ssh mux + lifeline", "");
  ratio("fiwi cold", "pdsh", "");
  ratio("clush tree", "clush", "");
  const closes = rows.filter((r) => r.closeS !== undefined);
  if (closes.length) {
    lines.push(
      "",
      "| after | fiwi close s (median) | left running after close |",
      "|---|---|---|",
    );
    for (const c of ["fiwi cold", "fiwi tree"] as const) {
      const mine = closes.filter((r) => r.contender === c);
      if (!mine.length) continue;
      lines.push(
        `| ${c === "fiwi cold" ? "fiwi flat (cold + warm)" : c} | ${
          median(mine.map((r) => r.closeS!)).toFixed(1)
        } | ${mine.map((r) => r.leftovers!.length).join(", ")} |`,
      );
    }
  }
  const pushResult = report.push;
  if (pushResult) {
    lines.push(
      "",
      `Push of ${pushResult.mb} MB to ${pushResult.nodes} nodes:`,
      "",
      "| fiwi push | wall s | exit | controller uploaded MB | copies |",
      "|---|---|---|---|---|",
    );
    for (const mode of ["flat", "tree"]) {
      const p = pushResult[mode as "flat" | "tree"];
      if (!p || !("wallS" in p)) {
        lines.push(`| ${mode} | skipped (see fiwi tree) |`);
        continue;
      }
      lines.push(
        `| ${mode} | ${p.wallS.toFixed(1)} | ${p.code} | ${
          p.uploadedMb.toFixed(0)
        } | ${p.copies.toFixed(2)} |`,
      );
    }
  } else if (skipped.has("push")) {
    lines.push("", `Push: skipped (${skipped.get("push")})`);
  }
  return lines.join("\n");
}
