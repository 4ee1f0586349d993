/**
 * From a rig file on disk to text the YAML parser may take: at most
 * {@linkcode MAX_RIG_FILE_BYTES} bytes are ever read (so `/dev/zero` or a
 * runaway generator cannot fill memory), and the bytes must be UTF-8 (the
 * first bad byte is reported at its line and column, not replaced).
 *
 * @module
 */

import { RigFileError } from "../errors.ts";

/**
 * The largest rig file read: 1 MiB. A rack of 64 nodes takes about 5 KiB,
 * and this bound keeps a whole check well under a second.
 */
export const MAX_RIG_FILE_BYTES = 1024 * 1024;

const utf8 = (fatal: boolean) => new TextDecoder("utf-8", { fatal });

/** Read `file` whole, refusing more than {@linkcode MAX_RIG_FILE_BYTES}. */
export async function readRigText(file: string): Promise<string> {
  using handle = await Deno.open(file, { read: true });
  const bytes = new Uint8Array(MAX_RIG_FILE_BYTES + 1);
  let length = 0;
  while (length < bytes.length) {
    const n = await handle.read(bytes.subarray(length));
    if (n === null) break;
    length += n;
  }
  return decodeRigText(file, bytes.subarray(0, length));
}

/**
 * Rig-file bytes as text. Throws {@linkcode RigFileError} at the first
 * byte past the size limit, or at the first byte that is not UTF-8.
 */
export function decodeRigText(file: string, bytes: Uint8Array): string {
  if (bytes.length > MAX_RIG_FILE_BYTES) {
    const { line, column } = placeOf(bytes, MAX_RIG_FILE_BYTES);
    throw new RigFileError(
      file,
      line,
      column,
      `The rig file is larger than ${MAX_RIG_FILE_BYTES} bytes (1 MiB): give a smaller file`,
    );
  }
  try {
    return utf8(true).decode(bytes);
  } catch {
    const bad = firstInvalidByte(bytes);
    const { line, column } = placeOf(bytes, bad);
    const hex = bytes[bad].toString(16).toUpperCase().padStart(2, "0");
    throw new RigFileError(
      file,
      line,
      column,
      `Invalid UTF-8: byte 0x${hex} starts no valid character: save the file as UTF-8`,
    );
  }
}

/** Refuse rig text longer than the file limit (for text given directly). */
export function checkRigTextSize(file: string, text: string): void {
  if (text.length <= MAX_RIG_FILE_BYTES) return;
  decodeRigText(file, new TextEncoder().encode(text));
}

/**
 * Offset of the first byte of the first invalid UTF-8 sequence. A fatal
 * decoder in streaming mode accepts any prefix that holds no error (an
 * unfinished character may still be completed), so the shortest failing
 * prefix ends at the byte that made it invalid.
 */
function firstInvalidByte(bytes: Uint8Array): number {
  const decodes = (n: number) => {
    try {
      utf8(true).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  if (decodes(bytes.length)) {
    // Nothing wrong but the end: a character cut short. Find its lead byte.
    let end = bytes.length - 1;
    while (end > 0 && end > bytes.length - 4 && (bytes[end] & 0xc0) === 0x80) {
      end--;
    }
    return end;
  }
  let lo = 0; // decodes
  let hi = bytes.length; // fails (the whole input does)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (decodes(mid)) lo = mid;
    else hi = mid;
  }
  let bad = hi - 1;
  // When the byte at `bad` falls inside a sequence begun by a lead byte
  // before it, that lead is where the bad character starts.
  for (let back = 1; back <= 3 && bad - back >= 0; back++) {
    const b = bytes[bad - back];
    if (b >= 0xc0) {
      const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      if (back < length) bad -= back;
      break;
    }
    if (b < 0x80) break;
  }
  return bad;
}

/** 1-based line and column (in characters) of the byte at `offset`. */
function placeOf(
  bytes: Uint8Array,
  offset: number,
): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  const before = utf8(false).decode(bytes.subarray(lineStart, offset));
  return { line, column: before.length + 1 };
}
