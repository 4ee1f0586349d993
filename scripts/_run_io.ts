/**
 * What `fiwi run` sends and keeps besides the terminal: the stdin payload
 * every node gets (`--stdin FILE`, `--stdin -`, or standard input when it is
 * not a terminal, as clush does; `--no-stdin` skips it), and `--output-dir
 * DIR` with one file per node and stream.
 *
 * @module
 */

import { join } from "jsr:@std/path@^1";
import { ConfigurationError, type Line } from "../mod.ts";
import { UsageError, userPath } from "./_cli.ts";

/** Most bytes `--stdin` reads: the payload is held in memory once. */
export const MAX_STDIN = 256 * 1024 * 1024;

/**
 * One `read`, or a rejection with the signal's reason once it aborts. The
 * read itself cannot be cancelled (a pipe whose writer never writes keeps
 * it pending); the command then ends with `Deno.exit`, which does not wait
 * for it.
 */
function readOrAbort(
  file: Deno.FsFile | typeof Deno.stdin,
  buf: Uint8Array,
  signal?: AbortSignal,
): Promise<number | null> {
  if (!signal) return file.read(buf);
  signal.throwIfAborted();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([file.read(buf), aborted]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}

/** Read all of `file` (up to {@linkcode MAX_STDIN}) into one buffer. */
async function readCapped(
  file: Deno.FsFile | typeof Deno.stdin,
  what: string,
  signal?: AbortSignal,
) {
  const parts: Uint8Array[] = [];
  let size = 0;
  const buf = new Uint8Array(1 << 16);
  for (;;) {
    const n = await readOrAbort(file, buf, signal);
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

/** Options of {@linkcode stdinPayload}. */
export interface StdinOptions {
  /** `--no-stdin`: standard input is not read unless `flag` is "-". */
  skipStdin?: boolean;
  /**
   * Stops the read (Ctrl-C, SIGTERM, SIGHUP): the payload then rejects
   * with the signal's reason, also while a pipe sends nothing.
   */
  signal?: AbortSignal;
  /**
   * Called once before standard input is read, with whether it is a
   * terminal (for the progress line: "reading standard input").
   */
  onStdin?: (terminal: boolean) => void;
}

/** The progress-line text while standard input is read. */
export function readingStdinText(terminal: boolean): string {
  return terminal
    ? "reading standard input (Ctrl-D to end)…"
    : "reading standard input until it ends (--no-stdin sends none)…";
}

/**
 * The bytes every node gets on its stdin: `--stdin FILE`, `--stdin -`, or
 * standard input when it is not a terminal and `skipStdin` is false;
 * undefined when there are none (the command reads EOF at once). Whether
 * standard input is /dev/null or a pipe cannot be asked without full read
 * access to /dev (Deno requires --allow-all for it), so it is read: EOF
 * comes at once from /dev/null, and a pipe that is never closed waits
 * until it ends or `signal` aborts.
 */
export async function stdinPayload(
  flag: string | undefined,
  options: StdinOptions = {},
): Promise<Uint8Array | undefined> {
  const { skipStdin = false, signal } = options;
  const terminal = Deno.stdin.isTerminal();
  if (flag === "-" || (flag === undefined && !skipStdin && !terminal)) {
    options.onStdin?.(terminal);
    const bytes = await readCapped(Deno.stdin, "Standard input", signal);
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
    // A FIFO given as FILE can wait as long as a pipe.
    return await readCapped(file, `--stdin "${path}"`, signal);
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
