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
