/**
 * The POSIX sh scripts the process manager runs on a node. Nothing needs to
 * be installed there: `sh`, `mkfifo`, `kill`, `sleep` and, when present,
 * `setsid`, `ps` and `/proc`.
 *
 * Layout on the node, in `${XDG_RUNTIME_DIR:-/tmp}/fiwi-proc-<uid>/` (0700):
 * `<id>.meta` (key=value lines: pid, monitor, group, host, user, started,
 * log, spec), `<id>.status` (the exit code, written by the monitor when
 * the command ends) and, unless the caller names a log file, `<id>.log`;
 * `killAll` removes the logs of what it stopped, and the directory when
 * empty. The command runs in its own session and process group
 * (`setsid`), as a child of a small monitor shell outside that group, so
 * signals sent to the group never hit the monitor and the exit status is
 * always recorded, also after KILL.
 *
 * @module
 */

import { shellQuote } from "../transport/quote.ts";

/** The metadata directory, expanded on the node. */
const DIR = `d="\${XDG_RUNTIME_DIR:-/tmp}/fiwi-proc-$(id -u)"`;

// Shell functions shared by the scripts. Zombies count as dead: a node whose
// init does not reap would otherwise keep a killed group "alive" forever.
const LIB = `
live_pid() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    read -r s < "/proc/$1/stat" 2>/dev/null || return 1
    s=\${s##*) }
    case $s in Z*|X*) return 1 ;; esac
    return 0
  fi
  s=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
  case $s in Z*) return 1 ;; esac
}
live_group() {
  kill -0 -"$1" 2>/dev/null || return 1
  out=$(ps -A -o pgid= -o stat= 2>/dev/null) || return 0
  printf '%s\\n' "$out" | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}
load() {
  p=; m=; g=
  while IFS='=' read -r k v; do
    case $k in pid) p=$v ;; monitor) m=$v ;; group) g=$v ;; esac
  done < "$d/$1.meta"
}
members() {
  if [ "$g" = 1 ]; then live_group "$p"; else live_pid "$p"; fi
}
state() {
  rc=
  if [ ! -e "$d/$1.meta" ]; then st=gone; return; fi
  load "$1"
  if [ -e "$d/$1.status" ]; then read -r rc < "$d/$1.status"; st=exited
  elif live_pid "$m" || members; then st=running
  elif [ -e "$d/$1.status" ]; then read -r rc < "$d/$1.status"; st=exited
  else st=lost
  fi
}
nap() { sleep "$1" 2>/dev/null || sleep 1; }
`;

// The command's own shell: records the metadata (its pid is the command's,
// its parent the monitor), tells the starter through the fifo, then becomes
// the command. $1 dir, $2 id, $3 log, $4 cmd, $5 spec json, $6 group.
const WRAP = `
{
  printf 'pid=%s\\n' "$$"
  printf 'monitor=%s\\n' "$PPID"
  printf 'group=%s\\n' "$6"
  printf 'host=%s\\n' "$(uname -n)"
  printf 'user=%s\\n' "$(id -un)"
  printf 'started=%s\\n' "$(date +%s)"
  printf 'log=%s\\n' "$3"
  printf 'spec=%s\\n' "$5"
} > "$1/$2.meta.tmp" && mv "$1/$2.meta.tmp" "$1/$2.meta"
echo ok >&3
exec 3>&-
eval "$4"
`;

// The monitor: runs detached in its own session, runs the command in the
// foreground in a session of its own (so no shell ever starts it with "&",
// which would make it ignore QUIT and INT), then records its exit status.
// $1 dir, $2 id, $3 log, $4 cmd, $5 fifo, $6 spec json, $7 setsid: 1 or 0.
const MONITOR = `
exec 3>"$5"
if [ "$7" = 1 ]; then
  setsid sh -c ${
  shellQuote(WRAP)
} "fiwi-$2" "$1" "$2" "$3" "$4" "$6" 1 </dev/null >>"$3" 2>&1
else
  sh -c ${
  shellQuote(WRAP)
} "fiwi-$2" "$1" "$2" "$3" "$4" "$6" 0 </dev/null >>"$3" 2>&1
fi
rc=$?
exec 3>&-
echo "$rc" > "$1/$2.status.tmp" && mv "$1/$2.status.tmp" "$1/$2.status"
`;

