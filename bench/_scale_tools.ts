/**
 * The contenders of the scale benchmark as command lines (pdsh, clush flat
 * and tree, fiwi flat and tree), the rig and topology files they read, and
 * one measured run of a tool: wall time, CPU of the tool and all its
 * descendants, peak processes and RSS of its process tree, and the nodes
 * that answered "ok".
 *
 * @module
 */

import { gatewayOf, type ScaleRig } from "./_scale_rig.ts";
import { shellQuote } from "../src/transport/quote.ts";
import { wrapCommand } from "../src/transport/wrapper.ts";
import { TOKEN_VAR, TreeSampler, type TreeStats } from "./_proc_tree.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** A command to measure. */
export interface Tool {
  /** argv, the program first. */
  argv: string[];
  /** Environment on top of this process's. */
  env: Record<string, string>;
}

/** The nodes as a pdsh / clush host list: one bracket range per /24. */
export function hostList(addresses: string[]): string {
  const byNet = new Map<string, number[]>();
  for (const a of addresses) {
    const at = a.lastIndexOf(".");
    const net = a.slice(0, at);
    byNet.set(net, [...(byNet.get(net) ?? []), Number(a.slice(at + 1))]);
  }
  return [...byNet].map(([net, last]) => {
    const lo = Math.min(...last);
    const hi = Math.max(...last);
    // Contiguous by construction (nodeAddress); a gap would need a list.
    if (hi - lo + 1 !== last.length) {
      return last.map((b) => `${net}.${b}`).join(",");
    }
    return lo === hi ? `${net}.${lo}` : `${net}.[${lo}-${hi}]`;
  }).join(",");
}

/** `pdsh -R ssh -f F` running `cmd` on every node. */
export function pdsh(rig: ScaleRig, fanout: number, cmd: string): Tool {
  return {
    argv: [
      "pdsh",
      "-R",
      "ssh",
      "-f",
      String(fanout),
      "-l",
      rig.user,
      "-w",
      hostList(rig.nodes),
      cmd,
    ],
    env: { PDSH_SSH_ARGS_APPEND: `-F ${rig.sshConfig}` },
  };
}

/**
 * `clush -f F` running `cmd` on every node; with `topology`, in tree mode
 * through the gateways it names (their ClusterShell gateway module runs
 * with this machine's python3, logging into the rig's dir).
 */
export function clush(
  rig: ScaleRig,
  fanout: number,
  cmd: string,
  topology?: string,
): Tool {
  return {
    argv: [
      "clush",
      ...(topology ? [`--topology=${topology}`] : []),
      "-f",
      String(fanout),
      "-l",
      rig.user,
      "-o",
      `-F ${rig.sshConfig}`,
      "-w",
      hostList(rig.nodes),
      cmd,
    ],
    env: topology
      ? {
        CLUSTERSHELL_GW_PYTHON_EXECUTABLE: "/usr/bin/python3",
        CLUSTERSHELL_GW_LOG_DIR: `${rig.dir}/gwlog`,
      }
      : {},
  };
}

/**
 * The floor of a warm run: one plain `ssh` per node through the masters in
 * `controlDir` (a warm fiwi's, same `%C` socket names), `xargs -P F`
 * keeping F of them running, `cmd` prefixed with the node's address as
 * pdsh prints it. No wrapper, no lifeline, no parsing: what any tool that
 * starts one ssh client per command pays at least. With `lifeline`, the
 * command goes in fiwi's remote wrapper (src/transport/wrapper.ts), whose
 * watcher costs each node two forks and two execs: the floor of a warm run
 * that keeps fiwi's promise that a stopped run leaves nothing behind.
 */
export function sshMux(
  rig: ScaleRig,
  fanout: number,
  controlDir: string,
  cmd: string,
  { lifeline = false }: { lifeline?: boolean } = {},
): Tool {
  const ssh = [
    "ssh",
    "-F",
    rig.sshConfig,
    "-o",
    "ControlMaster=no",
    "-o",
    `ControlPath=${controlDir}/%C`,
    "-o",
    "BatchMode=yes",
    "-p",
    String(rig.port),
    "-l",
    rig.user,
  ];
  // xargs -I puts the address in the remote command too, one printf: one
  // write, which the other clients' output cannot split.
  const remote = `printf "%s: %s\\n" @ "$(${cmd})"`;
  const command = `${ssh.map(shellQuote).join(" ")} @ ${
    shellQuote(lifeline ? wrapCommand(remote) : remote)
  }`;
  // With the lifeline, every ssh's stdin is a fifo a sleep holds open (the
  // wrapper's watcher ends the command at EOF): xargs -a leaves the
  // clients its own stdin.
  const script = lifeline
    ? 'd=$(mktemp -d) && mkfifo "$d/p" && printf "%s\\n" "$@" >"$d/l" || exit 1; ' +
      'sleep 86400 >"$d/p" & h=$!; ' +
      `xargs -a "$d/l" -P "$0" -I@ ${command} <"$d/p"; ` +
      's=$?; kill $h; rm -rf "$d"; exit $s'
    : `printf "%s\\n" "$@" | xargs -P "$0" -I@ ${command}`;
  // FIWI_CONTROL_DIR only marks the masters for the sampler, as for fiwi.
  return {
    argv: ["sh", "-c", script, String(fanout), ...rig.nodes],
    env: { FIWI_CONTROL_DIR: controlDir },
  };
}

/**
 * A ClusterShell topology file: this host at the root, the gateways below
 * it, each in front of its block of nodes (the blocks of the fiwi tree).
 */
