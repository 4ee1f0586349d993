/**
 * The line editor of `fiwi run`'s prompt, and its history file.
 *
 * Deno has no readline of its own (no `std/readline`), but Node's
 * `node:readline` works under Deno 2 on a terminal, history and arrow keys
 * included (tried on a pty with Deno 2.9), so the editing is readline's:
 * printable input, backspace, left/right, up/down through the history,
 * Enter, Ctrl-U, Ctrl-C (clears the line), Ctrl-D (leaves on an empty line).
 * Arrows are understood in both encodings (`ESC [ A` and `ESC O A`), so a
 * node that switched the terminal's cursor keys does not break recall.
 *
 * What readline does not do is let a line run while the terminal stays
 * fiwi's: readline owns its input until closed, and a Ctrl-C on a cooked
 * terminal is a SIGINT, which would end the whole invocation
 * (`_signals.ts`). So fiwi holds the terminal itself: raw mode (no SIGINT,
 * no echo; output processing stays on, so `\n` still returns the carriage)
 * for the whole session, its own reader of stdin, and readline fed from
 * it. While a line runs, nothing goes to readline: a Ctrl-C stops the line
 * (and drops what was typed ahead, as a terminal does), other keys wait for
 * the next prompt. The mode is restored on every way out: dispose, and
 * `unload` for `Deno.exit` (a second signal exits at once).
 *
 * @module
 */

import { dirname, join } from "jsr:@std/path@^1";
import { createInterface, type Interface } from "node:readline";
import { PassThrough, Writable } from "node:stream";
import { defaultLogFile } from "./_log.ts";
import { writeAllBytes } from "./_output.ts";

/** Lines the history file keeps (the newest). */
export const HISTORY_SIZE = 1000;

/** Ctrl-C as the terminal sends it in raw mode. */
const CTRL_C = 0x03;

/** Options of {@linkcode LineEditor.open}. */
export interface LineEditorOptions {
  /** Earlier lines, oldest first (up recalls the last one first). */
  history?: readonly string[];
  /** Lines up/down can recall (default {@linkcode HISTORY_SIZE}). */
  historySize?: number;
}

/** Columns of the terminal, 80 when it does not say. */
function columns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/**
 * The prompt's editor on the terminal of stdin, drawing on stderr (as a
 * shell does: stdout stays the nodes' output). One per session; dispose it
 * to give the terminal back.
 */
