// Bounded polling for what has no event to await (a process on the node
// going away, or appearing): every wait ends by its deadline.

import { assert } from "jsr:@std/assert@^1";

/**
 * How long a test waits for a stopped run's processes to be gone: the
 * README's promise ("nothing of the group is left after 2 s": the lifeline
 * TERMs, waits up to a second, KILLs) plus one probe's round trip.
 */
export const GONE_WITHIN = 3000;

/**
 * Poll `probe` every 100 ms until it returns `want` or `ms` pass; the last
 * count (so `assertEquals(await settlesTo(probe, 1, ms), 1)` says what it
 * saw instead).
 */
export async function settlesTo(
  probe: () => Promise<number>,
  want: number,
  ms: number,
): Promise<number> {
  const until = performance.now() + ms;
  for (;;) {
    const n = await probe();
    if (n === want || performance.now() > until) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Poll `probe` every 100 ms until it returns 0 or `ms` pass; the last count. */
export function settlesToZero(
  probe: () => Promise<number>,
  ms: number = GONE_WITHIN,
): Promise<number> {
  return settlesTo(probe, 0, ms);
}

/** Read the child's stdout until `ready`, within `ms`; throws with what it printed. */
export async function waitReady(
  child: Deno.ChildProcess,
  ms: number,
): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const timer = setTimeout(() => reader.cancel(), ms);
  try {
    while (!seen.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  assert(seen.includes("ready\n"), `the child never got ready: ${seen}`);
}

/**
 * Run the fixture `script` in a child Deno (`deno run -A script ...args`),
 * wait up to `readyMs` for its "ready" line, then `whileAlive`; SIGKILL it
 * afterwards, whatever happened: a test of what a killed fiwi leaves.
 */
export async function killAfterReady(
  script: URL,
  args: string[],
  readyMs: number,
  whileAlive: () => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script.pathname, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    await waitReady(child, readyMs);
    await whileAlive();
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
}
