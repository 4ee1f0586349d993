/**
 * Ctrl-C, SIGTERM and SIGHUP for the `fiwi` command, as one AbortSignal.
 *
 * The first signal aborts: the subcommand stops every node in order, prints
 * its summary and exits with 128 + the signal number (130, 143, 129). More
 * SIGINTs within half a second of the first are the same keypress: `deno
 * task` forwards the terminal's SIGINT to its child, which the terminal
 * already signalled, so one Ctrl-C arrives twice, 1 ms apart. A signal
 * after that window means "now": the command exits at once. The remote
 * commands still end: each one's lifeline (the ssh client's stdin, which
 * this process holds) reaches EOF when it exits, and the watcher on the node
 * then kills the command's process group (the README's "Lifeline").
 *
 * @module
 */

/** Signals that stop a run, with the exit code each one gives. */
export const STOP_SIGNALS: Readonly<Partial<Record<Deno.Signal, number>>> = {
  SIGINT: 130,
  SIGTERM: 143,
  SIGHUP: 129,
};

/** Repeats of the first signal within this many ms are one keypress. */
export const BURST_MS = 500;

/** An AbortSignal aborted by the first stop signal. */
export interface Interrupt extends AbortSignal, Disposable {
  /** 130, 143 or 129 once a signal arrived; null before. */
  readonly exitCode: number | null;
  /** Name of the first signal, e.g. "SIGINT"; null before. */
  readonly signalName: Deno.Signal | null;
}

/** Options of {@linkcode interruptSignal}. */
export interface InterruptOptions {
  /** Called before the process exits on a second signal (clear the progress line). */
  beforeExit?: () => void;
  /** Milliseconds clock (tests). */
  now?: () => number;
  /** Exit the process (tests). */
  exit?: (code: number) => void;
}

/**
 * Listen for SIGINT, SIGTERM and SIGHUP until disposed; see the module doc.
 */
export function interruptSignal(options: InterruptOptions = {}): Interrupt {
  const now = options.now ?? (() => performance.now());
  const exit = options.exit ?? ((code: number) => Deno.exit(code));
  const controller = new AbortController();
  let first: { name: Deno.Signal; code: number; at: number } | null = null;
  const handlers = new Map<Deno.Signal, () => void>();
  const handle = (name: Deno.Signal) => {
    const code = STOP_SIGNALS[name]!;
    if (first === null) {
      first = { name, code, at: now() };
      controller.abort(new Error(`Interrupted by ${name}`));
      return;
    }
    if (now() - first.at < BURST_MS) return; // the same Ctrl-C, delivered twice
    options.beforeExit?.();
    exit(first.code);
  };
  for (const name of Object.keys(STOP_SIGNALS) as Deno.Signal[]) {
    const handler = () => handle(name);
    try {
      Deno.addSignalListener(name, handler);
      handlers.set(name, handler);
    } catch { /* a signal this platform lacks */ }
  }
  const signal = controller.signal as AbortSignal & {
    exitCode: number | null;
    signalName: Deno.Signal | null;
  };
  Object.defineProperties(signal, {
    exitCode: { get: () => first?.code ?? null },
    signalName: { get: () => first?.name ?? null },
  });
  return Object.assign(signal, {
    [Symbol.dispose]() {
      for (const [name, handler] of handlers) {
        Deno.removeSignalListener(name, handler);
      }
      handlers.clear();
    },
  }) as Interrupt;
}
