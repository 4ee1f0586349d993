/**
 * Shell helpers of the test harness: bounded helper commands, a plain `ssh`
 * outside fiwi, ending masters by socket, bounded waits and process counts.
 *
 * @module
 */

/** Longest a helper command (ssh-keygen, `rig.sh`, ps …) may take. */
const HELPER_TIMEOUT = 30_000;

/** Run a helper command to its end (bounded), outside fiwi. */
export async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), HELPER_TIMEOUT);
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: timeout.signal,
    }).output();
    const d = new TextDecoder();
    if (timeout.signal.aborted) {
      throw new Error(`${cmd} ${args.join(" ")} ran over ${HELPER_TIMEOUT} ms`);
    }
    return {
      code: out.code,
      stdout: d.decode(out.stdout),
      stderr: d.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** {@linkcode run}, throwing when the command fails. */
export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** argv of a plain `ssh` to `host`, outside fiwi (no master). */
export function plainSsh(
  s: { user: string; port?: number; sshConfig: string },
  host: string,
  cmd: string,
): string[] {
  return [
    ...(s.sshConfig ? ["-F", s.sshConfig] : []),
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    ...(s.port === undefined ? [] : ["-p", String(s.port)]),
    "--",
    `${s.user}@${host}`,
    cmd,
  ];
}

/** End the masters whose sockets are in `dir`/cm. */
export async function closeMasters(dir: string): Promise<void> {
  await run("sh", [
    "-c",
    `for s in "${dir}"/cm/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit x 2>/dev/null; done; true`,
  ]);
}

/**
 * `promise`, or a rejection naming `what` after `ms`: every wait in a test
 * is bounded, so a missing event fails fast instead of hanging.
 */
export async function within<T>(
  ms: number,
  promise: Promise<T>,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`No ${what} within ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// "[s]leep 300" matches "sleep 300" but not the probe's own command line.
export function selfProof(text: string): string {
  return `[${text[0]}]${text.slice(1)}`;
}

/** Count local processes whose command line contains `text` (plain text). */
export async function countLocal(text: string): Promise<number> {
  const r = await run("pgrep", ["-f", "-c", selfProof(text)]);
  return Number(r.stdout.trim() || "0");
}
