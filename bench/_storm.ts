/**
 * The cold `CommandManager` storm of `storm.ts`, reusable: N nodes × 20
 * commands (interval 1 s, count 5, each printing one line), counting lines
 * and every abnormal stop. Shared by `storm.ts` and `trust_load.ts`.
 *
 * @module
 */

import { type Command, CommandManager, type SshNode } from "../mod.ts";

/** Commands per node. */
export const PER_NODE = 20;
/** Runs per command. */
export const COUNT = 5;

/** Options of {@linkcode managerStorm}. */
export interface ManagerStormOptions {
  /** Failure policy of every command (default "continue", as `storm.ts`). */
  onError?: "stop" | "continue";
  /** Connect timeout of every run (default: the node's). */
  connectTimeout?: number;
  /** Give up waiting after this many ms (default 300 000). */
  limitMs?: number;
  /** Stop every command (and add no more) once this aborts. */
  signal?: AbortSignal;
}

/** What one storm saw. */
export interface ManagerStormResult {
  /** stdout lines that arrived. */
  lines: number;
  /** Lines expected: nodes × {@linkcode PER_NODE} × {@linkcode COUNT}. */
  expected: number;
  /** Commands that ended "failed" (the manager's abnormal history). */
  abnormal: number;
  /** Of those, ended by a timeout. */
  timeouts: number;
  /** Runs that failed (timed out or could not run), over all commands. */
  failedRuns: number;
  /** Of those, connect timeouts. */
  connectTimeouts: number;
  /** Of those, given up because their ControlMaster was replaced. */
  lostMaster: number;
  /** Runs that ended with a non-zero exit without an error. */
  nonZero: number;
  /** Commands still active when the storm gave up waiting. */
  stillActive: number;
  /** Up to 5 distinct failure messages. */
  samples: string[];
  /** Wall time. */
  ms: number;
}

/** Run the storm on `nodes` and wait until every command has ended. */
export async function managerStorm(
  nodes: SshNode[],
  options: ManagerStormOptions = {},
): Promise<ManagerStormResult> {
  const mgr = new CommandManager();
  let lines = 0;
  const t0 = performance.now();
  const commands: Command[] = [];
  const signal = options.signal;
  const stop = () => void mgr.stopAll();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (const node of nodes) {
      for (let i = 0; i < PER_NODE; i++) {
        if (signal?.aborted) break;
        const id = await mgr.addCommand({
          node,
          cmd: `echo storm-${i}`,
          interval: 1000,
          count: COUNT,
          onLine: (l) => {
            if (l.stream === "stdout") lines++;
          },
          onError: options.onError ?? "continue",
          connectTimeout: options.connectTimeout,
        });
        const command = mgr.getCommand(id);
        if (command) commands.push(command);
      }
    }
    const limit = options.limitMs ?? 300_000;
    while (
      mgr.listActive().length > 0 && performance.now() - t0 < limit &&
      !signal?.aborted
    ) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const stillActive = mgr.listActive().length;
    const abnormal = mgr.listAbnormalHistory();
    const samples = new Set<string>();
    let failedRuns = 0, connectTimeouts = 0, lostMaster = 0, nonZero = 0;
    for (const c of commands) {
      for (const { result } of c.runs) {
        if (result.aborted) continue;
        if (result.timedOut || result.error) {
          failedRuns++;
          if (result.timedOut === "connect") connectTimeouts++;
          if (
            /stopped answering and was replaced/.test(
              result.error?.message ?? "",
            )
          ) lostMaster++;
          if (samples.size < 5) {
            samples.add(
              (result.error?.message ?? `${result.timedOut} timeout`)
                .replace(/node "n\d+"/, 'node "nX"'),
            );
          }
        } else if (!result.success) nonZero++;
      }
    }
    for (const a of abnormal) {
      if (samples.size < 5) {
        samples.add(a.detail.replace(/node "n\d+"/, 'node "nX"'));
      }
    }
    return {
      lines,
      expected: nodes.length * PER_NODE * COUNT,
      abnormal: abnormal.length,
      timeouts: abnormal.filter((a) => a.reason === "timeout").length,
      failedRuns,
      connectTimeouts,
      lostMaster,
      nonZero,
      stillActive,
      samples: [...samples],
      ms: performance.now() - t0,
    };
  } finally {
    signal?.removeEventListener("abort", stop);
    await mgr.stopAll();
  }
}
