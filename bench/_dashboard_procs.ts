/**
 * The processes of the dashboard benchmark: `fiwi dashboard` and `fiwi
 * poll` started as the `fiwi` task runs them, on the loopback rig of
 * `_cli_rig.ts`, and what /proc says of a process (CPU ticks, peak RSS).
 *
 * @module
 */

import { fiwiArgv } from "../tests/_cli_harness.ts";
import type { CliRig } from "./_cli_rig.ts";

/** The dashboard's URL in what it printed. */
const URL_LINE = /http:\/\/127\.0\.0\.1:\d+\/\S*/;

/** A running `fiwi dashboard`. */
export interface Dashboard {
  child: Deno.ChildProcess;
  url: string;
  /** SIGTERM, then SIGKILL after 10 s; resolves when it is gone. */
  stop(): Promise<void>;
}

/**
 * Start `fiwi dashboard --rig <the rig's file> --port 0 <extra>` and read
 * its URL (within 30 s); `cleanup` stops it if nothing did before.
 */
export async function startDashboard(
  c: CliRig,
  env: Record<string, string>,
  extra: string[],
  cleanup: AsyncDisposableStack,
): Promise<Dashboard> {
  const [program, ...rest] = fiwiArgv({ kind: "run" }, [
    "dashboard",
    "--rig",
    c.rigFile,
    "--port",
    "0",
    ...extra,
  ]);
  const child = new Deno.Command(program, {
    args: rest,
    cwd: c.dir,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone already */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    })();
  cleanup.defer(stop);
  let err = "";
  const errDone = (async () => {
    for await (const t of child.stderr.pipeThrough(new TextDecoderStream())) {
      err += t;
    }
  })();
  // Read stdout until the URL, bounded; then keep draining it.
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let out = "";
  const timer = setTimeout(() => reader.cancel(), 30_000);
  try {
    while (!URL_LINE.test(out)) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
  } finally {
    clearTimeout(timer);
  }
  const url = URL_LINE.exec(out)?.[0];
  if (!url) {
    await stop();
    await errDone;
    throw new Error(`fiwi dashboard printed no URL within 30 s: ${out}${err}`);
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  return { child, url, stop };
}

/**
 * Run `fiwi poll -i 1s --count <ticks> <cmd>` on every node to its end (bounded: a loaded machine
 * overruns ticks); its summary line ("Done: N ticks in ..., K ticks
 * skipped"), or its stderr on failure.
 */
export async function poll(
  c: CliRig,
  env: Record<string, string>,
  ticks: number,
  cmd: string,
): Promise<string> {
  const [program, ...rest] = fiwiArgv({ kind: "run" }, [
    "poll",
    "--rig",
    c.rigFile,
    "-w",
    `n[1-${c.nodes}]`,
    "-i",
    "1s",
    "--count",
    String(ticks),
    cmd,
  ]);
  const out = await new Deno.Command(program, {
    args: rest,
    cwd: c.dir,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout((ticks * 5 + 120) * 1000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`fiwi poll failed (${out.code}): ${stderr.slice(-2000)}`);
  }
  return /^Done: .*$/m.exec(stderr)?.[0] ?? stderr.split("\n")[0];
}

/** CPU clock ticks per second (`getconf CLK_TCK`). */
export async function clockTicks(): Promise<number> {
  const out = await new Deno.Command("getconf", { args: ["CLK_TCK"] })
    .output();
  return Number(new TextDecoder().decode(out.stdout).trim()) || 100;
}

/** What /proc says of a process (read with cat: Deno wants -A for /proc). */
export interface ProcSample {
  /** performance.now() when read. */
  at: number;
  /** utime + stime, in clock ticks. */
  own: number;
  /** cutime + cstime: children it reaped. */
  children: number;
  /** Peak RSS (VmHWM), kB. */
  peakKb: number;
}

/** /proc of `pid` now. */
export async function procSample(pid: number): Promise<ProcSample> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`, `/proc/${pid}/status`],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // stat is the first line. Its fields after "(comm) ": state is field 3,
  // utime 14 ... cstime 17 (comm may hold spaces and parentheses).
  const stat = text.slice(0, text.indexOf("\n"));
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const field = (n: number) => Number(f[n - 3]);
  return {
    at: performance.now(),
    own: field(14) + field(15),
    children: field(16) + field(17),
    peakKb: Number(/^VmHWM:\s+(\d+)/m.exec(text)?.[1] ?? "0"),
  };
}

/** CPU between two samples, % of one core: own, and with reaped children. */
export function cpuPercent(
  a: ProcSample,
  b: ProcSample,
  hz: number,
): { own: number; all: number } {
  const seconds = (b.at - a.at) / 1000;
  return {
    own: (b.own - a.own) / hz / seconds * 100,
    all: (b.own + b.children - a.own - a.children) / hz / seconds * 100,
  };
}

/** The nearest-rank percentile `p` (0-100) of `xs`. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)];
}
