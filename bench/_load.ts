/**
 * CPU load for the benchmarks: busy loops (`sh -c 'while :; do :; done'`)
 * started before a piece of work and always killed after it, by the pids
 * this process started, also when the work fails or the benchmark is
 * interrupted (SIGINT, SIGTERM).
 *
 * @module
 */

/** The busy loop each load process runs. */
export const BUSY_LOOP = "while :; do :; done";

/** Busy loops started by this process and not yet reaped. */
const running = new Set<Deno.ChildProcess>();
/** Every pid of a busy loop this process ever started. */
const started: number[] = [];

/**
 * Pids this process started as busy loops that still run one (asked of
 * `ps`: reading /proc takes --allow-all).
 */
export async function busyLoopsAlive(): Promise<number[]> {
  if (started.length === 0) return [];
  const out = await new Deno.Command("ps", {
    args: ["-o", "pid=,args=", "-p", started.join(",")],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((l) => l.includes(BUSY_LOOP))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** Kill every busy loop still running (SIGKILL, by pid) and reap it. */
export async function killBusyLoops(): Promise<void> {
  const doomed = [...running];
  for (const child of doomed) {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch { /* already gone */ }
  }
  await Promise.all(doomed.map((child) => child.status));
  for (const child of doomed) running.delete(child);
}

/** Pids of the busy loops running now. */
export function busyLoopPids(): number[] {
  return [...running].map((c) => c.pid);
}

/** Start `count` busy loops; they run until {@linkcode killBusyLoops}. */
export function startBusyLoops(count: number): number[] {
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const child = new Deno.Command("sh", {
      args: ["-c", BUSY_LOOP],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    running.add(child);
    started.push(child.pid);
    pids.push(child.pid);
  }
  return pids;
}

/**
 * Run `fn` while `count` busy loops spin (`count` 0: no load), then kill
 * them, whether `fn` resolved or threw. The loops get `settleMs` to take
 * the CPUs before `fn` starts.
 */
export async function underLoad<T>(
  count: number,
  fn: () => Promise<T>,
  settleMs = 500,
): Promise<T> {
  if (count <= 0) return await fn();
  try {
    startBusyLoops(count);
    await new Promise((r) => setTimeout(r, settleMs));
    return await fn();
  } finally {
    await killBusyLoops();
  }
}
