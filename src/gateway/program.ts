/**
 * The gateway program: a few dozen lines of POSIX sh that fiwi passes to a
 * gateway as the remote command of one ssh session. Nothing is installed
 * and nothing stays behind: its fifos live in a `mktemp -d` directory that
 * its exit trap removes, and no key or secret is ever written there (the
 * gateway's ssh uses the gateway account's own keys and config).
 *
 * Records from fiwi, on the program's stdin (`<id>` is a decimal number
 * fiwi chose, in increasing order; every payload is read with `read -r` or
 * `head -c`, so its bytes are never parsed by the loop's shell):
 *
 * - `L <id> <line>`: start a client, a shell command line (the quoted argv
 *   of the ssh to the node, the wrapped command included) that holds no
 *   newline and starts and ends with no blank: `read -r` keeps it whole,
 *   and `$(head -c n)` would cost a fork and an exec per client;
 * - `S <id> <n>` and n bytes: the same, for any command line;
 * - `B <id> <n>` and n bytes: the same, for a client whose stdout is
 *   bytes, not lines (a pull's archive): it comes back as `b` records;
 * - `I <id> <n>` and n bytes: write them to the client's stdin;
 * - `C <id>`: close the client's stdin (the node's lifeline reaches EOF);
 * - `K <id> <SIGNAL>`: signal the client (TERM, KILL, INT or HUP);
 * - `P <sid> <n>` and n bytes: append them to the staged payload `sid` (a
 *   file in the program's directory: one push's bytes, sent once for every
 *   node behind this gateway);
 * - `F <id> <sid>`: feed the staged payload to the client's stdin, from a
 *   `cat` of its own, so a slow or stuck node never holds up the loop or
 *   the others; the client's stdin ends once that `cat` and the holder are
 *   both gone (`C` may come at once);
 * - `R <sid>`: remove the staged payload (a `cat` still feeding reads on).
 *
 * Records to fiwi, on stdout, one line each and at most 2,100 bytes, so
 * that every one reaches the shared pipe in one atomic write (PIPE_BUF is
 * at least 4,096 on Linux):
 *
 * - `0 r <pid>`: the program runs;
 * - `<id> o <line>` / `<id> e <line>`: a stdout / stderr line, newline
 *   removed; `O` / `E`: a 2,048-byte piece of a longer line (no newline
 *   after it yet); `p` / `q`: the last bytes of the stream, which had no
 *   newline;
 * - `<id> b <hex>`: stdout bytes of a `B` client, as `od -tx1` prints them
 *   (hex pairs, blanks between): NUL-safe whatever the awk;
 * - `<id> x <code>`: the client exited with `code` (128 + n for signal n),
 *   after every line of its output.
 *
 * Per client (four processes: a supervisor, the ssh, a stderr framer, a
 * holder; one exec, the ssh, while each stream holds at most 8 lines): its
 * stdin is a fifo held open by a subshell (the holder) until `C` kills it;
 * the holder waits for a line on a second fifo (the wake fifo), which the
 * supervisor writes when the client ends first: then it drains the stdin
 * fifo, so a late `I` never blocks the loop. Each output stream goes
 * through a fifo into a framer: the shell's own `read` for the first 8
 * lines, then awk, exec'ed in its place, for the rest (most commands print
 * a few short lines, and an exec costs more than framing them). The
 * supervisor frames stdout itself, reading to EOF (the client's end); it
 * holds the stderr fifo open and, once the client exited, writes a nonce
 * line into it (and into stdout's, once awk took it on): it tells a last
 * line without newline from one with it (awk alone cannot tell), and ends
 * the framer. One `mkfifo` makes the fifos of 16 ids, and one `rm` removes
 * the files of 32 closed clients. Measured on this machine, where a fork or
 * an exec takes 2 to 5 ms: 500 `sh -c 'echo ok'` clients through one
 * program, 64 at a time, took 16.3 s and 29.3 s of CPU (clients and driver
 * included) with a `mkfifo`, an `rm`, a `$(head -c)` and a `sh` holder
 * each; 10.9 s and 21.1 s with two awk framers a client; 8.5 s and 15.7 to
 * 15.9 s this way. The price: a line of 1 MB among a stream's first 8
 * costs about 2.5 s of the gateway's CPU (a read(2) a byte, and pieces cut
 * in quadratic time), where awk took 0.5 s; awk frames what follows it.
 *
 * The lifeline: when the program's stdin reaches EOF (fiwi closed it, fiwi
 * died, or the session to the gateway was lost), it TERMs its ssh clients
 * and KILLs its holders, and, when it leads its process group (sshd makes
 * it so), the whole group; each node's wrapper then sees its own lifeline
 * reach EOF and kills the remote command's group.
 *
 * A feeding `cat` opens the fifo for writing only (never read-write, as
 * `I` does): when the client's ssh is gone and the holder killed, nothing
 * reads, and it ends on EPIPE instead of blocking forever. It opens it in
 * the loop, while the holder is alive (so the open cannot block), before
 * a later `C` removes the fifo's name. A staged payload that could not be
 * written whole (a full disk) is marked bad and fed to nobody: its
 * clients' stdin ends empty and their receivers fail.
 *
 * Limits: a NUL byte in a stream's first 8 lines is dropped (dash's and
 * bash's `read` skip it); after them awk's handling of NUL bytes decides
 * whether a line holding one arrives whole (gawk keeps them; mawk 1.3.4's
 * interactive mode and busybox awk cut the line there); a `B` client's bytes pass through `od` first, so
 * a transfer's archive is exact whatever the awk. `head -c`
 * must not read past the n bytes (GNU coreutils' does not; it reads at most
 * what is left).
 *
 * @module
 */

