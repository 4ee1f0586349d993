/**
 * The gateway protocol's records (see program.ts): encoding what fiwi
 * sends, splitting what the gateway prints back into records. Pure.
 *
 * @module
 */

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/** A signal fiwi may send to a client behind a gateway. */
export type GatewaySignal = "TERM" | "KILL" | "INT" | "HUP";

/** One record the gateway printed: `<id> <type> <payload>`. */
export interface GatewayRecord {
  /** The client's id; 0 for the gateway itself. */
  id: number;
  /** One letter: o O p b e E q x r. */
  type: string;
  /** The bytes after `<id> <type> `, newline removed. */
  payload: Uint8Array;
}

function concat(head: string, body: Uint8Array): Uint8Array {
  const h = encoder.encode(head);
  const out = new Uint8Array(h.byteLength + body.byteLength);
  out.set(h);
  out.set(body, h.byteLength);
  return out;
}

/**
 * Start a client: `L <id> <line>` when the program's `read -r` keeps the
 * command line whole (no newline, no blank at either end), which saves the
 * gateway a fork and an exec; else `S <id> <n>` and the command line.
 */
export function startRecord(id: number, commandLine: string): Uint8Array {
  if (/^[^\s](?:[^\n]*[^\s])?$/.test(commandLine)) {
    return encoder.encode(`L ${id} ${commandLine}\n`);
  }
  const body = encoder.encode(commandLine);
  return concat(`S ${id} ${body.byteLength}\n`, body);
}

/**
 * `B <id> <n>` and the command line: start a client whose stdout comes back
 * as bytes (`b` records, hex), not lines.
 */
export function byteStartRecord(id: number, commandLine: string): Uint8Array {
  const body = encoder.encode(commandLine);
  return concat(`B ${id} ${body.byteLength}\n`, body);
}

/** The bytes of a `b` record's payload: hex pairs, blanks between. */
export function decodeHex(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.byteLength >> 1);
  let n = 0;
  let high = -1;
  for (const c of payload) {
    const v = c >= 0x30 && c <= 0x39
      ? c - 0x30
      : c >= 0x61 && c <= 0x66
      ? c - 0x57
      : -1;
    if (v < 0) continue;
    if (high < 0) high = v;
    else {
      out[n++] = (high << 4) | v;
      high = -1;
    }
  }
  return out.subarray(0, n);
}

/** `I <id> <n>` and the bytes: input for a client. */
export function inputRecord(id: number, bytes: Uint8Array): Uint8Array {
  return concat(`I ${id} ${bytes.byteLength}\n`, bytes);
}

/** `P <sid> <n>` and the bytes: append them to staged payload `sid`. */
export function stageRecord(sid: number, bytes: Uint8Array): Uint8Array {
  return concat(`P ${sid} ${bytes.byteLength}\n`, bytes);
}

/** `F <id> <sid>`: feed staged payload `sid` to a client's stdin. */
export function feedRecord(id: number, sid: number): Uint8Array {
  return encoder.encode(`F ${id} ${sid}\n`);
}

/** `R <sid>`: remove staged payload `sid`. */
export function unstageRecord(sid: number): Uint8Array {
  return encoder.encode(`R ${sid}\n`);
}

/** `C <id>`: close a client's stdin. */
export function closeRecord(id: number): Uint8Array {
  return encoder.encode(`C ${id}\n`);
}

/** `K <id> <signal>`: signal a client. */
export function killRecord(id: number, signal: GatewaySignal): Uint8Array {
  return encoder.encode(`K ${id} ${signal}\n`);
}

/** The gateway's name for a Deno signal; null for one it is not sent. */
export function gatewaySignal(signal: Deno.Signal): GatewaySignal | null {
  const name = signal.replace(/^SIG/, "");
  return ["TERM", "KILL", "INT", "HUP"].includes(name)
    ? name as GatewaySignal
    : null;
}

const RECORD_RE = /^(0|[1-9][0-9]{0,9}) ([a-zA-Z])(?: |$)/;

/**
 * Parse one line the gateway printed (newline removed), or null when it is
 * not a record.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseRecord } from "./_records.ts";
 * const r = parseRecord(new TextEncoder().encode("7 o hello"));
 * assertEquals([r?.id, r?.type, new TextDecoder().decode(r?.payload)], [7, "o", "hello"]);
 * ```
 */
export function parseRecord(line: Uint8Array): GatewayRecord | null {
  // The header is ASCII and short: decode only its first bytes.
  const head = String.fromCharCode(...line.subarray(0, 14));
  const m = RECORD_RE.exec(head);
  if (!m) return null;
  const start = Math.min(m[0].length, line.byteLength);
  return {
    id: Number(m[1]),
    type: m[2],
    payload: line.subarray(m[0].endsWith(" ") ? start : line.byteLength),
  };
}

/**
 * Splits the gateway's stdout, chunk by chunk, into lines (bytes, newline
 * removed). A line cut between chunks is kept until its end arrives.
 */
export class LineSplitter {
  #rest: Uint8Array = new Uint8Array(0);

  /** The complete lines in `chunk` (with what was left of the last one). */
  push(chunk: Uint8Array): Uint8Array[] {
    const data = this.#rest.byteLength ? joinBytes(this.#rest, chunk) : chunk;
    const lines: Uint8Array[] = [];
    let from = 0;
    for (;;) {
      const nl = data.indexOf(NEWLINE, from);
      if (nl < 0) break;
      lines.push(data.subarray(from, nl));
      from = nl + 1;
    }
    this.#rest = data.slice(from);
    return lines;
  }
}

function joinBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
