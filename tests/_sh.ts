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

/** This user's uid, for `pgrep -u`: processes of other users never count. */
function uid(): string {
  return String(Deno.uid() ?? 0);
}

/**
 * Count this user's local processes whose command line contains `text`
 * (plain text). For a test's own processes prefer {@linkcode marker} with
 * {@linkcode countExact} or {@linkcode countCarrying}: plain text also
 * matches other tests' and other runs' processes ("sleep 301" is in
 * "sleep 3011").
 */
export async function countLocal(text: string): Promise<number> {
  const r = await run("pgrep", ["-f", "-c", "-u", uid(), selfProof(text)]);
  return Number(r.stdout.trim() || "0");
}

// Random per run of the suite, so that two runs on one machine (other
// engineers, CI jobs) never count each other's processes.
const RUN_ID = String(
  100_000 + crypto.getRandomValues(new Uint32Array(1))[0] % 900_000,
);
let markers = 0;

/**
 * A token unique to this run of the suite and this call, to put in the
 * command line of a test's processes: digits and one dot, so it is also a
 * sleep duration (`sleep ${marker()}` sleeps about an hour) that no other
 * test, and no other run on the machine, has. Every token has the same
 * length, so none is a prefix of another. Count with {@linkcode countExact}
 * (`sleep <token>` itself) or {@linkcode countCarrying} (a shell or ssh
 * client whose command line names it).
 */
export function marker(): string {
  markers++;
  return `3600.${RUN_ID}${String(markers).padStart(4, "0")}`;
}

/** Where a count runs: a node, through a plain shell there. */
export interface CountOn {
  sh(cmd: string): Promise<{ stdout: string }>;
}

// A regex matching `text` literally; the first character in brackets, so
// the regex never matches the command line of the shell that runs pgrep.
function literal(text: string): string {
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return escaped.startsWith("\\")
    ? escaped
    : `[${escaped[0]}]${escaped.slice(1)}`;
}

async function pgrepCount(args: string[], on?: CountOn): Promise<number> {
  if (on === undefined) {
    const r = await run("pgrep", ["-c", "-u", uid(), ...args]);
    return Number(r.stdout.trim() || "0");
  }
  const quoted = args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`);
  const r = await on.sh(`pgrep -c -u "$(id -u)" ${quoted.join(" ")} || true`);
  return Number(r.stdout.trim() || "0");
}

/**
 * Count this user's processes whose whole command line is exactly
 * `cmdline` (`pgrep -x -f`), on this machine or, given `on`, on the node.
 * `countExact(`sleep ${m}`)` counts the sleep alone, not the shell whose
 * script runs it.
 */
export function countExact(cmdline: string, on?: CountOn): Promise<number> {
  return pgrepCount(["-x", "-f", literal(cmdline)], on);
}

/**
 * Count this user's processes whose command line carries `token` (from
 * {@linkcode marker}) as a whole word, not inside a longer number or name:
 * the process itself, the shells whose script names it and the ssh clients
 * that carry it, on this machine or, given `on`, on the node.
 */
export function countCarrying(token: string, on?: CountOn): Promise<number> {
  const edge = "[^0-9A-Za-z_.]";
  return pgrepCount(
    ["-f", `(^|${edge})${literal(token)}(${edge}|$)`],
    on,
  );
}
