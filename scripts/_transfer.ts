/**
 * What `fiwi push` and `fiwi pull` share: their options, the byte progress
 * line, the per-node lines (or NDJSON with `--json`) as nodes finish, the
 * summary and the exit code.
 *
 * @module
 */

import { formatNodeList } from "../nodeset.ts";
import {
  describeOutcome,
  pullAll,
  pushAll,
  type TransferAllOptions,
  type TransferResult,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  type OptionSpec,
  UsageError,
  userPath,
} from "./_cli.ts";
import { colors, humanMs, type Output } from "./_output.ts";

/** Options both subcommands take. */
export const TRANSFER_OPTIONS: OptionSpec[] = [
  {
    name: "fanout",
    short: "f",
    arg: "N",
    help: "most nodes transferring at once (default 64; per gateway too)",
  },
  {
    name: "timeout",
    short: "u",
    arg: "DURATION",
    help: "stop a node's transfer after DURATION (e.g. 10m)",
  },
  { name: "verify", help: "compare SHA-256 of every file on both ends" },
  { name: "fail-fast", help: "stop every node as soon as one fails" },
];

/** The two directions. */
export type Direction = "push" | "pull";

/** `12.3 MB`: bytes for people (powers of 1000, like `ls -h --si`). */
export function humanBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[u]}`;
}

/** A transfer result as plain JSON (the error as class name and message). */
export function transferJson(r: TransferResult): Record<string, unknown> {
  return {
    node: r.node,
    success: r.success,
    outcome: describeOutcome(r).key,
    files: r.files,
    bytes: r.bytes,
    timedOut: r.timedOut,
    aborted: r.aborted,
    error: r.error ? { kind: r.error.name, message: r.error.message } : null,
    durationMs: Math.round(r.durationMs),
  };
}

/** The spec of `fiwi push` or `fiwi pull`. */
export function transferSpec(direction: Direction): CliSpec {
  const push = direction === "push";
  return {
    name: direction,
    summary: push
      ? "Copy local files or directories into DESTDIR on many nodes."
      : "Copy files or directories from many nodes into DESTDIR/<node>/.",
    positional: "SRC... DESTDIR",
    options: TRANSFER_OPTIONS,
    notes:
      (push
        ? "Each SRC (recursively) lands in DESTDIR on every node under its own name;\n" +
          "DESTDIR is created if missing. A symbolic link already in DESTDIR is never\n" +
          "followed: a file replaces it, a directory is refused."
        : "Each remote SRC lands in DESTDIR/<node>/ under its own name (like rpdcp),\n" +
          "owned by you, without setuid, setgid or group/world write bits; a\n" +
          "DESTDIR/<node> another user could redirect is refused.") +
      "\nModes, mtimes and symlinks are kept; a file appears under its final name only\n" +
      "once it arrived whole. Byte counts are what was put in place. --json prints one\n" +
      "object per node as it finishes, then a summary object.",
    examples: push
      ? [
        "fiwi push -w @duts fw.bin /lib/firmware",
        "fiwi push --verify -w 'dut[1-4]' build/ tools.sh /opt/test",
      ]
      : [
        "fiwi pull -w @duts /var/log/syslog logs/",
        "fiwi pull -w all /tmp/capture.pcap /etc/os-release out/",
      ],
  };
}

function summarize(
  results: TransferResult[],
  out: Output,
  wallMs: number,
): void {
  const ok = results.filter((r) => r.success);
  const bytes = results.reduce((s, r) => s + r.bytes, 0);
  if (ok.length > 0) {
    const names = formatNodeList(ok.map((r) => r.node));
    out.err(
      `${out.paint(colors.green, "ok", "stderr")}: ${names}`,
      `ok: ${names}`,
    );
  }
  for (const r of results.filter((r) => !r.success)) {
    const label = describeOutcome(r).key;
    const why = r.error ? `: ${r.error.message}` : "";
    out.err(
      `${out.paint(colors.red, label, "stderr")}: ${r.node}${why}`,
      `${label}: ${r.node}${why}`,
    );
  }
  out.err(
    `${ok.length}/${results.length} nodes ok, ${humanBytes(bytes)} in ${
      humanMs(wallMs)
    }`,
  );
}

/** Run `fiwi push` or `fiwi pull` with a parsed command line. */
export async function transfer(
  direction: Direction,
  ctx: CliContext,
): Promise<number> {
  const { flags, out, json, interrupt } = ctx;
  if (ctx.rest.length < 2) {
    throw new UsageError(
      `Give at least one SRC and a DESTDIR: fiwi ${direction} [options] SRC... DESTDIR (see --help)`,
    );
  }
  const sources = ctx.rest.slice(0, -1);
  const dest = ctx.rest.at(-1)!;
  const options: TransferAllOptions = {
    concurrency: intFlag(flags, "fanout", 1),
    cmdTimeout: durationFlag(flags, "timeout"),
    verify: flags.verify === true,
    failFast: flags["fail-fast"] === true,
    signal: interrupt,
  };
  const { nodes } = await ctx.selectNodes();
  let done = 0;
  let failed = 0;
  let moved = 0;
  const started = performance.now();
  const redraw = () => {
    const secs = (performance.now() - started) / 1000;
    const rate = secs > 0 ? `, ${humanBytes(Math.round(moved / secs))}/s` : "";
    out.progress(done, failed, nodes.length, `${humanBytes(moved)}${rate}`);
  };
  options.onProgress = (bytes) => {
    moved = bytes;
    redraw();
  };
  options.onResult = (r) => {
    done++;
    if (!r.success) failed++;
    if (json) out.out(JSON.stringify(transferJson(r)));
    redraw();
  };
  let results: TransferResult[];
  try {
    redraw();
    results = direction === "push"
      ? await pushAll(nodes, sources.map(userPath), dest, options)
      : await pullAll(nodes, sources, userPath(dest), options);
  } finally {
    out.clearProgress();
  }
  const wall = performance.now() - started;
  ctx.state?.transfers(results);
  if (json) {
    const ok = results.filter((r) => r.success).length;
    out.out(JSON.stringify({
      summary: {
        nodes: results.length,
        ok,
        failed: results.length - ok,
        interrupted: interrupt.aborted,
        bytes: results.reduce((s, r) => s + r.bytes, 0),
        files: results.reduce((s, r) => s + r.files, 0),
        durationMs: Math.round(wall),
      },
    }));
  } else summarize(results, out, wall);
  if (interrupt.aborted) {
    out.err("Interrupted: every transfer was stopped");
    return interrupt.exitCode ?? 130;
  }
  return results.every((r) => r.success) ? 0 : 1;
}
