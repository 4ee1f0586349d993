/**
 * `fiwi consoles`: open the console stream of every selected node with
 * `console: true` (new kernel messages, `dmesg -W`, unless the node's
 * `consoleCommand` or `--cmd` says otherwise), through
 * `SshNode.openConsoles()` (stale console commands are killed first; ssh
 * nodes stream over their ControlMaster), and print each line as
 * `time [node] line`, the time in ISO 8601 with its offset. `--duration`
 * or Ctrl-C closes them all; so does every console ending on its own.
 *
 * @module
 */

import { describeOutcome, type Line, type RunResult, SshNode } from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import { LEASE_NOTE, LEASE_OPTION } from "./_lease.ts";
import { colors, isoLocal, padNames } from "./_output.ts";
import { closeSerialConsoles, openSerialConsoles } from "./_serial.ts";

/** The library's console command: the whole ring buffer, then new messages. */
const LIBRARY_DEFAULT = "dmesg -w";
/** What `fiwi consoles` runs instead: new messages only (util-linux 2.37+). */
export const NEW_MESSAGES = "dmesg -W";

export const SPEC: CliSpec = {
  name: "consoles",
  summary:
    "Stream the kernel console (new dmesg messages) of every console node, with timestamps.",
  options: [
    {
      name: "cmd",
      short: "c",
      arg: "CMD",
      help:
        `console command on every node (default: its consoleCommand, else ${NEW_MESSAGES})`,
    },
    {
      name: "duration",
      short: "d",
      arg: "DURATION",
      help: "close the consoles after DURATION (default: at Ctrl-C)",
    },
    LEASE_OPTION,
  ],
  notes:
    'Only nodes with "console: true" in the rig file take part. The default shows new\n' +
    `kernel messages only (${NEW_MESSAGES}); a node's "consoleCommand" or --cmd replaces it\n` +
    '(--cmd "dmesg -w" replays the ring buffer first). With --json, one JSON object per line.\n' +
    LEASE_NOTE,
  examples: [
    "fiwi consoles",
    "fiwi consoles --nodes @duts --duration 10m > consoles.txt",
    "fiwi consoles --cmd 'journalctl -kf -n0'",
  ],
};

/** One open console stream: a node's kernel console or its serial port. */
interface ConsoleEntry {
  /** How the summaries name it: the node, or "node (serial)". */
  label: string;
  /** The node its lines carry. */
  name: string;
  /** A serial port, not the kernel console command. */
  serial: boolean;
  /** Settles when the stream has ended. */
  done: Promise<RunResult> | undefined;
}

/** The node, with `--cmd` or the new-messages default as its console command. */
function withConsoleCommand(node: SshNode, cmd: string | undefined): SshNode {
  const wanted = cmd ??
    (node.consoleCommand === LIBRARY_DEFAULT ? NEW_MESSAGES : undefined);
  return wanted === undefined || wanted === node.consoleCommand
    ? node
    : node.with({ consoleCommand: wanted });
}

async function consoles(ctx: CliContext): Promise<number> {
  const { flags, out, json, interrupt } = ctx;
  const duration = durationFlag(flags, "duration");
  const cmd = flags.cmd as string | undefined;
  if (cmd !== undefined && cmd.trim() === "") {
    throw new UsageError('Invalid --cmd "": give the console command to run');
  }
  const { rig, nodes: selected } = await ctx.selectNodes({
    // Only the nodes it streams from: a node without a console is not touched.
    touches: (n, r) => n.console || r.serialPorts.has(n.name),
    hold: durationFlag(flags, "lease"),
  });
  const nodes = selected.filter((n) => n.console).map((n) =>
    withConsoleCommand(n, cmd)
  );
  // Nodes with `serial:` also stream their serial port, read on its via node.
  const serialNodes = selected.filter((n) => rig.serialPorts.has(n.name));
  if (nodes.length === 0 && serialNodes.length === 0) {
    throw new UsageError(
      `None of the selected nodes of rig "${rig.name}" has "console: true": set it in ${rig.file}`,
    );
  }
  const pad = padNames([...nodes, ...serialNodes]);
  const onLine = (line: Line) => {
    if (json) {
      out.out(JSON.stringify({
        time: isoLocal(line.time),
        node: line.node,
        stream: line.stream,
        text: line.text,
      }));
      return;
    }
    const head = `${isoLocal(line.time)} [${pad(line.node)}]`;
    out.out(
      `${out.paint(colors.dim, head)} ${line.text}`,
      `${head} ${line.text}`,
    );
  };
  let closing = false;
  let serial: ReturnType<typeof openSerialConsoles> = [];
  // Every stream, kernel and serial, by its label: a node may have both.
  let streams: ConsoleEntry[] = [];
  const ended = new Map<string, RunResult>();
  try {
    await SshNode.openConsoles({ nodes, silent: true, onLine });
    serial = openSerialConsoles(rig, serialNodes, onLine);
    streams = [
      ...nodes.map((n) => ({
        label: n.name,
        name: n.name,
        serial: false,
        done: n.consoleStream?.done,
      })),
      ...serial.map((s) => ({
        label: `${s.node} (serial)`,
        name: s.node,
        serial: true,
        done: s.done,
      })),
    ];
    if (!json) {
      out.err(
        `Consoles open: ${streams.map((s) => s.label).join(", ")} (${
          duration ? `closing in ${flags.duration}` : "Ctrl-C to close"
        })`,
      );
    }
    // A console that ends on its own is reported at once.
    const watchers = streams.map((n) =>
      n.done?.then((r) => {
        if (closing) return;
        ended.set(n.label, r);
        const why = `${describeOutcome(r).key}${
          r.error ? `: ${r.error.message}` : ""
        }`;
        const stderr = r.stderr.trim().split("\n").at(-1);
        out.err(
          `[${n.name}] ${
            n.serial ? "serial console" : "console"
          } ended: ${why}${stderr && !r.error ? ` (${stderr})` : ""}`,
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
    // Every stream: nothing stays on either side (masters stay warm).
    await Promise.all(nodes.map((n) => n.closeConsole()));
    await closeSerialConsoles(serial);
  }
  const failed = streams.filter((s) => {
    const r = ended.get(s.label);
    return r !== undefined && !r.success;
  });
  if (!json) {
    out.err(
      `Consoles closed: ${
        streams.length - failed.length
      }/${streams.length} ok` +
        (failed.length
          ? `; ended early: ${failed.map((s) => s.label).join(", ")}`
          : ""),
    );
  }
  // Ctrl-C is how consoles end; SIGTERM and SIGHUP say so in the code.
  if (interrupt.aborted && interrupt.signalName !== "SIGINT") {
    return interrupt.exitCode ?? 143;
  }
  return failed.length === 0 ? 0 : 1;
}

/** `fiwi consoles`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, consoles);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
