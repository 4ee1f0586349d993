/**
 * Shell: a named, long-lived shell on a node, for multi-step work whose
 * state (working directory, environment, shell variables) must carry from
 * one command to the next, and for driving interactive programs.
 *
 * One ssh client runs one remote `sh` that reads commands from a pipe.
 * {@linkcode Shell.run} writes a command followed by two sentinels, unique
 * to the run, that print its exit status on stdout and mark the end of its
 * stderr; everything before them is the command's own output, byte for byte.
 * The command runs in the shell itself (`command eval`, so a syntax error
 * does not end the shell) with stdin from `/dev/null`, so it can never eat
 * the commands that follow. {@linkcode Shell.send} writes raw text to the
 * shell's stdin instead, for a program started with it to read, and
 * {@linkcode Shell.expect} waits for a pattern in what the shell prints.
 *
 * Opening goes through the node's admission and connect timeout like any
 * run (src/shell/_open.ts); every limit is kept by the run's
 * {@linkcode Watchdog}. A run reports a timeout or an abort the way `rexec`
 * does, in its result (`timedOut`, `aborted`), and rejects only for bad
 * input or a shell that has ended.
 *
 * The shell reads its commands through the lifeline (src/transport/wrapper.ts):
 * closing the pipe, or fiwi dying, kills the remote shell's process group
 * (everything it started that did not leave the group), then the client
 * ends.
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using sh = await node.openShell("worker1");
 * await sh.run("cd /tmp && export MODE=fast");
 * const r = await sh.run('echo "$PWD $MODE"');
 * console.log(r.stdout); // "/tmp fast\n"
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { FiwiError, TimeoutError } from "../errors.ts";
import { validateTimeout } from "../process/run_options.ts";
import type { Client } from "../process/spawn.ts";
import { type TimeoutKind, Watchdog } from "../process/watchdog.ts";
import { classifyFailure } from "../transport/classify.ts";
import { validateCommand } from "../transport/validate.ts";
import { forget, openNamed } from "./_open.ts";
import { expectPattern, randomToken, runScript, shellResult } from "./_run.ts";
import { type RawRun, ShellOutput } from "./_shell_output.ts";
import type {
  ExpectOptions,
  ShellNode,
  ShellOptions,
  ShellResult,
  ShellRunOptions,
} from "./_shell_types.ts";

export type * from "./_shell_types.ts";

/**
 * Default of {@linkcode ExpectOptions.timeout}.
 *
 * @example
 * ```ts
 * import { DEFAULT_EXPECT_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_EXPECT_TIMEOUT); // 30000 ms for expect() without a timeout
 * ```
 */
export const DEFAULT_EXPECT_TIMEOUT = 30_000;

const log = getLogger(["fiwi", "shell"]);
const encoder = new TextEncoder();

/**
 * A named long-lived shell on a node; get one with `node.openShell(name)`.
 * Runs are queued: one command at a time, in call order.
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using sh = await node.openShell("doc-shell");
 * await sh.run("cd /tmp");
 * console.log((await sh.run("pwd")).stdout); // "/tmp\n"
 * ```
 */
export class Shell {
  /** The node the shell runs on. */
  readonly node: ShellNode;
  /** Its name, unique among the node's open shells. */
  readonly name: string;
  #client: Client;
  #token = randomToken();
  #seq = 0;
  #started: PromiseWithResolvers<void> = Promise.withResolvers();
  #out = new ShellOutput(() => this.#started.resolve());
  #queue: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | null = null;
  /** Why a run closed the shell ("its run of … timed out"), for later calls. */
  #closedBy: string | null = null;
  #ended = false;
  #finished: Promise<Deno.CommandStatus>;

  /** @internal use `node.openShell(name)` */
  constructor(node: ShellNode, name: string, client: Client) {
    this.node = node;
    this.name = name;
    this.#client = client;
    this.#started.promise.catch(() => {});
    const readers = Promise.all([
      pump(client.stdout, (t) => this.#out.stdout(t), client.readSignal),
      pump(client.stderr, (t) => this.#out.stderr(t), client.readSignal),
    ]);
    this.#finished = (async () => {
      const status = await client.status;
      client.releaseLifeline();
      if (client.stopping) await client.drain(readers);
      else await readers;
      this.#onEnd(status);
      return status;
    })();
  }

