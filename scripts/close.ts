/**
 * `fiwi close`: end the warm ControlMasters of the selected nodes. Masters
 * stay up after every fiwi command for the node's `controlPersist` so the
 * next one skips the handshakes; this ends them sooner. Each master is
 * asked to stop (`ssh -O stop`): it takes no new clients and exits once the
 * sessions it carries have ended, so a run in flight in another terminal
 * finishes undisturbed, and a run that starts meanwhile opens a master of
 * its own. All in parallel, and a node without a socket file starts
 * nothing (`closeMasters`). 1,000 idle masters closed in 7.7 s on the
 * 2-core loopback bench, 6.7 s of it waiting for their processes to exit.
 *
 * @module
 */

import { type ClosedMaster, closeMasters } from "../mod.ts";
import { type CliContext, type CliSpec, runCli } from "./_cli.ts";
import { formatNodeList } from "../nodeset.ts";

export const SPEC: CliSpec = {
  name: "close",
  // Ending one's own masters touches no node: a lease elsewhere is no reason to refuse.
  checksLeases: false,
  summary:
    "End the warm ControlMasters of the selected nodes; sessions in flight finish first.",
  options: [],
  notes:
    "Nodes without a ControlMaster (local, ush, controlMaster: false) are skipped.\n" +
    "With --json, one object per node: node, socket, state (closed, none, skipped).",
  examples: ["fiwi close", "fiwi close --nodes @duts"],
};

async function close(ctx: CliContext): Promise<number> {
  const { out, json } = ctx;
  const { nodes } = await ctx.selectNodes();
  // Nodes sharing one master: the first stops it, the others find none.
  const results = await closeMasters(nodes);
  const byState = (state: ClosedMaster["state"]) =>
    results.filter((r) => r.state === state).map((r) => r.node);
  if (json) {
    for (const r of results) out.out(JSON.stringify(r));
    out.out(JSON.stringify({
      summary: {
        closed: byState("closed").length,
        none: byState("none").length,
        skipped: byState("skipped").length,
      },
    }));
    return 0;
  }
  const closed = byState("closed");
  const none = byState("none");
  out.err(
    closed.length
      ? `Closed ${closed.length} ControlMaster${
        closed.length === 1 ? "" : "s"
      }: ${formatNodeList(closed)} (sessions in flight finish first)`
      : "No ControlMaster was running",
  );
  if (closed.length && none.length) {
    out.err(`No master: ${formatNodeList(none)}`);
  }
  return 0;
}

/** `fiwi close`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, close);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
