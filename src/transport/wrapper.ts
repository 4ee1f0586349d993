/**
 * The remote wrapper: the few lines of POSIX sh that every command fiwi
 * starts runs inside, and the parsers of the lines it prints.
 *
 * 1. It prints the start line, `__FIWI_START__ <pid>` on stderr. The pid is
 *    the remote shell's own: sshd (or setsid for `local`) made it a session
 *    and process-group leader, so it is also the command's process group.
 *    Seeing the line means the command began; a failure before it is the
 *    connection's, which tells ssh's exit code 255 from the command's.
 * 2. It starts the lifeline watcher (`fiwi-lifeline`), in a session of its
 *    own where `setsid` exists, and not as a child of the command's shell
 *    (a bare `wait` in the command must not wait for it). The client's stdin
 *    is a pipe fiwi holds open; the watcher reads it to EOF. EOF comes when
 *    fiwi closes it (a timeout, an abort, close()), when fiwi dies for any
 *    reason (the kernel closes the pipe), when the ssh client or the sshd
 *    session dies, and when the command's shell exits (sshd closes the
 *    session's stdin then; for `local`, fiwi closes it once the shell is
 *    gone).
 * 3. At EOF, if the shell still runs, the run was stopped: the watcher TERMs
 *    the whole group, waits up to a second for it to go, and KILLs what is
 *    left, children of a shell that already exited included. If the shell
 *    exited by itself, what is left of the group may stay, unless it still
 *    holds the session's stdout or stderr (which keeps the run from ending):
 *    after a linger of {@linkcode LINGER_MS} those are TERMed, then KILLed,
 *    and the watcher reports their number on stderr in a
 *    `__FIWI_KILLED__ <n>` line. So `nohup cmd >log 2>&1 &` survives, as
 *    under plain ssh, and `cmd &` does not hang the run.
 * 4. It runs the command through `eval`, so its syntax, exit status, `$?`,
 *    `exit` and `exec` are its own, with stdin `/dev/null`, exactly `n`
 *    payload bytes (`head -c n` from the pipe, then EOF), or for a shell
 *    the live pipe.
 *
 * Telling who holds the output needs Linux's `/proc`: the wrapper opens the
 * session's two pipes read-only through `/proc/$$/fd` (a reader never keeps
 * a pipe from reaching EOF) and the watcher compares each group member's
 * descriptors with them (`test -ef`). The group's members come from
 * `/proc/<pid>/stat`, read with builtins only. Without `/proc` a shell that
 * exited leaves its children be.
 *
 * One mode has no watcher: `"direct"`, for a command that ends by itself
 * when its input ends (a file transfer's receiver, `cat > file`). The
 * command reads the client's stdin itself; fiwi sends the payload and then
 * closes it. The payload's EOF is the lifeline: fiwi's death, the client's
 * or the session's ends the input early, and the command with it. It saves
 * the copy through `head` (8 KiB reads in GNU head) and a process: on a
 * 16-node push of 100 MB that was a sixth of all the CPU used.
 *
 * A command that leaves the group on purpose (`setsid`) escapes the
 * lifeline; so do `ProcessManager` processes, which are started that way.
 *
 * @module
 */

import { shellQuote } from "./quote.ts";

/** The line the wrapped remote command prints on stderr before the command. */
export const START_MARKER = "__FIWI_START__";
/** The line the watcher prints on stderr with the number of processes it killed after the linger. */
export const KILLED_MARKER = "__FIWI_KILLED__";
/**
 * How long a background child may keep holding the output after the
 * command's shell exited, in ms, before it is killed (polled in 0.1 s steps
 * on the node).
 */
export const LINGER_MS = 500;

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
 * The watcher's script, for a separate small `sh` whose `$1` is the
 * wrapper's pid (the group), with the session's stdout and stderr open
 * read-only on fds 4 and 5 when they are pipes. Single quotes never occur
 * in it.
 *
 * - `s` lists the group's live members but the watcher into `$p`, their
 *   number into `$c` (with `h` set: only those holding fd 4's or fd 5's
 *   pipe); builtins only, so the scan adds no process to the group.
 * - `z` TERMs them, rescans every 0.1 s for up to a second, and KILLs what
 *   is left, twice (a child forked in between is caught by the second scan).
 *
 * `always` (a shell reading the live pipe) ends the group at EOF whatever
 * became of the shell.
 */
