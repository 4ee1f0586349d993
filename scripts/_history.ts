/**
 * The pure pieces of `fiwi history`: time bounds (`--since 2h`, an ISO
 * time), and the lines it prints for invocations, outcomes and samples, as
 * a table, CSV (RFC 4180) or JSON.
 *
 * @module
 */

import {
  type InvocationRecord,
  type OutcomeRecord,
  parseDuration,
  type SampleRecord,
} from "../mod.ts";
import { UsageError } from "./_args.ts";
import { formatTable, humanMs, isoLocal } from "./_output.ts";
import { csvField } from "./_poll_output.ts";

/**
 * `--since` / `--until`: a duration ago (`90s`, `2h`, `1h30m`, `7d`) or a
 * time (ISO 8601: `2025-03-01`, `2025-03-01T12:00`, with an offset or
 * local). Throws {@linkcode UsageError}.
 */
export function parseTimeBound(
  option: string,
  text: string,
  now: number,
): Date {
  const t = text.trim();
  if (
    /^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(
      t,
    )
  ) {
    // A date alone is local midnight, as a person means it (Date.parse would read UTC).
    const ms = Date.parse(
      /^\d{4}-\d\d-\d\d$/.test(t) ? `${t}T00:00` : t.replace(" ", "T"),
    );
    if (!Number.isNaN(ms)) return new Date(ms);
  }
  const days = /^(\d+(?:\.\d+)?)d$/.exec(t);
  const ms = days ? Number(days[1]) * 86_400_000 : parseDuration(t);
  if (typeof ms === "string" || t.startsWith("-")) {
    throw new UsageError(
      `Invalid --${option} "${text}": give a time like "2025-03-01T12:00" or a duration ago like "2h" or "7d"`,
    );
  }
  return new Date(now - ms);
}

/** An invocation's exit column: its code, or "running". */
function exitOf(r: InvocationRecord): string {
  return r.exitCode === null ? "running" : String(r.exitCode);
}

/** Local time to the second, no offset: for tables people read. */
export function shortTime(d: Date): string {
  return isoLocal(d.getTime()).slice(0, 19).replace("T", " ");
}

/** Longest command text shown in the list table. */
const WHAT_WIDTH = 48;

/** The list of invocations as table lines, a header first. */
export function invocationTable(
  records: readonly InvocationRecord[],
): string[] {
  const clip = (s: string) =>
    s.length > WHAT_WIDTH ? s.slice(0, WHAT_WIDTH - 1) + "…" : s;
  return formatTable([
    ["TIME", "ID", "WHO", "WHAT", "WHERE", "OK", "FAILED", "EXIT"],
    ...records.map((r) => [
      shortTime(r.startedAt),
      r.id,
      r.user,
      clip(`${r.subcommand} ${r.command}`.replaceAll("\n", " ")),
      r.nodes,
      String(r.ok),
      String(r.failed),
      exitOf(r),
    ]),
  ]);
}

/** An invocation as a JSON object (times in ISO 8601 with the local offset). */
export function invocationJson(r: InvocationRecord): Record<string, unknown> {
  return {
    id: r.id,
    subcommand: r.subcommand,
    command: r.command,
    nodes: r.nodes,
    user: r.user,
    startedAt: isoLocal(r.startedAt.getTime()),
    endedAt: r.endedAt ? isoLocal(r.endedAt.getTime()) : null,
    exitCode: r.exitCode,
    ok: r.ok,
    failed: r.failed,
  };
}

/** A node's record of an invocation, as stored. */
type NodeRecord = OutcomeRecord;

/** One node's line of an invocation (an OutcomeRecord) as plain JSON. */
export function nodeRecordJson(o: NodeRecord): Record<string, unknown> {
  return {
    node: o.node,
    outcome: o.outcome,
    code: o.code,
    durationMs: o.durationMs,
    bytes: o.bytes,
    at: isoLocal(o.at.getTime()),
  };
}

/** One invocation, node by node: a summary, then a table. */
export function invocationDetail(
  r: InvocationRecord,
  outcomes: readonly OutcomeRecord[],
): string[] {
  const took = r.endedAt
    ? ` (${humanMs(r.endedAt.getTime() - r.startedAt.getTime())})`
    : "";
  const lines = [
    `Invocation ${r.id}: ${r.subcommand} ${
      JSON.stringify(r.command)
    } on ${r.nodes}`,
    `By ${r.user}, started ${shortTime(r.startedAt)}, ${
      r.exitCode === null ? "still running" : `exit ${r.exitCode}${took}`
    }; ${r.ok} ok, ${r.failed} failed`,
  ];
  if (outcomes.length === 0) return [...lines, "No node outcomes recorded"];
  return [
    ...lines,
    "",
    ...formatTable([
      ["NODE", "OUTCOME", "CODE", "TIME", "BYTES", "ENDED"],
      ...outcomes.map((o) => [
        o.node,
        o.outcome,
        o.code === null ? "-" : String(o.code),
        humanMs(o.durationMs),
        String(o.bytes),
        shortTime(o.at),
      ]),
    ]),
  ];
}

/** The header of the samples' CSV. */
export const SAMPLES_CSV_HEADER =
  "time,node,command,tick,value,output,invocation";

/** One sample as a CSV record. */
export function sampleCsv(s: SampleRecord): string {
  return [
    isoLocal(s.at.getTime()),
    s.node,
    s.command,
    String(s.tick),
    s.value === null ? "" : String(s.value),
    s.output,
    s.invocationId,
  ].map(csvField).join(",");
}

/** One sample as a JSON object (NDJSON: one a line). */
export function sampleJson(s: SampleRecord): Record<string, unknown> {
  return {
    time: isoLocal(s.at.getTime()),
    node: s.node,
    command: s.command,
    tick: s.tick,
    value: s.value,
    output: s.output,
    invocation: s.invocationId,
  };
}