import { shellQuote } from "../transport/quote.ts";

/** The process name of the gateway program in `ps` on the gateway. */
export const GATEWAY_NAME = "fiwi-gateway";
/** The longest piece of a line in one record, in bytes. */
export const PIECE_BYTES = 2048;
/** `PIECE_BYTES` "?": the shell's pattern of one piece (11 doublings). */
const PIECE_PATTERN = "Q=?; for _ in 1 2 3 4 5 6 7 8 9 10 11; do Q=$Q$Q; done";

/**
 * The framer: awk reading one stream plus the nonce line, printing records
 * with prefixes `p` (line), `c` (piece) and `z` (last bytes without a
 * newline). Each record is one string printed with an empty ORS: mawk's
 * `-W interactive` (needed for line-buffered input) leaves stdout
 * unbuffered, and would write the parts of `print a, b` in separate,
 * interleavable writes. Single quotes never occur in it.
 */
const FRAMER = 'BEGIN { ORS = "" } ' +
  "{ s = $0; n = length(s); m = length(x); t = p; " +
  "if (s == x) exit; " +
  "if (n > m && substr(s, n - m + 1) == x) { s = substr(s, 1, n - m); t = z } " +
  `while (length(s) > ${PIECE_BYTES}) { r = c substr(s, 1, ${PIECE_BYTES}) "\\n"; ` +
  `print r; fflush(); s = substr(s, ${PIECE_BYTES + 1}) } ` +
  'r = t s "\\n"; print r; fflush() }';

/**
 * The framer of a byte stream (`B`): awk reading `od -An -v -tx1` (16
 * bytes a line as hex, never a NUL), printing `<id> b <hex>` records of up
 * to 40 of those lines (640 bytes, 1,920 characters) each.
 */
const HEX_FRAMER = 'BEGIN { ORS = "" } ' +
  '{ h = h $0; k++; if (k == 40) { r = p h "\\n"; print r; fflush(); h = ""; k = 0 } } ' +
  'END { if (k) { r = p h "\\n"; print r; fflush() } }';

/**
 * The program's text. `$1` is the nonce (hex digits) that marks the end of
 * each framed stream.
 */