export class LineEditor implements Disposable {
  #rl: Interface;
  #input = new PassThrough();
  #output: Writable & { columns: number };
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Lines entered and not read yet; null: the editor closed (Ctrl-D). */
  #lines: (string | null)[] = [];
  #wake: (() => void) | null = null;
  #reading = false;
  /** Bytes typed while no prompt was shown. */
  #ahead: Uint8Array[] = [];
  #onCtrlC: (() => void) | null = null;
  #closed = false;
  #restore = () => {
    try {
      Deno.stdin.setRaw(false);
    } catch { /* not a terminal any more */ }
  };
  #resize = () => {
    this.#output.columns = columns();
    this.#output.emit("resize");
  };

  private constructor(options: LineEditorOptions) {
    this.#output = Object.assign(
      new Writable({
        write(chunk, _encoding, done) {
          try {
            writeAllBytes(
              Deno.stderr,
              typeof chunk === "string"
                ? new TextEncoder().encode(chunk)
                : chunk,
            );
          } catch { /* a terminal that hung up */ }
          done();
        },
      }),
      { columns: columns() },
    );
    this.#rl = createInterface({
      input: this.#input,
      output: this.#output,
      terminal: true,
      // readline's history is newest first.
      history: [...options.history ?? []].reverse(),
      historySize: options.historySize ?? HISTORY_SIZE,
    });
    this.#rl.on("line", (line) => this.#push(line));
    this.#rl.on("close", () => this.#push(null));
    this.#rl.on("SIGINT", () => {
      // Ctrl-C at the prompt clears the line, wherever the cursor is.
      this.#rl.write(null, { ctrl: true, name: "e" });
      this.#rl.write(null, { ctrl: true, name: "u" });
    });
    // No job control: readline would signal the process itself.
    this.#rl.on("SIGTSTP", () => {});
    this.#reader = Deno.stdin.readable.getReader();
  }

  /**
   * Put the terminal of stdin in raw mode and start reading it. Throws when
   * stdin is not a terminal.
   */
  static open(options: LineEditorOptions = {}): LineEditor {
    Deno.stdin.setRaw(true);
    const editor = new LineEditor(options);
    globalThis.addEventListener("unload", editor.#restore);
    try {
      Deno.addSignalListener("SIGWINCH", editor.#resize);
    } catch { /* a platform without it */ }
    editor.#pump();
    return editor;
  }

  #push(line: string | null): void {
    this.#lines.push(line);
    this.#wake?.();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.#feed(value);
      }
    } catch { /* the terminal went away, or dispose cancelled the read */ }
    // End of input is Ctrl-D's: the editor closes.
    this.#input.end();
  }

  #feed(bytes: Uint8Array): void {
    if (this.#reading) {
      this.#input.write(bytes);
      return;
    }
    if (this.#onCtrlC && bytes.includes(CTRL_C)) {
      this.#ahead = [];
      this.#onCtrlC();
      return;
    }
    this.#ahead.push(bytes);
  }

  /**
   * Show `prompt` and resolve with the line entered; null once the user
   * left (Ctrl-D on an empty line, end of input) or `signal` aborted.
   */
  async read(prompt: string, signal: AbortSignal): Promise<string | null> {
    if (this.#closed || signal.aborted) return null;
    if (this.#lines.length === 0) {
      this.#rl.setPrompt(prompt);
      this.#rl.prompt();
      this.#reading = true;
      for (const bytes of this.#ahead.splice(0)) this.#input.write(bytes);
    }
    const onAbort = () => this.#wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (this.#lines.length === 0 && !signal.aborted) {
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#wake = null;
      this.#reading = false;
    }
    const line = signal.aborted ? null : this.#lines.shift()!;
    if (line === null) {
      // Left with the cursor after the prompt: the shell's prompt that
      // follows starts a line of its own.
      this.#closed = true;
      this.#output.write("\n");
    }
    return line;
  }

  /**
   * While the returned value is not disposed, a Ctrl-C calls `onCtrlC`
   * (a line runs); other keys wait for the next prompt.
   */
  whileRunning(onCtrlC: () => void): Disposable {
    this.#onCtrlC = onCtrlC;
    return { [Symbol.dispose]: () => this.#onCtrlC = null };
  }

  /** Close the editor and give the terminal its mode back. */
  [Symbol.dispose](): void {
    this.#closed = true;
    this.#rl.close();
    this.#reader.cancel().catch(() => {});
    try {
      Deno.removeSignalListener("SIGWINCH", this.#resize);
    } catch { /* never added */ }
    globalThis.removeEventListener("unload", this.#restore);
    this.#restore();
  }
}

/**
 * The history file: `history` beside the default central log, in the state
 * directory (`$XDG_STATE_HOME/fiwi/`, else `~/.local/state/fiwi/`; see
 * {@linkcode defaultLogFile}). `env` reads a variable.
 */
export function historyPath(
  env: (name: string) => string | undefined,
): string {
  return join(dirname(defaultLogFile(env)), "history");
}

/** The last `max` lines of a history file's text, oldest first. */
export function historyLines(text: string, max = HISTORY_SIZE): string[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  return lines.slice(Math.max(0, lines.length - max));
}

/**
 * The prompt's history file: private (0600, in a 0700 directory created
 * when missing), one line a line, appended as lines are entered (so two
 * sessions at once both keep theirs) and cut to the newest
 * {@linkcode HISTORY_SIZE} lines when a session opens and closes it.
 */
export class HistoryFile implements AsyncDisposable {
  /** Where it is. */
  readonly path: string;
  /** Its lines when opened, oldest first. */
  readonly lines: readonly string[];
  #last: string | undefined;

  private constructor(path: string, lines: string[]) {
    this.path = path;
    this.lines = lines;
    this.#last = lines.at(-1);
  }

  /** Open (and create) the file at `path`, cut to its newest lines. */
  static async open(path: string): Promise<HistoryFile> {
    const dir = dirname(path);
    if (!(await Deno.stat(dir).then(() => true, () => false))) {
      await Deno.mkdir(dirname(dir), { recursive: true });
      await Deno.mkdir(dir, { mode: 0o700 }).catch((e) => {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      });
    }
    (await Deno.open(path, { append: true, create: true, mode: 0o600 }))
      .close();
    // A file made by hand, or by an older fiwi, becomes private too.
    if (((await Deno.stat(path)).mode ?? 0) & 0o077) {
      await Deno.chmod(path, 0o600);
    }
    return new HistoryFile(path, await HistoryFile.#cut(path));
  }

  /** Cut the file to its newest lines; those lines. */
  static async #cut(path: string): Promise<string[]> {
    const text = await Deno.readTextFile(path);
    const lines = historyLines(text);
    const kept = lines.map((l) => l + "\n").join("");
    if (kept !== text) {
      // Written aside and renamed: a crash never leaves half a history.
      const aside = `${path}.${crypto.randomUUID().slice(0, 8)}`;
      await Deno.writeTextFile(aside, kept, { mode: 0o600 });
      await Deno.rename(aside, path);
    }
    return lines;
  }

  /** Append `line`, unless blank or the same as the line before it. */
  async add(line: string): Promise<void> {
    if (line.trim() === "" || line === this.#last) return;
    this.#last = line;
    await Deno.writeTextFile(this.path, line + "\n", {
      append: true,
      mode: 0o600,
    });
  }

  /**
   * Cut the file to its newest lines again; a file that went away meanwhile
   * is no error (the history is a convenience, not the session's result).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await HistoryFile.#cut(this.path).catch(() => {});
  }
}
