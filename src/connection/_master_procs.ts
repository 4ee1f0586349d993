/**
 * The local processes of ControlMasters: found by the title OpenSSH gives a
 * master (`ssh: <control path> [mux]`), looked at, signalled and waited
 * for by pid, and sent requests by socket alone; and the ending of a
 * replaced master.
 * Everything goes through `sh` (`ps`, `kill`): a script may run ssh, sh
 * and setsid only, Deno.kill needs more, and Deno reads /proc only with
 * --allow-all.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { type HelperResult, runHelper } from "../process/spawn.ts";

const log = getLogger(["fiwi", "pool"]);

/** One line of `ps`: a process, its state letter and its command line. */
export interface ProcessRow {
  /** Pid. */
  pid: number;
  /** First letter of its `ps` state (R, S, T, Z …). */
  stat: string;
  /** Its command line, or the title it set. */
  args: string;
}

/** Every process of this machine, or null when `ps` failed. */
export async function processTable(): Promise<ProcessRow[] | null> {
  const out = await runHelper(
    ["sh", "-c", "ps -A -o pid= -o stat= -o args="],
    5000,
  );
  if (out.code !== 0) return null;
  const rows: ProcessRow[] = [];
  for (const line of out.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m) rows.push({ pid: Number(m[1]), stat: m[2][0], args: m[3] });
  }
  return rows;
}

/** The title OpenSSH gives the master of `socket`. */
export function masterTitle(socket: string): string {
  return `ssh: ${socket} [mux]`;
}

/**
 * Pids of the live (not zombie) masters titled for each of `sockets`, from
 * one `ps`: usually one each; more when a master was replaced and the old
 * one still runs.
 */
export async function mastersBySocket(
  sockets: Iterable<string>,
): Promise<Map<string, number[]>> {
  const wanted = new Set(sockets);
  const found = new Map<string, number[]>();
  const rows = await processTable();
  for (const row of rows ?? []) {
    const m = /^ssh: (.+) \[mux\]$/.exec(row.args);
    if (!m || !wanted.has(m[1]) || row.stat === "Z") continue;
    found.set(m[1], [...(found.get(m[1]) ?? []), row.pid]);
  }
  return found;
}

/**
 * Open descriptors of an idle master on Linux: /dev/null three times, its
 * connection, its listening socket. One more means a session, a mux
 * client or a forwarding.
 */
const IDLE_MASTER_FDS = 5;

/**
 * Those of `pids` that are idle masters (see {@linkcode IDLE_MASTER_FDS}),
 * counted from /proc by one `sh` with its builtins alone. Empty where
 * /proc cannot tell (not Linux): every master is then taken as busy.
 */
export async function idleMasters(
  pids: readonly number[],
): Promise<Set<number>> {
  const idle = new Set<number>();
  if (pids.length === 0) return idle;
  const list = pids.map((p) => String(Math.trunc(p))).join(" ");
  const script = `for p in ${list}; do [ -d /proc/$p/fd ] || continue; ` +
    `set -- /proc/$p/fd/*; echo "$p $#"; done`;
  const out = await runHelper(["sh", "-c", script], 10_000);
  for (const line of out.stdout.split("\n")) {
    const [pid, fds] = line.split(" ").map(Number);
    if (pid && fds === IDLE_MASTER_FDS) idle.add(pid);
  }
  return idle;
}

/** How often {@linkcode killAndWait} looks again, in ms. */
const EXIT_POLL_MS = 20;

/**
 * Send `signal` to `pids`, then wait (at most `timeoutMs`, one `sh`) until
 * none of them runs any more. Resolves true when all are gone. A pid that
 * is already gone is fine. Each round reads /proc/<pid>/stat of the pids
 * still running with `sh` builtins alone: a `ps` (and four more processes)
 * every round over 1,000 exiting masters cost more CPU than the masters
 * need to exit, on a machine already busy with their connections ending.
 */
