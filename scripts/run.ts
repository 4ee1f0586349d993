/**
 * `deno task run CMD`: one command on many nodes at once. Output streams as
 * `node: line` while it arrives, or, with `-b`, is collated after the run
 * (nodes with identical output under one header, like `dshbak -c`). An
 * exit-code summary follows on stderr.
 *
 * @module
 */

import { collate, formatNodeList } from "../src/fanout/collate.ts";
import { runAll } from "../src/fanout/run_all.ts";
import type { RunResult } from "../src/process/session.ts";
import {
  type CliSpec,
  durationFlag,
  interruptSignal,
  intFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import { colors, humanMs, type Output, padNames } from "./_output.ts";
import { observed, outcome, resultJson } from "./_runs.ts";

const SPEC: CliSpec = {
  name: "run",
  summary: "Run one shell command on many nodes at once.",
  positional: "CMD...",
  options: [
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "most nodes running at once (default 64)",
    },
    {
      name: "collate",
      short: "b",
      help: "print identical outputs once, under their nodes (like dshbak -c)",
    },
    {
      name: "timeout",
      short: "t",
      arg: "DURATION",
      help: "stop the command on a node after DURATION (e.g. 30s)",
    },
    {
      name: "fail-fast",
      help: "stop every node as soon as one fails",
    },
  ],
  notes:
    "The command runs in each node's shell; quote it, or put it after --. Lines print as\n" +
    '"node: line" (stderr lines on stderr); the summary of exit codes goes to stderr.',
  examples: [
    "deno task run uptime",
    "deno task run --nodes @duts -b -- cat /etc/os-release",
    "deno task run --rig lab.yaml --nodes 'dut[1-4]' --fanout 2 'iw dev wlan0 link'",
  ],
};

function summarize(results: RunResult[], out: Output, wallMs: number): void {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = outcome(r);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const ok = results.filter((r) => r.success).length;
  if (ok === results.length) {
    out.err(
      `${out.paint(colors.green, "ok", "stderr")}: ${
        formatNodeList(results.map((r) => r.node))
      } (exit 0, ${humanMs(wallMs)})`,
      `ok: ${formatNodeList(results.map((r) => r.node))} (exit 0, ${
        humanMs(wallMs)
      })`,
    );
    return;
  }
  for (const [key, rs] of groups) {
    const names = formatNodeList(rs.map((r) => r.node));
    const good = rs[0].success;
    const label = good ? key : out.paint(colors.red, key, "stderr");
    out.err(`${label}: ${names}`, `${key}: ${names}`);
    if (!good) {
      for (const r of rs) {
        if (r.error) out.err(`  ${r.error.message}`);
      }
    }
  }
  out.err(
    `${ok}/${results.length} nodes ok in ${humanMs(wallMs)}`,
  );
}

function printCollated(results: RunResult[], out: Output): void {
  for (const group of collate(results)) {
    const bar = "-".repeat(Math.max(16, Math.min(72, group.label.length)));
    out.out(bar);
    out.out(out.paint(colors.bold, group.label), group.label);
    out.out(bar);
    const text = group.output.endsWith("\n")
      ? group.output.slice(0, -1)
      : group.output;
    if (text !== "") { for (const line of text.split("\n")) out.out(line); }
  }
}

if (import.meta.main) {
  Deno.exit(
    await runCli(SPEC, Deno.args, async (ctx) => {
      const { flags, out, json } = ctx;
      const cmd = ctx.rest.join(" ");
      if (cmd.trim() === "") {
        throw new UsageError(
          "No command given: deno task run [options] CMD (see --help)",
        );
      }
      const fanout = intFlag(flags, "fanout", 1);
      const cmdTimeout = durationFlag(flags, "timeout");
      const collated = flags.collate === true;
      const { nodes, close } = await ctx.selectNodes();
      const pad = padNames(nodes);
      using interrupt = interruptSignal();
      let done = 0;
      let failed = 0;
      const started = performance.now();
      let results: RunResult[];
      try {
        out.progress(0, 0, nodes.length);
        results = await runAll(
          nodes.map((n) =>
            observed(n, (r) => {
              done++;
              if (!r.success) failed++;
              out.progress(done, failed, nodes.length);
            })
          ),
          cmd,
          {
            concurrency: fanout,
            failFast: flags["fail-fast"] === true,
            cmdTimeout,
            signal: interrupt,
            onLine: json || collated ? undefined : (line) => {
              const prefix = pad(line.node);
              const text = `${
                out.paint(colors.cyan, prefix, line.stream)
              }: ${line.text}`;
              const plain = `${prefix}: ${line.text}`;
              if (line.stream === "stdout") out.out(text, plain);
              else out.err(text, plain);
            },
          },
        );
      } finally {
        out.clearProgress();
        await close();
      }
      const wall = performance.now() - started;
      if (json) {
        out.out(JSON.stringify(results.map(resultJson), null, 2));
      } else {
        if (collated) printCollated(results, out);
        summarize(results, out, wall);
      }
      if (interrupt.aborted) out.err("Interrupted: every command was stopped");
      return results.every((r) => r.success) ? 0 : 1;
    }),
  );
}