function watcherScript(always: boolean): string {
  const lingerSteps = Math.round(LINGER_MS / 100);
  const stopped = always ? "true" : "kill -0 $1 2>/dev/null";
  return 'while read -r _; do :; done; trap "" TERM; g=$1; ' +
    `s() { c=0; p=; for f in /proc/[0-9]*/stat; do read -r t <"$f" || continue; ` +
    `t=\${t##*) }; set -- $t; [ "$3" = "$g" ] && [ "$1" != Z ] || continue; ` +
    `q=\${f%/stat}; q=\${q#/proc/}; [ "$q" = "$$" ] && continue; ` +
    `if [ "$h" ]; then k=; for d in /proc/$q/fd/*; do ` +
    `if [ "$d" -ef /proc/$$/fd/4 ] || [ "$d" -ef /proc/$$/fd/5 ]; then k=1; break; fi; done; ` +
    `[ "$k" ] || continue; fi; c=$((c+1)); p="$p $q"; done 2>/dev/null; }; ` +
    `z() { s; n=$c; [ $c -gt 0 ] && kill -TERM $p; i=0; ` +
    `while [ $c -gt 0 ] && [ $i -lt 10 ]; do sleep 0.1; s; i=$((i+1)); done; ` +
    `[ $c -gt 0 ] && kill -KILL $p; s; [ $c -gt 0 ] && kill -KILL $p; }; ` +
    `if ${stopped}; then kill -TERM -$g; ` +
    `if [ -r /proc/$$/stat ]; then z; else i=0; ` +
    `while kill -0 $g && [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; fi; ` +
    `kill -KILL -$g; exit 0; fi; ` +
    `kill -0 -$g 2>/dev/null && [ -r /proc/$$/stat ] && [ -p /proc/$$/fd/4 ] || exit 0; ` +
    `h=1; s; i=0; while [ $c -gt 0 ] && [ $i -lt ${lingerSteps} ]; do sleep 0.1; s; i=$((i+1)); done; ` +
    `[ $c -gt 0 ] || exit 0; exec 6>/proc/$$/fd/5; z; ` +
    `[ $n -gt 0 ] && printf "${KILLED_MARKER} %d\\n" $n >&6`;
}

/**
 * Start the watcher in the background, not a child of the wrapper's shell
 * (the subshell that forks it exits at once), in a session of its own
 * where `setsid` exists so that its group's TERM does not reach it and
 * `kill -0 -<group>` says at once whether anything is left.
 */
function startWatcher(always: boolean): string {
  // An asynchronous command reads /dev/null unless redirected itself.
  return `( S=; command -v setsid >/dev/null 2>&1 && S=setsid; ` +
    `exec $S sh -c '${watcherScript(always)}' ${LIFELINE_NAME} $$ <&3 3<&- & )`;
}

/** Open the session's stdout and stderr read-only on fds 4 and 5, when pipes. */
const OPEN_PIPES = "[ -p /proc/$$/fd/1 ] && [ -p /proc/$$/fd/2 ] && " +
  "exec 4</proc/$$/fd/1 5</proc/$$/fd/2; ";

/**
 * Wrap `cmd` for the node's shell: start line, lifeline watcher, then the
 * command through `eval`.
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
  const start = startLine + "exec 3<&0 </dev/null; " + OPEN_PIPES;
  if (stdin === "none") {
    // The fast path: the command runs in the wrapper's own shell.
    return start +
      `${startWatcher(false)} >/dev/null 2>&1; exec 3<&- 4<&- 5<&-; ${run}`;
  }
  // A feeder copies the payload (or everything) into a pipe to the command,
  // closes it, then becomes the watcher. It runs in the background so the
  // pipeline ends with the command, not with the lifeline.
  const feed = stdin === "stream" ? "cat" : `head -c ${stdin.payloadBytes}`;
  return start +
    `{ { ${feed} <&3; ${
      startWatcher(stdin === "stream")
    } >/dev/null; } 2>/dev/null & } | ` +
    `{ exec 3<&- 4<&- 5<&-; ${run}; }`;
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

const KILLED_RE = new RegExp(`${KILLED_MARKER} ([0-9]{1,9})$`);

/**
 * The watcher's report in one line of stderr: how many processes it killed
 * after the linger, and whatever a process wrote before it on that line
 * without a newline (`rest`), or null when `text` does not end with one.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseKilledLine } from "./wrapper.ts";
 * assertEquals(parseKilledLine("__FIWI_KILLED__ 2"), { killed: 2, rest: "" });
 * assertEquals(parseKilledLine("oops__FIWI_KILLED__ 1"), { killed: 1, rest: "oops" });
 * assertEquals(parseKilledLine("hello"), null);
 * ```
 */
export function parseKilledLine(
  text: string,
): { killed: number; rest: string } | null {
  if (!text.includes(KILLED_MARKER)) return null;
  const m = KILLED_RE.exec(text);
  if (!m) return null;
  return { killed: Number(m[1]), rest: text.slice(0, m.index) };
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
