/**
 * The remote side of file transfers: the POSIX sh scripts a push or a pull
 * runs on the node, built from quoted words only (nothing the caller gives
 * is ever read as shell code). They need `sh`, `tar`, `mkdir`, `mv`, `rm`,
 * `chmod`, `stat -c`, `touch -r` and, to verify, `sha256sum`: all in
 * busybox. Pure.
 *
 * @module
 */

import { shellQuote } from "../transport/quote.ts";

/** Longest script fiwi sends: one argument of `sh -c` may hold 128 KiB. */
export const MAX_SCRIPT_BYTES = 100_000;

/** Hidden temp directories of transfers start with this. */
export const TEMP_PREFIX = ".fiwi-tmp-";
/** A temp directory this old (minutes) belongs to no live transfer. */
export const STALE_MINUTES = 24 * 60;

/** A file whose content is checked on the node before it is put in place. */
export interface ExpectedHash {
  /** Path relative to the destination, e.g. `dir/file`. */
  path: string;
  /** SHA-256 in lowercase hex. */
  sha256: string;
}

/**
 * Moves `$t/$1` to `$d/$1`. A file or link is renamed into place (atomic:
 * a reader sees the old file or the whole new one). A directory is merged:
 * created when missing (another push creating it at the same moment is
 * fine), its entries put one by one, then its mode and mtime copied (the
 * mtime from a stamp taken first: moving entries out changes it). Variables
 * are global in sh: the stamp's path rides in `$2`, which is the call's own,
 * and each loop's word list is fixed before it starts.
 *
 * A symbolic link already inside the destination is never followed: a
 * file or link pushed to its name replaces the link itself (`mv -T`, a
 * rename onto the name, where the mv supports it; else the link is removed
 * first, since plain `mv` onto a link to a directory moves into that
 * directory), and a directory pushed to its name is refused, naming the
 * link, leaving the link and what it points to as they were. Replacing a
 * link with a directory would silently break a layout the node relies on
 * (`/lib -> usr/lib`); writing into its target is what an attacker who
 * planted it wants. The destination directory itself is the caller's path:
 * links in it are followed.
 *
 * `$f` and `$b` count the entries (not directories) and the bytes of the
 * regular files put in place, for {@linkcode LANDED_MARK}.
 */
const PUT_FUNCTION = `k=0 f=0 b=0 T=
: > "$t/.fiwi-mv" && mv -f -T -- "$t/.fiwi-mv" "$t/.fiwi-mv2" 2>/dev/null && T=-T
nolink() {
  [ -L "$d/$1" ] || return 0
  echo "fiwi: $d/$1: a symbolic link is in the way of a directory (links on the node are not followed)" >&2
  return 1
}
put() {
  if [ -d "$t/$1" ] && [ ! -L "$t/$1" ]; then
    k=$((k+1)); set -- "$1" "$t/.fiwi-mtime-$k"
    touch -r "$t/$1" -- "$2" 2>/dev/null
    nolink "$1" || return 1
    if [ ! -d "$d/$1" ]; then
      mkdir -- "$d/$1" 2>/dev/null || [ -d "$d/$1" ] || { mkdir -- "$d/$1"; return 1; }
      nolink "$1" || return 1
    fi
    for c in "$t/$1"/* "$t/$1"/.[!.]* "$t/$1"/..?*; do
      [ -e "$c" ] || [ -L "$c" ] || continue
      put "$1/\${c##*/}" || return 1
    done
    chmod "$(stat -c %a -- "$t/$1")" -- "$d/$1" 2>/dev/null
    touch -r "$2" -- "$d/$1" 2>/dev/null
  elif [ -d "$d/$1" ] && [ ! -L "$d/$1" ]; then
    echo "fiwi: $d/$1: a directory is in the way of a file" >&2; return 1
  else
    s=0
    if [ -f "$t/$1" ] && [ ! -L "$t/$1" ]; then s=$(stat -c %s -- "$t/$1") || s=0; fi
    if [ -z "$T" ] && [ -L "$d/$1" ] && [ -d "$d/$1" ]; then rm -f -- "$d/$1" || return 1; fi
    mv -f $T -- "$t/$1" "$d/$1" || return 1
    f=$((f+1)); b=$((b+s))
  fi
}`;

/**
 * The check of one received file against its expected hash, in the temp
 * directory, before anything is put in place.
 */