/** What {@linkcode startScript} needs. */
export interface StartSpec {
  /** Process id (safe as a file name). */
  id: string;
  /** The command line. */
  cmd: string;
  /** Log file on the node; relative paths are from the login directory. */
  logFile?: string;
  /** Environment of the command. */
  env: Record<string, string>;
  /** One-line JSON kept in the metadata (name, role, cmd). */
  spec: string;
}

/**
 * Start a detached process and print its metadata, in one round trip. Exit
 * codes: 90 no metadata dir, 91 log not writable, 92 no fifo, 93 the
 * monitor did not report.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { startScript } from "./_process_scripts.ts";
 * const script = startScript({
 *   id: "web-1a2b3c4d",
 *   cmd: "python3 -m http.server",
 *   env: { PORT: "8080" },
 *   spec: JSON.stringify({ name: "web", role: null, cmd: "python3 -m http.server" }),
 * });
 * assertStringIncludes(script, "export PORT=8080");
 * ```
 */
export function startScript(s: StartSpec): string {
  const exports = Object.entries(s.env).map(([k, v]) =>
    `export ${k}=${shellQuote(v)}\n`
  ).join("");
  return `${DIR}
mkdir -p "$d" && chmod 700 "$d" || exit 90
id=${shellQuote(s.id)}
f="$d/$id.fifo"
# killAll() elsewhere removes the directory once it is empty: make it again
# until the fifo holds it.
n=0
until rm -f "$f"; mkfifo "$f" 2>/dev/null; do
  n=$((n+1)); [ "$n" -lt 5 ] || exit 92
  mkdir -p "$d" && chmod 700 "$d" || exit 90
done
log=${shellQuote(s.logFile ?? "")}
[ -n "$log" ] || log="$d/$id.log"
case $log in /*) ;; *) log="$PWD/$log" ;; esac
mkdir -p "$(dirname "$log")" 2>/dev/null
: >> "$log" || { rm -f "$f"; exit 91; }
${exports}set -- fiwi-mon "$d" "$id" "$log" ${shellQuote(s.cmd)} "$f" ${
    shellQuote(s.spec)
  }
mon=${shellQuote(MONITOR)}
if setsid -f true 2>/dev/null; then
  setsid -f sh -c "$mon" "$@" 1 </dev/null >/dev/null 2>&1
elif command -v setsid >/dev/null 2>&1; then
  # No setsid -f (busybox): "&" makes the command ignore QUIT; kill() then
  # needs KILL.
  setsid sh -c "$mon" "$@" 1 </dev/null >/dev/null 2>&1 &
else
  sh -c "$mon" "$@" 0 </dev/null >/dev/null 2>&1 &
fi
read -r ok < "$f"
rm -f "$f"
[ "$ok" = ok ] || exit 93
cat "$d/$id.meta"
`;
}

/**
 * Print `<state> <code>` of one process: running, exited, lost or gone.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { stateScript } from "./_process_scripts.ts";
 * assertStringIncludes(stateScript("web-1"), `state web-1; echo "$st $rc"`);
 * ```
 */
export function stateScript(id: string): string {
  return `${DIR}${LIB}state ${shellQuote(id)}; echo "$st $rc"\n`;
}

/**
 * Print every process recorded on the node: `@@ <id>`, its metadata lines,
 * then `state=<state> <code>`.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { listScript } from "./_process_scripts.ts";
 * assertStringIncludes(listScript(), 'echo "state=$st $rc"');
 * ```
 */
export function listScript(): string {
  return `${DIR}${LIB}
for f in "$d"/*.meta; do
  [ -e "$f" ] || continue
  id=\${f##*/}; id=\${id%.meta}
  printf '@@ %s\\n' "$id"
  cat "$f"
  state "$id"
  echo "state=$st $rc"
done
`;
}

