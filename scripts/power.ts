/**
 * `fiwi power on|off|cycle|status`: switch the selected nodes with the
 * switch of their `power:` entry (src/hardware/power.ts), or read the state
 * back, and with `--wait` wait until each node switched on answers again.
 * Exit status 0 only when every node reached the asked state.
 *
 * @module
 */

import {
  DEFAULT_OFF_TIME,
  DEFAULT_POWER_TIMEOUT,
  type PowerAction,
  type PowerResult,
  type SshNode,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  runCli,
  UsageError,
} from "./_cli.ts";
import { colors, humanMs, padNames } from "./_output.ts";

const ACTIONS: readonly PowerAction[] = ["on", "off", "cycle", "status"];

export const SPEC: CliSpec = {
  name: "power",
  summary:
    "Switch nodes on, off or through a power cycle with the switch named in their power: entry.",
  positional: "on|off|cycle|status",
  options: [
    {
      name: "wait",
      help: "after on or cycle, wait until each node answers again",
    },
    {
      name: "off-time",
      arg: "DURATION",
      help: `how long a cycle keeps the power off (default ${
        DEFAULT_OFF_TIME / 1000
      }s)`,
    },
    {
      name: "timeout",
      arg: "DURATION",
      help: `how long --wait waits for each node (default ${
        DEFAULT_POWER_TIMEOUT / 60_000
      }m), and the longest any tool call may run (its own bound, 15s to 30s, if shorter)`,
    },
  ],
  notes:
    'Each selected node needs "power: { via, tool, id, port }" in the rig file; the tool\n' +
    "(uhubctl, ykushcmd, usbrelay or sispmctl) runs on the via node. Nodes behind one\n" +
    "switch are switched one at a time; a tool call that runs over its bound is stopped and\n" +
    "the node fails. With --json, one JSON object per node, then a summary.",
  examples: [
    "fiwi power status -w @duts",
    "fiwi power cycle -w dut1 --wait --off-time 5s",
  ],
};

function parseAction(rest: string[]): PowerAction {
  const [action, extra] = rest;
  if (action === undefined) {
    throw new UsageError(
      'Missing action: give one of "on", "off", "cycle", "status"',
    );
  }
  if (!ACTIONS.includes(action as PowerAction)) {
    throw new UsageError(
      `Unknown action "${action}": use "on", "off", "cycle" or "status"`,
    );
  }
  if (extra !== undefined) {
    throw new UsageError(`Unexpected argument "${extra}": see --help`);
  }
  return action as PowerAction;
}

function describe(r: PowerResult): string {
  if (!r.success) return `FAILED (${r.state}): ${r.error?.message ?? ""}`;
  const after = r.reachableAfterMs !== null
    ? `, answering after ${humanMs(r.reachableAfterMs)}`
    : "";
  return `${r.state}${after}`;
}

/** Prints each node's result as it is final, with a progress line on a terminal. */
function printer(ctx: CliContext, nodes: SshNode[]) {
  const { out, json } = ctx;
  const pad = padNames(nodes);
  let done = 0;
  let failed = 0;
  out.progress(0, 0, nodes.length);
  return (r: PowerResult) => {
    done++;
    if (!r.success) failed++;
    if (json) {
      out.out(JSON.stringify({ ...r, error: r.error?.message ?? null }));
    } else {
      const text = describe(r);
      out.out(
        `${pad(r.node)}  ${r.success ? text : out.paint(colors.red, text)}`,
        `${pad(r.node)}  ${text}`,
      );
    }
    out.progress(done, failed, nodes.length);
  };
}

function summary(ctx: CliContext, results: PowerResult[]): number {
  ctx.out.clearProgress();
  const ok = results.filter((r) => r.success).length;
  if (ctx.json) {
    ctx.out.out(JSON.stringify({ summary: { nodes: results.length, ok } }));
  } else {
    ctx.out.err(`${ok}/${results.length} nodes ok`);
  }
  return ok === results.length ? 0 : 1;
}

/** The `power` subcommand; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  // `power on -w dut`: options may follow the action, which the common
  // parser would take for the start of positional arguments.
  const lead = args.length > 0 && !args[0].startsWith("-") ? 1 : 0;
  const ordered = [...args.slice(lead), ...args.slice(0, lead)];
  return await runCli(SPEC, ordered, async (ctx) => {
    const action = parseAction(ctx.rest);
    const offTime = durationFlag(ctx.flags, "off-time");
    const timeout = durationFlag(ctx.flags, "timeout");
    const { rig, nodes } = await ctx.selectNodes();
    const results = await rig.power(nodes, action, {
      wait: ctx.flags.wait === true,
      offTime,
      timeout,
      signal: ctx.interrupt,
      onResult: printer(ctx, nodes),
    });
    ctx.state?.power(results);
    const code = summary(ctx, results);
    return ctx.interrupt.aborted ? (ctx.interrupt.exitCode ?? 130) : code;
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
