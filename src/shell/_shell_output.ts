/**
 * The output side of a persistent shell, as a pure state machine: text from
 * the shell's stdout and stderr goes in, in arrival order; out come the
 * remote pid (from fiwi's start line), each run's own output and status
 * (cut at the run's sentinels), and matches for `expect`.
 *
 * A run's script ends with `printf '<sentinel> %d\n' "$?"` on stdout and
 * `printf '<sentinel>\n'` on stderr. Matching is on raw text, not lines, so
 * output without a final newline stays exact. Text outside a run (or after
 * a run's sentinel) goes to the buffer `expect` searches.
 *
 * @module
 */

import { isClientNoise, parseStartLine } from "../transport/wrapper.ts";

/** One run's own output and exit status. */
export interface RawRun {
  /** Exit status (the shell's, when the command ended the shell). */
  code: number | null;
  /** What it wrote to stdout. */
  stdout: string;
  /** What it wrote to stderr. */
  stderr: string;
}

interface PendingRun extends Omit<RawRun, "code"> {
  sentinel: string;
  code: number | null | undefined;
  errDone: boolean;
  resolve: (r: RawRun) => void;
}

interface Waiter {
  re: RegExp;
  resolve: (text: string) => void;
  reject: (e: unknown) => void;
}

/** Demultiplexes a shell's output into start, runs and expect matches. */
export class ShellOutput {
  /** Pid from the start line, once seen. */
  remotePid: number | null = null;
  /** Stderr before the start line (ssh's own messages on failure). */
  preStart = "";
  /** Text no run claimed, waiting for `expect`. */
  pending = "";
  #onStart: () => void;
  #run: PendingRun | null = null;
  #waiter: Waiter | null = null;

  /** @param onStart called once, when the start line has been seen */
  constructor(onStart: () => void = () => {}) {
    this.#onStart = onStart;
  }

  /** Feed text from the shell's stdout. */
  stdout(text: string): void {
    const run = this.#run;
    if (!run || run.code !== undefined) return this.#unclaimed(text);
    run.stdout += text;
    const mark = run.stdout.indexOf(run.sentinel + " ");
    if (mark < 0) return;
    const eol = run.stdout.indexOf("\n", mark);
    if (eol < 0) return;
    run.code = Number(run.stdout.slice(mark + run.sentinel.length + 1, eol));
    const after = run.stdout.slice(eol + 1);
    run.stdout = run.stdout.slice(0, mark);
    this.#settle();
    if (after) this.#unclaimed(after);
  }

  /** Feed text from the shell's stderr. */
  stderr(text: string): void {
    if (this.remotePid === null) {
      const rest = this.#scanForStart(text);
      if (rest === null || rest === "") return;
      text = rest;
    }
    const run = this.#run;
    if (!run || run.errDone) return this.#unclaimed(text);
    run.stderr += text;
    const mark = run.stderr.indexOf(run.sentinel + "\n");
    if (mark < 0) return;
    const after = run.stderr.slice(mark + run.sentinel.length + 1);
    run.stderr = run.stderr.slice(0, mark);
    run.errDone = true;
    this.#settle();
    if (after) this.#unclaimed(after);
  }

  /**
   * Look for the start line in stderr before it (by the one parser of
   * src/transport/wrapper.ts): ssh's noise is dropped, anything else stays
   * in `preStart` for failure classification. Returns the text after the
   * start line, or null while it has not come.
   */
  #scanForStart(text: string): string | null {
    this.preStart += text;
    let from = 0;
    for (
      let eol;
      (eol = this.preStart.indexOf("\n", from)) >= 0;
      from = eol + 1
    ) {
      const line = this.preStart.slice(from, eol);
      const pid = parseStartLine(line);
      if (pid !== null) {
        this.remotePid = pid;
        const rest = this.preStart.slice(eol + 1);
        this.preStart = this.preStart.slice(0, from);
        this.#onStart();
        return rest;
      }
      if (isClientNoise(line)) {
        this.preStart = this.preStart.slice(0, from) +
          this.preStart.slice(eol + 1);
        eol = from - 1;
      }
    }
    return null;
  }

  /**
   * Claim the output of the run marked by `sentinel`; resolves when both
   * sentinels were seen, or when the shell ends ({@linkcode ShellOutput.end}).
   */
  beginRun(sentinel: string): Promise<RawRun> {
    return new Promise((resolve) => {
      this.#run = {
        sentinel,
        stdout: "",
        stderr: "",
        code: undefined,
        errDone: false,
        resolve,
      };
    });
  }

  /** Forget the run marked by `sentinel` if it is still pending. */
  dropRun(sentinel: string): void {
    if (this.#run?.sentinel === sentinel) this.#run = null;
  }

  /** True while an `expect` is waiting. */
  get expecting(): RegExp | null {
    return this.#waiter?.re ?? null;
  }

  /**
   * Wait for `re` in the unclaimed text; resolves with everything up to and
   * including the match, which is consumed. One wait at a time.
   */
  expect(re: RegExp): { promise: Promise<string>; cancel(e: unknown): void } {
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const waiter: Waiter = { re, resolve, reject };
    this.#waiter = waiter;
    this.#check();
    return {
      promise,
      cancel: (e) => {
        if (this.#waiter === waiter) this.#waiter = null;
        reject(e);
      },
    };
  }

  /**
   * The shell ended with `code`: a pending run resolves with it (the
   * command ended the shell), a pending expect rejects with `error`.
   */
  end(code: number | null, error: unknown): void {
    const run = this.#run;
    if (run) {
      this.#run = null;
      run.resolve({ code, stdout: run.stdout, stderr: run.stderr });
    }
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      w.reject(error);
    }
  }

  #settle(): void {
    const run = this.#run;
    if (!run || run.code === undefined || !run.errDone) return;
    this.#run = null;
    run.resolve({ code: run.code, stdout: run.stdout, stderr: run.stderr });
  }

  #unclaimed(text: string): void {
    this.pending += text;
    this.#check();
  }

  #check(): void {
    const w = this.#waiter;
    if (!w) return;
    const m = w.re.exec(this.pending);
    if (!m) return;
    const end = m.index + m[0].length;
    const consumed = this.pending.slice(0, end);
    this.pending = this.pending.slice(end);
    this.#waiter = null;
    w.resolve(consumed);
  }
}