export function clushTopology(rig: ScaleRig, hostname: string): string {
  const lines = ["[routes]", `${hostname}: ${hostList(rig.gateways)}`];
  rig.gateways.forEach((gw, g) => {
    const mine = rig.nodes.filter((_, i) =>
      gatewayOf(i, rig.nodes.length, rig.gateways.length) === g
    );
    lines.push(`${gw}: ${hostList(mine)}`);
  });
  return lines.join("\n") + "\n";
}

/**
 * A fiwi rig file: nodes `n1`…`nN`; with `tree`, gateways `g1`…`gG` as
 * nodes too and every node's `gateway:` naming its gateway.
 */
export function fiwiRigFile(rig: ScaleRig, tree: boolean): string {
  const g = rig.gateways.length;
  const lines = [
    "defaults:",
    `  user: ${rig.user}`,
    `  port: ${rig.port}`,
    `  sshConfig: ${rig.sshConfig}`,
    "rigs:",
    "  scale:",
    "    nodes:",
  ];
  if (tree) rig.gateways.forEach((a, i) => lines.push(`      g${i + 1}: ${a}`));
  rig.nodes.forEach((a, i) =>
    lines.push(
      tree
        ? `      n${i + 1}: { host: ${a}, gateway: g${
          gatewayOf(i, rig.nodes.length, g) + 1
        } }`
        : `      n${i + 1}: ${a}`,
    )
  );
  return lines.join("\n") + "\n";
}

/** The `deno run` flags of the `fiwi` task, from deno.json. */
async function fiwiFlags(): Promise<string[]> {
  const tasks: Record<string, string> = JSON.parse(
    await Deno.readTextFile(`${ROOT}deno.json`),
  ).tasks;
  const m = /^deno run (.+) scripts\/fiwi\.ts$/.exec(tasks.fiwi);
  if (!m) {
    throw new Error(`task "fiwi" is not "deno run <flags> scripts/fiwi.ts"`);
  }
  return m[1].split(" ");
}

/** `fiwi <args>` as the `fiwi` task runs it. */
export async function fiwi(
  args: string[],
  env: Record<string, string>,
): Promise<Tool> {
  return {
    argv: [
      Deno.execPath(),
      "run",
      "--config",
      `${ROOT}deno.json`,
      ...await fiwiFlags(),
      `${ROOT}scripts/fiwi.ts`,
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
  };
}

/** One measured run of a tool. */
export interface ToolRun extends TreeStats {
  /** Wall seconds. */
  wallS: number;
  /** CPU seconds, user + sys: reaped tree (getrusage) + escaped processes. */
  cpuS: number;
  /** Exit code (124 or 137: the time limit killed it). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Tools measured now, by the pid of their `timeout` (for Ctrl-C). */
const running = new Set<number>();

/** SIGTERM every running tool (`timeout` passes it to its group). */
export function stopTools(): void {
  for (const pid of running) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    if (text.length < 8 * 2 ** 20) text += chunk;
  }
  return text;
}

/**
 * Run `tool` to its end under `timeout -k 5 <limitS>` and `/usr/bin/time`,
 * its processes marked with `token` and sampled (with those of `alsoTokens`
 * and those whose command line holds one of `marks`: masters, also those
 * an earlier run left, whose work this run uses).
 */
export async function measureTool(
  tool: Tool,
  token: string,
  limitS: number,
  alsoTokens: string[] = [],
  marks: string[] = [],
): Promise<ToolRun> {
  const stats = await Deno.makeTempFile({ prefix: "fiwi_scale_time_" });
  try {
    const sampler = new TreeSampler([token, ...alsoTokens], marks);
    const t = performance.now();
    const child = new Deno.Command("timeout", {
      args: [
        "-k",
        "5",
        String(limitS),
        "/usr/bin/time",
        "-f",
        "%U %S",
        "-o",
        stats,
        "--",
        ...tool.argv,
      ],
      env: { ...tool.env, [TOKEN_VAR]: token },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    sampler.root = child.pid;
    running.add(child.pid);
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout),
      readAll(child.stderr),
      child.status,
    ]).finally(() => running.delete(child.pid));
    const wallS = (performance.now() - t) / 1000;
    const tree = await sampler.stop();
    const [user, sys] = (await Deno.readTextFile(stats)).trim().split("\n")
      .at(-1)!.split(" ").map(Number);
    const reaped = Number.isFinite(user + sys) ? user + sys : NaN;
    return {
      ...tree,
      wallS,
      cpuS: reaped + tree.escapedCpuS,
      code: status.code,
      stdout,
      stderr,
    };
  } finally {
    await Deno.remove(stats).catch(() => {});
  }
}

/** The names among `names` with a line "<name>: ok" in `stdout`. */
export function okNodes(stdout: string, names: string[]): Set<string> {
  const wanted = new Set(names);
  const ok = new Set<string>();
  for (const m of stdout.matchAll(/^(\S+?)\s*:\s+ok$/gm)) {
    if (wanted.has(m[1])) ok.add(m[1]);
  }
  return ok;
}

/** The first `count` non-empty lines of `stderr`, cut at 400 characters. */
export function firstLines(stderr: string, count = 8): string[] {
  return stderr.split("\n").filter((l) => l.trim()).slice(0, count)
    .map((l) => l.slice(0, 400));
}

/**
 * The distinct messages of `stderr` (addresses and numbers folded to `#`,
 * node names to `<node>`), most frequent first, with their counts.
 */
export function failureKinds(stderr: string, limit = 6): string[] {
  const counts = new Map<string, number>();
  for (const line of stderr.split("\n")) {
    const l = line.trim();
    if (!l) continue;
    const kind = l.replace(/\b127\.\d+\.\d+\.\d+\b/g, "<addr>")
      .replace(/\b[ng]\d+\b/g, "<node>").replace(/\d+/g, "#").slice(0, 200);
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, limit)
    .map(([k, n]) => `${n} x ${k}`);
}
