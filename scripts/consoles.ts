/**
 * `deno task consoles`: open the console stream (`dmesg -w`, or the node's
 * `consoleCommand`) of every selected node with `console: true`, through
 * `SshNode.openConsoles()` (stale console commands are killed first; ssh
 * nodes stream over their ControlMaster), and print each line as
 * `time [node] line`. `--duration` or Ctrl-C closes them all; so does every
 * console ending on its own.
 *
 * @module
 */

import type { Line } from "../src/process/lines.ts";
import { SshNode } from "../src/node/node.ts";
import type { RunResult } from "../src/process/session.ts";
import {
  type CliSpec,
  durationFlag,
  interruptSignal,
  runCli,
  UsageError,
} from "./_cli.ts";
import { colors, padNames } from "./_output.ts";
import { outcome } from "./_runs.ts";

const SPEC: CliSpec = {
  name: "consoles",
  summary:
    "Stream the kernel console (dmesg -w) of every console node, with timestamps.",
  options: [
    {
      name: "duration",
      short: "d",
      arg: "DURATION",
      help: "close the consoles after DURATION (default: at Ctrl-C)",
    },
  ],
  notes:
    'Only nodes with "console: true" in the rig file take part; "consoleCommand"\n' +
    'replaces "dmesg -w". With --json, one JSON object per line.',
  examples: [
    "deno task consoles",
    "deno task consoles --nodes @duts --duration 10m > consoles.txt",
  ],
};

function clock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${
    String(d.getMilliseconds()).padStart(3, "0")
  }`;
}

if (import.meta.main) {
  Deno.exit(
    await runCli(SPEC, Deno.args, async (ctx) => {
      const { flags, out, json } = ctx;
      const duration = durationFlag(flags, "duration");
      const { rig, nodes: selected, close } = await ctx.selectNodes();
      const nodes = selected.filter((n) => n.console);
      if (nodes.length === 0) {
        throw new UsageError(
          `None of the selected nodes of rig "${rig.name}" has "console: true": set it in ${rig.file}`,
        );
      }
      const pad = padNames(nodes);
      const onLine = (line: Line) => {
        if (json) {
          out.out(JSON.stringify({
            time: new Date(line.time).toISOString(),
            node: line.node,
            stream: line.stream,
            text: line.text,
          }));
          return;
        }
        const head = `${clock(line.time)} [${pad(line.node)}]`;
        out.out(
          `${out.paint(colors.dim, head)} ${line.text}`,
          `${head} ${line.text}`,
        );
      };
      using interrupt = interruptSignal();
      let closing = false;
      const ended = new Map<string, RunResult>();
      try {
        await SshNode.openConsoles({ nodes, silent: true, onLine });
        if (!json) {
          out.err(
            `Consoles open: ${nodes.map((n) => n.name).join(", ")} (${
              duration ? `closing in ${flags.duration}` : "Ctrl-C to close"
            })`,
          );
        }
        // A console that ends on its own is reported at once.
        const watchers = nodes.map((n) =>
          n.consoleDone?.then((r) => {
            if (closing) return;
            ended.set(n.name, r);
            const why = `${outcome(r)}${r.error ? `: ${r.error.message}` : ""}`;
            const stderr = r.stderr.trim().split("\n").at(-1);
            out.err(
              `[${n.name}] console ended: ${why}${
                stderr && !r.error ? ` (${stderr})` : ""
              }`,
            );
          }, () => {})
        );
        // Wake on the first of: --duration, Ctrl-C, every console ended.
        const wake = new AbortController();
        const onInterrupt = () => wake.abort();
        interrupt.addEventListener("abort", onInterrupt, { once: true });
        const timer = duration !== undefined
          ? setTimeout(() => wake.abort(), duration)
          : undefined;
        Promise.all(watchers).then(() => wake.abort());
        try {
          if (!interrupt.aborted) {
            await new Promise((resolve) =>
              wake.signal.addEventListener("abort", resolve, { once: true })
            );
          }
        } finally {
          clearTimeout(timer);
          interrupt.removeEventListener("abort", onInterrupt);
        }
      } finally {
        closing = true;
        // Every stream, then every master: nothing stays on either side.
        await SshNode.closeConsoles();
        await close();
      }
      const failed = nodes.filter((n) => {
        const r = ended.get(n.name);
        return r !== undefined && !r.success;
      });
      if (!json) {
        out.err(
          `Consoles closed: ${
            nodes.length - failed.length
          }/${nodes.length} ok` +
            (failed.length
              ? `; ended early: ${failed.map((n) => n.name).join(", ")}`
              : ""),
        );
      }
      return failed.length === 0 ? 0 : 1;
    }),
  );
}