export async function killAndWait(
  pids: readonly number[],
  signal: "TERM" | "KILL" | null,
  timeoutMs: number,
): Promise<boolean> {
  if (pids.length === 0) return true;
  const list = pids.map((p) => String(Math.trunc(p))).join(" ");
  const rounds = Math.max(1, Math.ceil(timeoutMs / EXIT_POLL_MS));
  // A zombie's state is Z (kill -0 would succeed for it); a pid with no
  // stat is gone. Without /proc (not Linux), kill -0 it is.
  const script = `${signal ? `kill -${signal} ${list} 2>/dev/null; ` : ""}` +
    `[ -r /proc/$$/stat ] && proc=1 || proc=; ` +
    `left="${list}"; i=0; while :; do next=; for p in $left; do s=; ` +
    `if [ "$proc" ]; then { read -r _ _ s _ </proc/$p/stat; } 2>/dev/null; ` +
    `else kill -0 $p 2>/dev/null && s=R; fi; ` +
    `[ -n "$s" ] && [ "$s" != Z ] && next="$next $p"; done; ` +
    `[ -z "$next" ] && exit 0; [ $i -ge ${rounds} ] && exit 1; ` +
    `left=$next; sleep ${EXIT_POLL_MS / 1000}; i=$((i+1)); done`;
  const out = await runHelper(["sh", "-c", script], timeoutMs + 5000);
  return out.code === 0;
}

/**
 * `op` to the master on `socket`, by one ssh with no config (`-F
 * /dev/null`, `-S`): the request goes to the socket alone, so nothing
 * about the node is needed.
 */
export function socketRequest(
  socket: string,
  op: "stop" | "check",
): Promise<HelperResult> {
  return runHelper(
    [
      "ssh",
      "-F",
      "/dev/null",
      "-S",
      socket.replaceAll("%", "%%"),
      "-O",
      op,
      "--",
      "fiwi-master",
    ],
    10_000,
  );
}

/** A master's process, as `ps` shows it. */
export interface MasterProcess {
  /** Its pid; null when no process could be named. */
  pid: number | null;
  /**
   * "stopped" (state T or t), "gone" (the pid is not there, or a zombie),
   * "running" (anything else), "unknown" (`ps` failed, or no pid).
   */
  state: "stopped" | "gone" | "running" | "unknown";
}

/**
 * Look at the master of `socket`: the process `pid` (the one a check
 * reported), or for a master this process never checked (one a previous
 * fiwi left warm) the one OpenSSH titled `ssh: <control path> [mux]`.
 */
export async function lookAt(
  socket: string,
  pid: number | null,
): Promise<MasterProcess> {
  const rows = await processTable();
  if (!rows) return { pid, state: "unknown" };
  const title = masterTitle(socket);
  let byTitle: MasterProcess | null = null;
  for (const row of rows) {
    const found: MasterProcess = {
      pid: row.pid,
      state: "TtZX".includes(row.stat)
        ? (row.stat === "T" || row.stat === "t" ? "stopped" : "gone")
        : "running",
    };
    if (found.pid === pid && found.state !== "gone") return found;
    if (row.args.startsWith(title)) byTitle = found;
  }
  // The pid a check reported is gone: whoever holds the socket now.
  return byTitle ?? { pid: null, state: pid === null ? "unknown" : "gone" };
}

/**
 * End a replaced master and every other process titled as a master of the
 * same socket: once its socket is removed nothing can reach them to stop
 * them, and they would run on holding memory and a connection. KILL for a
 * hung (stopped) one, which cannot act on TERM; TERM, then KILL, otherwise.
 * Resolves once they are gone (bounded), warning about any left.
 */
export async function endReplaced(
  socket: string,
  pid: number | null,
  hung: boolean,
): Promise<void> {
  // A hung master was found by its pid; a stale socket's may be anyone's.
  const titled = hung && pid
    ? []
    : (await mastersBySocket([socket])).get(socket) ?? [];
  const pids = [...new Set([...(pid ? [pid] : []), ...titled])];
  if (pids.length === 0) return;
  let gone = await killAndWait(pids, hung ? "KILL" : "TERM", 1000);
  if (!gone) gone = await killAndWait(pids, "KILL", 2000);
  if (!gone) {
    log.warn("A replaced ControlMaster of {socket} is still running", {
      socket,
      pids,
    });
  }
}