  /** Pid of the remote shell (its process group), once it runs. */
  get remotePid(): number | null {
    return this.#out.remotePid;
  }

  /** True once the shell has ended or is closing. */
  get closed(): boolean {
    return this.#ended || this.#closing !== null;
  }

  /** Resolves once the remote shell runs; rejects when it could not start. */
  get ready(): Promise<void> {
    return this.#started.promise;
  }

  #onEnd(status: Deno.CommandStatus): void {
    this.#ended = true;
    forget(this.node, this.name, this);
    if (this.#out.remotePid === null) {
      this.#started.reject(
        classifyFailure(this.node.name, status.code, this.#out.preStart),
      );
    }
    this.#out.end(status.signal ? null : status.code, this.#endedError());
  }

  #endedError(): FiwiError {
    const where = `Shell "${this.name}" on node "${this.node.name}"`;
    return new FiwiError(
      this.#closedBy
        ? `${where} was closed when ${this.#closedBy}: open a new one`
        : `${where} has ended: open a new one`,
    );
  }

  /**
   * Run `cmd` in the shell and resolve with its own exit status and output.
   * Directory changes, exports and variables persist for later runs.
   *
   * Like `rexec`, it resolves for every run-time outcome: a run whose
   * `timeout` expires resolves with `timedOut: "command"` (and a
   * `TimeoutError` in `error`), one whose signal aborts with `aborted: true`,
   * each with `code: null` and the output that arrived before. Such a run
   * closes the shell first (the remote group dies): the command runs in the
   * shell process itself, so the only way to stop it is to end that shell,
   * and a shell interrupted halfway (a `cd` not done, a heredoc half read)
   * is in a state no later run should build on. {@linkcode Shell.closed} is
   * then true, and later and queued runs reject with a {@linkcode FiwiError}
   * saying which run closed it: open a new shell. A run whose signal aborted
   * while it still waited in the queue was never written and leaves the
   * shell as it was. Closing the shell during a run resolves that run as
   * aborted.
   *
   * Rejects for bad input (`ConfigurationError`) and, with a
   * {@linkcode FiwiError}, when the shell has ended.
   */
  run(cmd: string, options: ShellRunOptions = {}): Promise<ShellResult> {
    try {
      validateCommand(cmd);
      validateTimeout("timeout", options.timeout);
    } catch (e) {
      return Promise.reject(e);
    }
    const next = this.#queue.then(() => this.#runNow(cmd, options));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #runNow(cmd: string, options: ShellRunOptions): Promise<ShellResult> {
    if (this.closed) throw this.#endedError();
    const t0 = performance.now();
    const { signal, timeout } = options;
    const end = (raw: RawRun, stopped: TimeoutKind | "abort" | null) => {
      const where = { cmd, node: this.node.name, shell: this.name };
      const durationMs = performance.now() - t0;
      const r = shellResult(raw, {
        ...where,
        stopped,
        limit: timeout,
        durationMs,
      });
      log.info(
        "Ran {cmd} in shell {shell} on {node}: exit {code} in {durationMs} ms",
        {
          ...where,
          code: r.code,
          durationMs: Math.round(durationMs),
          timedOut: r.timedOut,
          aborted: r.aborted,
        },
      );
      return r;
    };
    if (signal?.aborted) {
      return end({ code: null, stdout: "", stderr: "" }, "abort");
    }
    const sentinel = `__FIWI_SH_${this.#token}_${++this.#seq}__`;
    const done = this.#out.beginRun(sentinel);
    let stopped: TimeoutKind | "abort" | null = null;
    const stop = (why: TimeoutKind | "abort") => {
      if (stopped) return;
      stopped = why;
      dog.dispose();
      this.#closedBy ??= `its run of ${JSON.stringify(cmd)} ${
        why === "abort" ? "was aborted" : "timed out"
      }`;
      void this.close();
    };
    const dog = new Watchdog({ command: timeout }, stop);
    const onAbort = () => stop("abort");
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        await this.#write(runScript(cmd, sentinel));
      } catch (e) {
        if (!stopped && !this.#closing) throw e;
      }
      const raw = await done;
      // A close() from elsewhere stopped it: the same outcome as an abort.
      if (!stopped && this.#closing) stopped = "abort";
      // Resolve once the shell and what the command started are gone.
      if (stopped) await this.close();
      return end(raw, stopped);
    } finally {
      dog.dispose();
      signal?.removeEventListener("abort", onAbort);
      this.#out.dropRun(sentinel);
    }
  }

  async #write(text: string): Promise<void> {
    if (this.closed) throw this.#endedError();
    if (!(await this.#client.write(encoder.encode(text)))) {
      throw new FiwiError(
        `Cannot write to shell "${this.name}" on node "${this.node.name}": its input is closed`,
      );
    }
  }

  /**
   * Write `text` as is to the shell's stdin, for a program started in the
   * shell to read. Shells and programs read ahead from a pipe: send input
   * once the program waits for it (expect its prompt first), and let a
   * program that reads stdin end before the next {@linkcode Shell.run}, or
   * it may swallow that run's command.
   */
  async send(text: string): Promise<void> {
    await this.#write(text);
  }

  /**
   * Wait until `pattern` appears in what the shell printed (stdout and
   * stderr, in arrival order, outside of {@linkcode Shell.run}), and resolve
   * with everything up to and including the match; that text is consumed.
   *
   * Unlike a run, expect is a wait for a pattern, not a command: nothing
   * needs stopping when it gives up, so it rejects and the shell stays open
   * and usable, the unmatched text still buffered for the next expect. It
   * rejects with a {@linkcode TimeoutError} of kind "io" when no match came
   * within `timeout` ms, counted from the call (output that does not match
   * does not extend it; the watchdog's short confirmation lets a match
   * already on its way win), with the signal's reason on abort, and with a
   * {@linkcode FiwiError} when the shell ends first.
   */
  async expect(
    pattern: RegExp | string,
    options: ExpectOptions = {},
  ): Promise<string> {
    const timeout = options.timeout ?? DEFAULT_EXPECT_TIMEOUT;
    validateTimeout("timeout", timeout);
    const re = expectPattern(pattern);
    const busy = this.#out.expecting;
    if (busy) {
      throw new FiwiError(
        `Shell "${this.name}" on node "${this.node.name}" is already expecting ${busy}: await it first`,
      );
    }
    const { signal } = options;
    signal?.throwIfAborted();
    const wait = this.#out.expect(re);
    if (this.#ended) wait.cancel(this.#endedError());
    // The io limit, started now and never fed activity: a wall-clock wait
    // that still gets the watchdog's confirmation before it counts.
    const dog = new Watchdog({ io: timeout }, () =>
      wait.cancel(
        new TimeoutError(
          "io",
          `Expected ${re} in shell "${this.name}" on node "${this.node.name}" within ${timeout} ms`,
        ),
      ));
    dog.started();
    const onAbort = () => wait.cancel(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await wait.promise;
    } finally {
      dog.dispose();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Close the shell: kill the remote process group (the shell and what it
   * started), end the local client, and wait until both are gone. A run in
   * progress resolves as aborted, with the output so far; queued runs and a
   * pending expect reject. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // The lifeline: the remote watcher kills the shell's group at EOF, the
    // channel closes and the client ends; stop() bounds each step.
    await this.#client.stop();
    await this.#finished;
  }

  /** Same as {@linkcode Shell.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function pump(
  bytes: ReadableStream<Uint8Array>,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<void> {
  try {
    const text = bytes.pipeThrough(new TextDecoderStream(), { signal });
    for await (const chunk of text) {
      onText(chunk);
    }
  } catch { /* the client was killed: what arrived is all there is */ }
}

/**
 * Open the named shell `name` on `node` (what `node.openShell(name)` does).
 * Each attempt waits for the node's admission (as every run does), then
 * must see the remote shell start within the connect timeout. Rejects with
 * the connection's error class (`ConnectionError`,
 * `AuthenticationError`, `HostKeyError`) or a connect
 * {@linkcode TimeoutError} when the shell cannot start (there is no shell
 * to report it on), with the signal's reason on abort, and with
 * {@linkcode FiwiError} when a shell of that name is already open there.
 *
 * @example
 * ```ts
 * import { openShell, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using sh = await openShell(node, "doc-open-shell");
 * console.log((await sh.run("echo $((1 + 2))")).stdout); // "3\n"
 * ```
 */
export function openShell(
  node: ShellNode,
  name: string,
  options: ShellOptions = {},
): Promise<Shell> {
  return openNamed(
    node,
    name,
    options,
    (client) => new Shell(node, name, client),
  );
}
