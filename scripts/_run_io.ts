/**
 * What `fiwi run` sends and keeps besides the terminal: the stdin payload
 * every node gets (`--stdin FILE`, `--stdin -`, or standard input when it is
 * not a terminal, as clush does; `--no-stdin` skips it), and `--output-dir
 * DIR` with one file per node and stream.
 *
 * @module
 */

import { join } from "jsr:@std/path@^1";
import { ConfigurationError } from "../src/errors.ts";
import type { Line } from "../src/process/lines.ts";
import { UsageError, userPath } from "./_cli.ts";

/** Most bytes `--stdin` reads: the payload is held in memory once. */
export const MAX_STDIN = 256 * 1024 * 1024;

/** Read all of `file` (up to {@linkcode MAX_STDIN}) into one buffer. */
async function readCapped(file: Deno.FsFile | typeof Deno.stdin, what: string) {
  const parts: Uint8Array[] = [];
  let size = 0;
  const buf = new Uint8Array(1 << 16);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    size += n;
    if (size > MAX_STDIN) {
      throw new ConfigurationError(
        `${what} is over ${
          MAX_STDIN >> 20
        } MiB: copy large files with fiwi push`,
      );
    }
    parts.push(buf.slice(0, n));
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/**
 * The bytes every node gets on its stdin: `--stdin FILE`, `--stdin -`, or
 * standard input when it is not a terminal and `skipStdin` is false;
 * undefined when there are none (the command reads EOF at once). Whether
 * standard input is /dev/null or a pipe cannot be asked without full read
 * access to /dev (Deno requires --allow-all for it), so it is read: EOF
 * comes at once from /dev/null, and a pipe that is never closed waits.
 */
export async function stdinPayload(
  flag: string | undefined,
  skipStdin = false,
): Promise<Uint8Array | undefined> {
  if (
    flag === "-" ||
    (flag === undefined && !skipStdin && !Deno.stdin.isTerminal())
  ) {
    const bytes = await readCapped(Deno.stdin, "Standard input");
    return bytes.length > 0 || flag === "-" ? bytes : undefined;
  }
  if (flag === undefined) return undefined;
  const path = userPath(flag);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    throw new UsageError(
      `Cannot read --stdin "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  try {
    return await readCapped(file, `--stdin "${path}"`);
  } finally {
    file.close();
  }
}

const encoder = new TextEncoder();

/**
 * `--output-dir DIR`: `DIR/<node>.stdout` and `DIR/<node>.stderr` for every
 * node, created empty at the start, each line appended as it arrives (one
 * write per file per chunk of output; files are opened per write, so a
 * thousand nodes do not hold two thousand descriptors).
 */
export class NodeFiles {
  /** The directory, absolute. */
  readonly dir: string;
  #pending = new Map<string, string>();
  #scheduled = false;
  #error: Error | null = null;

  /** @param dir where the files go (created if missing) */
  constructor(dir: string) {
    this.dir = userPath(dir);
  }

  /** The file of `node`'s `stream`. */
  path(node: string, stream: "stdout" | "stderr"): string {
    return join(this.dir, `${node}.${stream}`);
  }

  /** Create the directory and an empty file per node and stream. */
  async create(nodes: readonly string[]): Promise<void> {
    try {
      await Deno.mkdir(this.dir, { recursive: true });
      for (const node of nodes) {
        await Deno.writeFile(this.path(node, "stdout"), new Uint8Array());
        await Deno.writeFile(this.path(node, "stderr"), new Uint8Array());
      }
    } catch (e) {
      throw new UsageError(
        `Cannot write to --output-dir "${this.dir}": ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  /** Queue one line for its node's file. */
  line(line: Line): void {
    const path = this.path(line.node, line.stream);
    const text = line.partial ? line.text : line.text + "\n";
    this.#pending.set(path, (this.#pending.get(path) ?? "") + text);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Append everything queued. */
  flush(): void {
    this.#scheduled = false;
    for (const [path, text] of this.#pending) {
      try {
        const file = Deno.openSync(path, { append: true });
        try {
          let bytes = encoder.encode(text);
          while (bytes.length) bytes = bytes.subarray(file.writeSync(bytes));
        } finally {
          file.close();
        }
      } catch (e) {
        this.#error ??= e as Error;
      }
    }
    this.#pending.clear();
  }

  /** Flush; throws the first write error, if any. */
  close(): void {
    this.flush();
    if (this.#error) {
      throw new ConfigurationError(
        `Cannot write to --output-dir "${this.dir}": ${this.#error.message}`,
        { cause: this.#error },
      );
    }
  }
}