export const GATEWAY_PROGRAM = [
  "X=$1; export LC_ALL=C; umask 077",
  // mawk reads its input in blocks unless told otherwise: lines would wait.
  'A=awk; case $(awk -W version 2>&1 </dev/null) in *mawk*) A="awk -W interactive";; esac',
  'd=$(mktemp -d "${TMPDIR:-/tmp}/fiwi-gw.XXXXXX") || exit 97',
  "L=; if read -r s </proc/$$/stat 2>/dev/null; then s=${s##*) }; set -- $s; " +
  '[ "$3" = "$$" ] && L=1; fi',
  // The whole group at once first (CONT: a client stopped by hand keeps a
  // TERM pending until it is continued), then each client and holder by
  // its pid file, read with builtins: no fork per client on a busy gateway.
  "bye() { trap '' TERM HUP INT PIPE; " +
  '[ "$L" ] && kill -TERM 0 2>/dev/null && kill -CONT 0 2>/dev/null; ' +
  'for p in "$d"/*.c "$d"/*.h; do [ -f "$p" ] && read -r q <"$p" && ' +
  'kill -KILL $q 2>/dev/null; done; rm -rf "$d"; }',
  "trap bye EXIT; trap 'exit 1' HUP INT TERM PIPE",
  `F='${FRAMER}'`,
  `H='${HEX_FRAMER}'`,
  // fl <id> <line> <piece> <last>: frame up to 8 lines of stdin into
  // records with the shell's own read (no exec: most commands print a few
  // short lines); false when more may follow, for awk (aw) to take on. A
  // stream ends at EOF or at the nonce line; a last line without newline
  // gets the <last> prefix either way. The shell reads a byte per read(2)
  // and cuts pieces in quadratic time (about 2 us a byte here, awk 0.5):
  // after a line longer than a piece, awk takes the rest at once. Q: 2,048
  // "?", one piece's pattern.
  PIECE_PATTERN,
  'fl() { k=0; while [ $k -lt 8 ]; do t=$2; IFS= read -r s || { [ "$s" ] || return 0; t=$4; }; ' +
  '[ "$s" = "$X" ] && return 0; case $s in *"$X") s=${s%"$X"}; t=$4;; esac; ' +
  `while [ \${#s} -gt ${PIECE_BYTES} ]; do printf "%s %s %.${PIECE_BYTES}s\\n" "$1" "$3" "$s"; ` +
  "s=${s#$Q}; k=7; done; " +
  'printf "%s %s %s\\n" "$1" "$t" "$s"; k=$((k + 1)); done; return 1; }',
  'aw() { exec $A -v p="$1 $2 " -v c="$1 $3 " -v z="$1 $4 " -v x="$X" "$F"; }',
  // fr: the same for a forked framer (stderr's), which becomes awk.
  'fr() { fl "$@" || aw "$@"; }',
  // su <id> <cmdline>: run one client, frame its stdout itself (a fork
  // saved: it reads until the client's end, EOF), then report its exit. It
  // holds stderr's fifo open, to append the nonce after the client's end,
  // and stdout's once awk took it on. A third argument: stdout is bytes,
  // not lines (hex records, `b`), through od and awk to EOF.
  // Its client's stdin comes opened from st (fd 9), never by name: a C
  // record right after S may have removed the name already.
  "su() { f=$d/$1; o=; exec 4<&9 7<&- 8<&- 9<&-; " +
  '[ "$3" ] && { od -An -v -tx1 <"$f.o" | $A -v p="$1 b " "$H" & }; ' +
  'fr "$1" e E q <"$f.e" & exec 6>"$f.e"; ' +
  // Both ends of stdout's fifo opened here, neither open waiting for the
  // other: a client killed (K) before it ran cannot leave su waiting.
  'if [ "$3" ]; then exec 5>"$f.o"; else exec 5<>"$f.o" 3<"$f.o"; fi; ' +
  '{ eval "exec $2"; } <&4 >&5 2>&6 3<&- 4<&- 5>&- 6>&- & c=$!; echo $c >"$f.c"; exec 4<&-; ' +
  'if [ ! "$3" ]; then exec 5>&-; fl "$1" o O p <&3 || ' +
  '{ exec 5>"$f.o"; o=1; aw "$1" o O p <&3 5>&- 6>&- & }; exec 3<&-; fi; ' +
  'wait $c; s=$?; [ -f "$f.h" ] && echo 1<>"$f.w"; ' +
  '[ "$o" ] && printf "%s\\n" "$X" >&5; printf "%s\\n" "$X" >&6; exec 5>&- 6>&-; ' +
  'wait; true >"$f.c"; true >"$f.d"; ' +
  '[ -f "$f.h" ] || rm -f "$f.o" "$f.e" "$f.w" "$f.c" "$f.d"; printf "%s x %d\\n" "$1" $s; }',
  // mk <id>: the fifos of this client and the next 15 ids (fiwi numbers
  // them in order), in one mkfifo: one exec for 16 clients, not one each.
  "mk() { j=$1; k=$(($1 + 16)); set --; while [ $j -lt $k ]; do " +
  '[ -e "$d/$j.w" ] || set -- "$@" "$d/$j.i" "$d/$j.o" "$d/$j.e" "$d/$j.w"; ' +
  'j=$((j + 1)); done; [ $# -eq 0 ] || mkfifo "$@"; }',
  // st <id> <cmdline>: the fifos and the stdin holder, then the client.
  // The wake fifo (.w, made last) exists only once all four do.
  'st() { f=$d/$1; [ -p "$f.w" ] || mk "$1" 2>/dev/null; if [ ! -p "$f.w" ]; then ' +
  'printf "%s q %s\\n%s x 255\\n" "$1" "fiwi gateway: mkfifo failed in $d" "$1"; return; fi; ' +
  // The fifo is opened here, before the next record: a byte written to a
  // fifo nobody holds open is lost. Its read end (fd 9) is opened while fd 7
  // (read-write) holds it, so that open cannot wait for a writer. The
  // holder (a subshell: no exec) waits for a line on the wake fifo, which
  // it holds from here on (fd 8), so a line su writes early still counts.
  'exec 7<>"$f.i" 9<"$f.i" 8<>"$f.w"; ' +
  "{ read -r _ <&8; exec 8<&-; while read -r _; do :; done; } <&7 7<&- 9<&- >/dev/null 2>&1 & " +
  'echo $! >"$f.h"; su "$1" "$2" "$3" & exec 7<&- 8<&- 9<&-; }',
  // A C removes a finished client's files in batches of 32: one rm, not
  // one a client. The names are ids (digits) and fixed suffixes.
  'G=; g=0; gc() { [ $g -gt 0 ] && (cd "$d" && exec rm -f $G); G=; g=0; }',
  'printf "0 r %d\\n" $$',
  // z: the client was closed (C) and its files wait for the next batch.
  'while read -r t i a; do f=$d/$i; z=; case "$G " in *" $i."*) z=1;; esac; case $t in ' +
  'L) st "$i" "$a";; ' +
  'S) c=$(head -c "$a"); st "$i" "$c";; ' +
  'B) c=$(head -c "$a"); st "$i" "$c" b;; ' +
  'I) if [ ! "$z" ] && [ -p "$f.i" ]; then head -c "$a" 1<>"$f.i"; else head -c "$a" >/dev/null; fi;; ' +
  'C) read -r h 2>/dev/null <"$f.h" && kill -KILL $h 2>/dev/null; ' +
  'if [ -f "$f.d" ]; then G="$G $i.[hioewcd]"; g=$((g + 1)); [ $g -lt 32 ] || gc; ' +
  'else rm -f "$f.h" "$f.i"; [ -f "$f.d" ] && rm -f "$f".[oewcd]; fi;; ' +
  'K) read -r c 2>/dev/null <"$f.c" && kill -s "$a" $c 2>/dev/null;; ' +
  // A write error (full disk) must not leave the rest of the record to be
  // read as records: the second cat drains it.
  'P) head -c "$a" | { cat >>"$f.s" || { : >"$f.b"; cat >/dev/null; }; };; ' +
  'F) s=$d/$a; if [ ! "$z" ] && [ -f "$f.h" ] && [ -f "$s.s" ] && [ ! -f "$s.b" ] && ' +
  'command exec 8>"$f.i"; then cat "$s.s" >&8 8>&- & exec 8>&-; fi;; ' +
  'R) rm -f "$f.s" "$f.b" "$f".[ioew];; ' +
  "esac; done",
].join("\n");

/**
 * The remote command that runs the gateway program on a gateway: `exec sh
 * -c <program> fiwi-gateway <nonce>`, for the gateway's login shell.
 *
 * @example
 * ```ts
 * import { assert } from "jsr:@std/assert@^1";
 * import { gatewayCommand } from "./program.ts";
 * assert(gatewayCommand("00ff00ff").startsWith("exec sh -c '"));
 * ```
 */
export function gatewayCommand(nonce: string): string {
  if (!/^[0-9a-f]{8,64}$/.test(nonce)) {
    throw new TypeError(
      `Invalid gateway nonce ${JSON.stringify(nonce)}: give 8 to 64 hex digits`,
    );
  }
  return `exec sh -c ${shellQuote(GATEWAY_PROGRAM)} ${GATEWAY_NAME} ${nonce}`;
}
