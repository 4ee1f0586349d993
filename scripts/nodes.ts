/**
 * `fiwi nodes PATTERN`: expand a clush-style node set against the rig, the
 * way `nodeset -e` / `nodeset -f` do: names, `@group`, globs, ranges with
 * padding and steps, hosts outside the rig (`[user@]host[:port]`), and the
 * operators `,` `!` `&` `^` read left to right. Prints one name a line, one
 * folded set (`--fold`; no `-f`, which is fan-out everywhere else), or
 * NDJSON (`--json`). Nothing is contacted, and no log is written unless
 * `--log FILE` asks for one.
 *
 * @module
 */

import type { Rig, SshNode } from "../mod.ts";
import { foldNames } from "../nodeset.ts";
import {
  type CliContext,
  type CliSpec,
  optionsOf,
  runCli,
  UsageError,
} from "./_cli.ts";

export const SPEC: CliSpec = {
  name: "nodes",
  summary:
    "Expand a node set against the rig (names, @groups, ranges, hosts) without contacting any node.",
  positional: "[PATTERN...]",
  connects: false,
  options: [
    {
      name: "fold",
      suggestedFor: "f",
      help: "print one folded node set (n[01-03]) instead of a name a line",
    },
  ],
  notes: "PATTERN items: name, @group, glob (dut*), range (n[01-64/8], " +
    "dut[1-3,7]), all, [user@]host[:port] ([::1]:2222) for a host outside the rig.\n" +
    "Operators, read left to right: , union  ! difference  & intersection  ^ either but not both.\n" +
    "Several PATTERNs are a union (like several -w); without one, -w or all. -x, --hostfile\n" +
    "and --pick apply as in every subcommand. With --json, one object per node (node, host,\n" +
    "user, port, transport, relay, groups, adHoc), then a summary.",
  examples: [
    "fiwi nodes 'n[01-64/8]'",
    "fiwi nodes --fold '@duts&@ap'",
    "fiwi nodes -w ^hosts.txt -x @broken --pick 2",
    "fiwi nodes 'all!@duts,root@10.0.0.5:2222'",
    "fiwi nodes --json --rig lab.yaml @duts",
  ],
};

/** Options that take the next word as their value. */
const VALUED = new Set(
  optionsOf(SPEC).filter((o) => o.arg).flatMap((o) => [
    `--${o.name}`,
    ...(o.short ? [`-${o.short}`] : []),
  ]),
);

/**
 * Options may follow the pattern (`fiwi nodes @duts -f`): move them in
 * front, since the shared parser stops at the first positional word. A
 * pattern never starts with "-" (a host that does is refused anyway).
 */
export function optionsFirst(args: readonly string[]): string[] {
  const options: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      words.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      words.push(arg);
      continue;
    }
    options.push(arg);
    if (VALUED.has(arg) && i + 1 < args.length) options.push(args[++i]);
  }
  return words.length ? [...options, "--", ...words] : options;
}

/** The groups of each rig node, by name. */
function groupsByNode(rig: Rig): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [group, members] of rig.groups) {
    for (const name of members) {
      const list = out.get(name);
      if (list) list.push(group);
      else out.set(name, [group]);
    }
  }
  return out;
}

/** One node as a JSON record. */
function nodeRecord(
  node: SshNode,
  groups: readonly string[] | undefined,
  adHoc: boolean,
): Record<string, unknown> {
  return {
    node: node.name,
    host: node.host,
    user: node.user,
    port: node.port ?? null,
    transport: node.transport,
    relay: node.relay ?? null,
    groups: groups ?? [],
    adHoc,
  };
}

async function expand(ctx: CliContext): Promise<number> {
  const { flags, lists, rest, out, json } = ctx;
  if (rest.length > 0 && lists.nodes.length > 0) {
    throw new UsageError(
      'Give the node set either as PATTERN or with "--nodes", not both',
    );
  }
  const { rig, nodes } = await ctx.selectNodes(
    rest.length > 0 ? { nodes: rest } : {},
  );
  const names = nodes.map((n) => n.name);
  if (json) {
    const groups = groupsByNode(rig);
    const inRig = new Set(rig.nodes);
    for (const n of nodes) {
      out.out(
        JSON.stringify(nodeRecord(n, groups.get(n.name), !inRig.has(n))),
      );
    }
    out.out(JSON.stringify({
      summary: { rig: rig.name, count: names.length, folded: foldNames(names) },
    }));
  } else if (flags.fold) {
    out.out(foldNames(names));
  } else {
    for (const name of names) out.out(name);
  }
  return 0;
}

/** `fiwi nodes`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, optionsFirst(args), expand);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
