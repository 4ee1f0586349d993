/** Small measuring helpers shared by the side-by-side benchmarks. */

/** The middle value of `xs` (upper middle for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Milliseconds `fn` takes to settle. */
export async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Whether `program` is on PATH (a contender may be missing). */
export async function installed(program: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Run a shell script; it must succeed, or its output says why. */
export async function shell(
  script: string,
  env: Record<string, string> = {},
): Promise<void> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    throw new Error(`${script} failed (${out.code}): ${text.slice(0, 2000)}`);
  }
}

/** Wall time and peak RSS of one measured command. */
export interface Measured {
  /** Wall-clock milliseconds. */
  ms: number;
  /** Peak resident set size in MB. */
  rssMb: number;
}

/** Run `script` under `/usr/bin/time -v`; wall ms and peak RSS. */
export async function measure(
  script: string,
  env: Record<string, string> = {},
): Promise<Measured> {
  const t = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-v", "sh", "-c", script],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t;
  const text = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${script} failed: ${text.slice(-2000)}`);
  const kb = Number(
    /Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1],
  );
  return { ms, rssMb: kb / 1024 };
}

/** What {@linkcode measureLines} saw of one command. */
export interface MeasuredLines extends Measured {
  /** The script's exit code (124 or 137: killed by the time limit). */
  code: number;
  /** Whether the time limit killed it. */
  timedOut: boolean;
  /** Lines (newlines) it wrote to stdout. */
  lines: number;
  /** What it wrote to stderr (the first MiB). */
  stderr: string;
  /** CPU seconds it used, user and system, its children included. */
  cpuS: number;
}

/** Commands {@linkcode measureLines} is running now. */
const measuring = new Set<Deno.ChildProcess>();

/**
 * Stop every command {@linkcode measureLines} is running (SIGTERM to its
 * `timeout`, by pid, which ends its whole process group).
 */
export function killMeasured(): void {
  for (const child of measuring) {
    try {
      Deno.kill(child.pid, "SIGTERM");
    } catch { /* gone */ }
  }
}

/**
 * Run `script` under `/usr/bin/time -v` (stats to a file), counting the
 * lines of its stdout as they arrive (read by this process, so every
 * contender pays the same pipe) and keeping its stderr. A non-zero exit is
 * reported, not thrown. `limitS` (default 600) bounds it: its whole
 * process group is killed then (`timeout`).
 */
export async function measureLines(
  script: string,
  env: Record<string, string> = {},
  limitS = 600,
): Promise<MeasuredLines> {
  const stats = await Deno.makeTempFile({ prefix: "fiwi_bench_time_" });
  try {
    const t = performance.now();
    // `timeout` leads its own process group and passes a TERM (from
    // killMeasured) or its time limit on to all of it.
    const child = new Deno.Command("timeout", {
      args: [
        "-k",
        "5",
        String(limitS),
        "/usr/bin/time",
        "-v",
        "-o",
        stats,
        "sh",
        "-c",
        script,
      ],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    measuring.add(child);
    const countLines = async () => {
      let lines = 0;
      for await (const chunk of child.stdout) {
        let i = chunk.indexOf(10);
        while (i !== -1) {
          lines++;
          i = chunk.indexOf(10, i + 1);
        }
      }
      return lines;
    };
    const readErr = async () => {
      const parts: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of child.stderr) {
        if (size < 2 ** 20) parts.push(chunk);
        size += chunk.length;
      }
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      return new TextDecoder().decode(all);
    };
    const [lines, stderr, status] = await Promise.all([
      countLines(),
      readErr(),
      child.status,
    ]).finally(() => measuring.delete(child));
    const ms = performance.now() - t;
    const text = await Deno.readTextFile(stats);
    const kb = Number(
      /Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1],
    );
    const seconds = (what: string) =>
      Number(
        new RegExp(`${what} time \\(seconds\\): ([\\d.]+)`).exec(text)?.[1],
      );
    return {
      ms,
      rssMb: kb / 1024,
      cpuS: seconds("User") + seconds("System"),
      code: status.code,
      timedOut: status.code === 124 || status.code === 137,
      lines,
      stderr,
    };
  } finally {
    await Deno.remove(stats).catch(() => {});
  }
}

/**
 * The whole number given as `--name value`, from `min` to `max`; anything
 * else prints one line saying so and exits 2.
 */
export function intFlag(
  name: string,
  value: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `${min} or more`
      : `${min} to ${max}`;
    console.error(
      `Invalid --${name} "${value}": give a whole number, ${range}`,
    );
    Deno.exit(2);
  }
  return n;
}