/**
 * Stop a process: QUIT to its group, up to `timeoutMs` for it to go, then
 * KILL and as long again. Prints `<how> <code>` (how: exited, quit, kill)
 * or `stuck`, and removes the metadata unless stuck.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { killScript } from "./_process_scripts.ts";
 * // Checks every 50 ms: 1 s is 20 checks after QUIT, 20 after KILL.
 * assertStringIncludes(killScript("web-1", 1000), "while [ $i -lt 20 ]");
 * ```
 */
export function killScript(id: string, timeoutMs: number): string {
  const ticks = Math.max(1, Math.ceil(timeoutMs / 50));
  return `${DIR}${LIB}
id=${shellQuote(id)}
[ -e "$d/$id.meta" ] || { echo gone; exit 0; }
load "$id"
sig() { if [ "$g" = 1 ]; then kill -"$1" -"$p" 2>/dev/null; else kill -"$1" "$p" 2>/dev/null; fi; }
gone() { ! members && { [ -e "$d/$id.status" ] || ! live_pid "$m"; }; }
waitgone() {
  i=0
  while [ $i -lt ${ticks} ]; do gone && return 0; nap 0.05; i=$((i+1)); done
  gone
}
if gone; then how=exited
else
  sig QUIT
  if waitgone; then how=quit
  else
    sig KILL
    if waitgone; then how=kill; else echo stuck; exit 0; fi
  fi
fi
rc=
[ -e "$d/$id.status" ] && read -r rc < "$d/$id.status"
rm -f "$d/$id.meta" "$d/$id.status"
echo "$how $rc"
`;
}

/**
 * After {@linkcode killScript}: remove the log files fiwi chose for `ids`
 * (`<id>.log` in the metadata directory; a `logFile` the caller named is
 * the caller's and stays), then the directory itself if nothing else is
 * left in it.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { cleanupScript } from "./_process_scripts.ts";
 * assertStringIncludes(cleanupScript(["a-1", "b-2"]), "for id in a-1 b-2;");
 * ```
 */
export function cleanupScript(ids: readonly string[]): string {
  return `${DIR}
for id in ${ids.map(shellQuote).join(" ")}; do rm -f "$d/$id.log"; done
rmdir "$d" 2>/dev/null
true
`;
}

/**
 * KILL a process group and nothing else: a crash, for recovery tests.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { crashScript } from "./_process_scripts.ts";
 * assertStringIncludes(crashScript("web-1"), "kill -KILL");
 * ```
 */
export function crashScript(id: string): string {
  return `${DIR}${LIB}
id=${shellQuote(id)}
[ -e "$d/$id.meta" ] || exit 3
load "$id"
if [ "$g" = 1 ]; then kill -KILL -"$p"; else kill -KILL "$p"; fi
`;
}

/**
 * The last `lines` lines of a log file.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { tailScript } from "./_process_scripts.ts";
 * assertEquals(tailScript("/tmp/my log", 20), "tail -n 20 '/tmp/my log'");
 * ```
 */
export function tailScript(log: string, lines: number): string {
  return `tail -n ${lines} ${shellQuote(log)}`;
}

/**
 * Watch every recorded process on the node and print `exit <id> <code>` or
 * `lost <id>` once for each that ends; exits when its parent (the ssh
 * session) is gone.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "jsr:@std/assert@^1";
 * import { watchScript } from "./_process_scripts.ts";
 * assertStringIncludes(watchScript(250), "nap 0.25");
 * ```
 */
export function watchScript(intervalMs: number): string {
  return `${DIR}${LIB}
# The parent's pid without a fork where /proc exists.
parent() {
  if read -r s < /proc/$$/stat 2>/dev/null; then
    s=\${s##*) }; set -- $s; pp=$2
  else
    pp=$(ps -o ppid= -p $$ 2>/dev/null)
  fi
}
parent; first=$pp
seen=" "
while :; do
  for f in "$d"/*.meta; do
    [ -e "$f" ] || continue
    id=\${f##*/}; id=\${id%.meta}
    case $seen in *" $id "*) continue ;; esac
    state "$id"
    case $st in
      exited) echo "exit $id $rc"; seen="$seen$id " ;;
      lost) echo "lost $id"; seen="$seen$id " ;;
    esac
  done
  nap ${intervalMs / 1000}
  parent; [ "$pp" = "$first" ] || exit 0
done
`;
}
