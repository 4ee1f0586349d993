/**
 * fiwi in the scale benchmark: its command lines (the `fiwi` task's flags,
 * no central log, no state store), `fiwi close` with a count of what its
 * masters left running, whether it takes a rig file with `gateway:`, and
 * one measured push with the bytes the controller uploaded.
 *
 * @module
 */

import { carriers } from "./_proc_tree.ts";
import type { ScaleRig } from "./_scale_rig.ts";
import type { PushMeasured } from "./_scale_report.ts";
import {
  failureKinds,
  firstLines,
  fiwi,
  measureTool,
  type Tool,
} from "./_scale_tools.ts";
import { TcpReceivedSampler } from "./_tcp_bytes.ts";

/** A fiwi control dir in use: its masters may still run. */
export interface FiwiSession {
  rigFile: string;
  /** FIWI_CONTROL_DIR and XDG_STATE_HOME of every command of it. */
  env: Record<string, string>;
  /** Marks its processes (TOKEN_VAR). */
  token: string;
}

/** Sessions not closed yet: closed at the end whatever happens. */
export const openSessions: Set<FiwiSession> = new Set();

/**
 * A new session `name` on `rigFile`: its own control dir (fresh: a cold
 * start), the rig's state dir, token `fiwi<name>`; open until
 * {@linkcode closeFiwi}.
 */
export function openSession(
  rig: ScaleRig,
  name: string,
  rigFile: string,
): FiwiSession {
  const session = {
    rigFile,
    env: {
      FIWI_CONTROL_DIR: `${rig.dir}/cm-${name}`,
      XDG_STATE_HOME: `${rig.dir}/state`,
    },
    token: `fiwi${name}`,
  };
  openSessions.add(session);
  return session;
}

/** `fiwi <sub> --no-log --no-db <rest>`. */
export async function fiwiTool(
  args: string[],
  env: Record<string, string>,
): Promise<Tool> {
  // Right after the subcommand: the command line after it is the node's.
  const [sub, ...rest] = args;
  return await fiwi([sub, "--no-log", "--no-db", ...rest], env);
}

/** What names a session's masters: its control dir, in their title. */
export function marksOf(env: Record<string, string>): string[] {
  return [`${env.FIWI_CONTROL_DIR}/`];
}

/**
 * `fiwi close` for one session (timed), then what of its processes still
 * runs: reported, then killed by pid. The session is closed then.
 */
export async function closeFiwi(
  session: FiwiSession,
): Promise<{ closeS: number; leftovers: string[] }> {
  openSessions.delete(session);
  const tool = await fiwiTool(["close", "--rig", session.rigFile], session.env);
  const r = await measureTool(tool, `${session.token}-close`, 120);
  const leftovers: string[] = [];
  for (const pid of carriers(session.token, marksOf(session.env))) {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    leftovers.push(`${pid} ${cmd.replaceAll("\0", " ").slice(0, 120)}`);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  return { closeS: r.wallS, leftovers };
}

/** Whether fiwi accepts the tree rig file; the reason when not. */
export async function treeRefusal(
  rigFile: string,
  env: Record<string, string>,
): Promise<string | null> {
  const tool = await fiwi(["nodes", "--rig", rigFile, "-w", "n1"], env);
  const out = await new Deno.Command(tool.argv[0], {
    args: tool.argv.slice(1),
    env: tool.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.success) return null;
  return new TextDecoder().decode(out.stderr).trim().split("\n")[0];
}

/** Write `mb` MiB of random bytes to `path`. */
export async function writeRandomFile(path: string, mb: number): Promise<void> {
  using f = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const chunk = new Uint8Array(2 ** 20);
  for (let i = 0; i < mb; i++) {
    for (let at = 0; at < chunk.length; at += 65536) {
      crypto.getRandomValues(chunk.subarray(at, at + 65536));
    }
    await f.write(chunk);
  }
}

/** Options of {@linkcode pushOnce}. */
export interface PushOptions {
  mode: "flat" | "tree";
  rigFile: string;
  file: string;
  mb: number;
  /** Push to n1…n<nodes>. */
  nodes: number;
  fanout: number;
  limitS: number;
}

/**
 * `fiwi push` of `file` from a fresh control dir, then `fiwi close`. What
 * the controller uploaded is what its connections delivered (TCP payload
 * the servers received, sampled until the masters closed): to the nodes
 * (flat), to the gateways (tree).
 */
export async function pushOnce(
  rig: ScaleRig,
  o: PushOptions,
): Promise<PushMeasured> {
  const session = openSession(rig, `push-${o.mode}`, o.rigFile);
  const received = new TcpReceivedSampler(rig.port);
  const tool = await fiwiTool([
    "push",
    "--rig",
    o.rigFile,
    "-w",
    `n[1-${o.nodes}]`,
    "-f",
    String(o.fanout),
    o.file,
    `${rig.dropDir}/${o.mode}`,
  ], session.env);
  const r = await measureTool(
    tool,
    session.token,
    o.limitS,
    [],
    marksOf(session.env),
  );
  // Sampled until the masters close: their connections carried it all.
  const closed = await closeFiwi(session);
  const got = await received.stop();
  const gw = got.bytes("127.2.");
  const nodes = got.bytes("127.1.");
  const controller = o.mode === "flat" ? nodes : gw;
  return {
    wallS: r.wallS,
    cpuS: r.cpuS,
    peakSsh: r.peakSsh,
    peakRssMb: r.peakRssMb,
    code: r.code,
    uploadedMb: controller / 2 ** 20,
    copies: controller / (o.mb * 2 ** 20),
    gatewaysReceivedMb: gw / 2 ** 20,
    nodesReceivedMb: nodes / 2 ** 20,
    connections: got.connections,
    messages: r.code === 0 ? [] : failureKinds(r.stderr),
    stderrHead: r.code === 0 ? [] : firstLines(r.stderr),
    leftovers: closed.leftovers,
  };
}
