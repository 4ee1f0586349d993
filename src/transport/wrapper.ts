/**
 * The remote wrapper: the few lines of POSIX sh that every command fiwi
 * starts runs inside, and the parser of the start line it prints.
 *
 * The wrapper does three things before the command:
 *
 * 1. It prints the start line, `__FIWI_START__ <pid>` on stderr. The pid is
 *    the remote shell's own: sshd (or setsid for `local`) made it a session
 *    and process-group leader, so it is also the command's process group.
 *    Seeing the line means the command began; a failure before it is the
 *    connection's, which tells ssh's exit code 255 from the command's.
 * 2. It starts the lifeline watcher. The client's stdin is a pipe fiwi keeps
 *    open and never closes while the command runs. The watcher reads it to
 *    EOF. EOF comes when fiwi closes it (a timeout, an abort, close()), when
 *    fiwi dies for any reason (the kernel closes the pipe), when the ssh
 *    client dies, or when the sshd session serving the command dies. If the
 *    wrapper is still running then, the watcher sends TERM to the whole
 *    group, and KILL one second later. If the command already ended, the
 *    watcher just exits, so what a command deliberately left behind
 *    survives as it always did.
 * 3. It gives the command its own stdin: `/dev/null` (EOF at once), exactly
 *    `n` payload bytes (`head -c n` from the pipe, then EOF), or the live
 *    pipe itself (a persistent shell reading commands).
 *
 * One mode has no watcher: `"direct"`, for a command that ends by itself
 * when its input ends (a file transfer's receiver, `cat > file`). The
 * command reads the client's stdin itself; fiwi sends the payload and then
 * closes it. The payload's EOF is the lifeline: fiwi's death, the client's
 * or the session's ends the input early, and the command with it. It saves
 * the copy through `head` (8 KiB reads in GNU head) and a process: on a
 * 16-node push of 100 MB that was a sixth of all the CPU used.
 *
 * A background job of a non-interactive shell reads `/dev/null` unless it
 * is redirected explicitly, hence the copy of stdin on fd 3. A command that
 * leaves the group on purpose (`setsid`) escapes the lifeline; so do
 * `ProcessManager` processes, which are started that way.
 *
 * @module
 */

import { shellQuote } from "./quote.ts";

/** The line the wrapped remote command prints on stderr before the command. */
export const START_MARKER = "__FIWI_START__";

/**
 * What the command reads on stdin: nothing, `n` payload bytes, the live
 * pipe (for a shell that reads commands), or the client's stdin itself up
 * to the EOF fiwi sends after the payload (`"direct"`, no watcher).
 */
export type StdinMode =
  | "none"
  | { payloadBytes: number }
  | "stream"
  | "direct";

/** The watcher's name in `ps`: its command line never holds the command. */
export const LIFELINE_NAME = "fiwi-lifeline";

/**
 * The watcher, a separate small `sh` (so `ps` shows its name, not the
 * command's text): read the lifeline to EOF (with the shell's own `read`:
 * nothing is written on it, and `cat` would cost a fork and an exec per
 * run); then, if the wrapper (`$1`)
 * still runs (or `always`: a shell whose input just ended), TERM its group,
 * wait up to a second for the wrapper to go, and KILL the group, which ends
 * the watcher too. It ignores TERM itself so it lives to send the KILL.
 * `sleep 0.1` where only whole seconds exist fails at once, which only
 * makes the wait shorter.
 */
function watcher(always: boolean): string {
  const check = always ? "" : "kill -0 $1 2>/dev/null || exit 0; ";
  return `sh -c 'while read -r _; do :; done; ${check}trap "" TERM; kill -TERM -$1; ` +
    `i=0; while kill -0 $1 2>/dev/null && [ $i -lt 10 ]; do sleep 0.1; ` +
    `i=$((i+1)); done; kill -KILL -$1' ${LIFELINE_NAME} $$`;
}

/**
 * Wrap `cmd` for the node's shell: start line, lifeline watcher, then the
 * command through `eval`, so its syntax, exit status and `$?` are its own.
 *
 * @example
 * ```ts
 * import { assert } from "jsr:@std/assert@^1";
 * import { wrapCommand } from "./wrapper.ts";
 * assert(wrapCommand("uname -r").endsWith("eval 'uname -r'"));
 * ```
 */
export function wrapCommand(cmd: string, stdin: StdinMode = "none"): string {
  const startLine = `printf '${START_MARKER} %d\\n' $$ >&2; `;
  const run = `eval ${shellQuote(cmd)}`;
  if (stdin === "direct") return startLine + run;
  const start = startLine + "exec 3<&0 </dev/null; ";
  if (stdin === "none") {
    // The fast path: the command runs in the wrapper's own shell.
    return start +
      `${watcher(false)} <&3 3<&- >/dev/null 2>&1 & exec 3<&-; ${run}`;
  }
  // A feeder copies the payload (or everything) into a pipe to the command,
  // closes it, then becomes the watcher. It runs in the background so the
  // pipeline ends with the command, not with the lifeline.
  const feed = stdin === "stream" ? "cat" : `head -c ${stdin.payloadBytes}`;
  return start +
    `{ { ${feed}; exec ${
      watcher(stdin === "stream")
    } >/dev/null; } <&3 3<&- 2>/dev/null & } | ` +
    `{ exec 3<&-; ${run}; }`;
}

/**
 * The pid in a start line, or null when `text` is not one. `text` is one
 * line of stderr without its newline.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseStartLine } from "./wrapper.ts";
 * assertEquals(parseStartLine("__FIWI_START__ 4242"), 4242);
 * assertEquals(parseStartLine("__FIWI_START__ x"), null);
 * ```
 */
export function parseStartLine(text: string): number | null {
  if (!text.startsWith(START_MARKER + " ")) return null;
  const digits = text.slice(START_MARKER.length + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(digits)) return null;
  return Number(digits);
}

const MUX_RACE_RE = /^ControlSocket .* already exists, disabling multiplexing$/;

/**
 * True for a line ssh itself prints before the start line that is noise,
 * not the command's output: two clients racing to become the first master
 * for one socket, where the loser runs without multiplexing.
 */
export function isClientNoise(text: string): boolean {
  return MUX_RACE_RE.test(text);
}