function hashCheck({ path, sha256 }: ExpectedHash): string {
  const q = shellQuote(path);
  return `h=$(sha256sum < "$t"/${q}) || exit 1; [ "\${h%% *}" = ${sha256} ] || ` +
    `{ echo "fiwi: "${
      shellQuote(`${path}: SHA-256 differs after the transfer`)
    } >&2; exit 1; }`;
}

/**
 * What a push sends: a tar archive, or one regular file as it is (no tar
 * on either end: the common firmware push costs a third less), with the
 * mode and mtime to give it.
 */
export type PushPayload = "tar" | {
  name: string;
  size: number;
  mode: number;
  mtime: Date;
};

/** `touch -t` stamp of `date` in UTC: `CCYYMMDDhhmm.SS` (POSIX). */
export function touchStamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCFullYear()}${two(date.getUTCMonth() + 1)}${
    two(date.getUTCDate())
  }${two(date.getUTCHours())}${two(date.getUTCMinutes())}.${
    two(date.getUTCSeconds())
  }`;
}

/** The step that turns stdin, read to its EOF, into the entries in `$t`. */
function receiveStep(payload: PushPayload): string {
  if (payload === "tar") return `tar -x -p -f - -C "$t" || exit 1`;
  const file = `"$t"/${shellQuote(payload.name)}`;
  const mode = (payload.mode & 0o7777).toString(8);
  // A stopped push ends cat's input early, not with an error: only the
  // whole size may be put in place.
  return `cat > ${file} && [ "$(stat -c %s -- ${file})" = ${payload.size} ] && ` +
    `chmod ${mode} ${file} && ` +
    `TZ=UTC0 touch -t ${touchStamp(payload.mtime)} ${file} || exit 1`;
}

/** Sets `$d` (the destination) and `$t` (the push's temp directory in it). */
function pushVariables(destDir: string, tempName: string): string {
  // A directory named like an option is still a directory to every tool.
  return `d=${shellQuote(destDir)}; t="$d"/${shellQuote(tempName)}\n` +
    `case $d in -*) d=./$d; t=./$t;; esac`;
}

/** Removes the temp directory on exit, on failure and on a signal. */
const CLEANUP_TRAP = `trap 'rm -rf -- "$t"' EXIT; trap 'exit 143' HUP INT TERM`;

/**
 * The line a push's put step prints on stdout when it fails:
 * `fiwi-put FILES BYTES`, what it had put in place by then.
 */
export const LANDED_MARK = "fiwi-put";

/**
 * Puts each top-level `name` from `$t` in place; on a failure says what
 * landed before it ({@linkcode LANDED_MARK}).
 */
function putStep(names: readonly string[]): string {
  return `${PUT_FUNCTION}\nfor n in ${
    names.map(shellQuote).join(" ")
  }; do put "$n" || { echo "${LANDED_MARK} $f $b"; exit 1; }; done`;
}

/**
 * What a failed push put in place, from its run's stdout; zero when it did
 * not say (it failed before its put step, or was killed in it).
 */
export function parseLanded(stdout: string): { files: number; bytes: number } {
  const m = new RegExp(`^${LANDED_MARK} (\\d+) (\\d+)$`, "m").exec(stdout);
  return m
    ? { files: Number(m[1]), bytes: Number(m[2]) }
    : { files: 0, bytes: 0 };
}

/**
 * The first step of a push, run with the payload as its stdin up to EOF
 * (the run's `"direct"` stdin): make a fresh hidden directory inside
 * `destDir` (same filesystem, so the final renames are atomic), and read
 * the payload into it. Any failure, a short payload included, removes it.
 *
 * With `names` the push ends here: the entries are put in place at once.
 * That is for one file without hashes to check, where what follows the
 * input's EOF is a rename that cannot take long. Otherwise the directory
 * stays for {@linkcode finishScript}, which runs under the lifeline.
 *
 * @param destDir the remote directory (created if missing)
 * @param tempName unique per transfer: concurrent pushes to one shared
 *   directory never meet in it
 * @param payload a tar archive or one raw file
 * @param names the top-level entries to put in place now, or null
 */
export function receiveScript(
  destDir: string,
  tempName: string,
  payload: PushPayload,
  names: readonly string[] | null,
): string {
  return [
    pushVariables(destDir, tempName),
    // The destination gets the node's usual mode; what is in transit is
    // private: the temp directory 0700 (also where a default ACL would
    // widen the umask's mode) and every file in it created 0600, until
    // each is given its own mode and renamed into place.
    `mkdir -p -- "$d" && umask 077 && mkdir -m 700 -- "$t" || exit 1`,
    // A push killed before its trap ran leaves its temp directory behind;
    // the next push into the directory removes those older than a day.
    `find "$d" -maxdepth 1 -type d -name '${TEMP_PREFIX}*' -mmin +${STALE_MINUTES} ` +
    `-exec rm -rf {} + 2>/dev/null`,
    CLEANUP_TRAP,
    receiveStep(payload),
    names ? putStep(names) : `trap - EXIT`,
  ].join("\n");
}

/**
 * The last step of a push whose {@linkcode receiveScript} kept its temp
 * directory: check hashes, then put each top-level `name` in place. The
 * temp directory goes away on exit, on TERM (the lifeline) and on failure.
 *
 * @param names the top-level entries of the payload
 * @param expect hashes to check before the entries are put in place
 */
export function finishScript(
  destDir: string,
  tempName: string,
  names: readonly string[],
  expect: readonly ExpectedHash[] = [],
): string {
  return [
    pushVariables(destDir, tempName),
    `[ -d "$t" ] || { echo "fiwi: $t: the received files are gone" >&2; exit 1; }`,
    CLEANUP_TRAP,
    ...expect.map(hashCheck),
    putStep(names),
  ].join("\n");
}

/** Remove one transfer's temp directory in `destDir` (after an abort). */
export function cleanupCommand(destDir: string, tempName: string): string {
  return `rm -rf -- ${shellQuote(`${destDir}/${tempName}`)}`;
}

/**
 * The pull command for paths under one remote directory: a tar archive of
 * `names` on stdout. Each name is given as `./name`, so one starting with
 * `-` is never read as an option.
 */
export function pullCommand(parent: string, names: readonly string[]): string {
  return `tar -c -f - -C ${shellQuote(parent)} ${
    names.map((n) => shellQuote(`./${n}`)).join(" ")
  }`;
}

/** The line {@linkcode pullOneCommand} prints on stderr before a raw file. */
export const RAW_MARK = "fiwi-file";
/** The line {@linkcode pullOneCommand} prints on stderr before an archive. */
export const TAR_MARK = "fiwi-tar";

/**
 * The pull command for one remote path: a regular file comes as it is on
 * stdout, after `fiwi-file MODE MTIME SIZE` on stderr; anything else as a
 * tar archive, after `fiwi-tar`. Skipping tar on both ends for the common
 * single file saves two copies of every byte; the header goes on stderr
 * because stdout is written straight into a local file.
 */
export function pullOneCommand(parent: string, name: string): string {
  const path = shellQuote(parent === "/" ? `/${name}` : `${parent}/${name}`);
  return `p=${path}; if [ -f "$p" ] && [ ! -L "$p" ] && ` +
    `m=$(stat -c '%a %Y %s' -- "$p"); then printf '${RAW_MARK} %s\\n' "$m" >&2 && ` +
    `exec cat -- "$p"; fi; printf '${TAR_MARK}\\n' >&2 && exec ${
      pullCommand(parent, [name])
    }`;
}

/**
 * A command printing the SHA-256 of each path, one per line in order (a
 * line without a hash for a file it could not read).
 */
export function hashCommand(parent: string, paths: readonly string[]): string {
  return `cd -- ${shellQuote(parent)} || exit 1; for f in ${
    paths.map((p) => shellQuote(`./${p}`)).join(" ")
  }; do sha256sum < "$f" || echo -; done`;
}

/** The SHA-256 hashes in the output of {@linkcode hashCommand}, in order. */
export function parseHashes(stdout: string): (string | null)[] {
  const lines = stdout.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l) => /^[0-9a-f]{64}\b/.exec(l)?.[0] ?? null);
}

/**
 * Split `items` into batches whose joined, quoted form stays under
 * {@linkcode MAX_SCRIPT_BYTES}.
 */
export function batches(items: readonly string[]): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = shellQuote(item).length + 4;
    if (current.length > 0 && bytes + n > MAX_SCRIPT_BYTES) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}
