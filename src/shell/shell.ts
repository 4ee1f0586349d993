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
import { ConnectionError, FiwiError, TimeoutError } from "../errors.ts";
import {
  backoff,
  resolveRetry,
  type RetryOptions,
} from "../process/backoff.ts";
import { validateTimeout } from "../process/run_options.ts";
import {
  type Client,
  hasControllingTerminal,
  spawnClient,
} from "../process/spawn.ts";
import { classifyFailure } from "../transport/classify.ts";
import { shellQuote } from "../transport/quote.ts";
import { validateCommand } from "../transport/validate.ts";
import { wrapCommand } from "../transport/wrapper.ts";
import { ShellOutput } from "./_shell_output.ts";

/** Options of {@linkcode openShell} (`node.openShell(name, options)`). */
export interface ShellOptions {
  /** Remote shell program (default "sh"). */
  shell?: string;
  /** ms until the remote shell is known to run (default: the node's). */
  connectTimeout?: number;
  /** Retry opening when the connection fails (as `rexec`; default on). */
  retry?: RetryOptions | false;
  /** Aborting it stops opening (and waiting between attempts). */
  signal?: AbortSignal;
}

/** Options of {@linkcode Shell.run}. */
export interface ShellRunOptions {
  /** ms the command may take; on expiry the shell is closed. Default none. */
  timeout?: number;
  /** Aborting it closes the shell, like a timeout. */
  signal?: AbortSignal;
}

/** Options of {@linkcode Shell.expect}. */
export interface ExpectOptions {
  /** ms to wait for the pattern (default 30 000). */
  timeout?: number;
  /** Aborting it stops the wait. */
  signal?: AbortSignal;
}

/** What one {@linkcode Shell.run} produced. */
export interface ShellResult {
  /** The command as given. */
  cmd: string;
  /** Its exit status (the shell's, when the command ended the shell). */
  code: number | null;
  /** Exit status 0. */
  success: boolean;
  /** Everything it wrote to stdout. */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
  /** Wall-clock duration. */
  durationMs: number;
}

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

/** What a shell needs of a node. `SshNode` satisfies it. */
export interface ShellTarget {
  /** Node name. */
  readonly name: string;
  /** `local` clients always get a session of their own. */
  readonly transport: string;
  /** Default connect timeout in ms. */
  readonly connectTimeout: number;
  /** Make the node ready to spawn. */
  prepare(): Promise<void>;
  /** The argv that runs an already wrapped command line on the node. */
  transportArgv(remoteCommand: string): string[];
}

const open = new WeakMap<ShellTarget, Map<string, Shell>>();

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

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
  readonly node: ShellTarget;
  /** Its name, unique among the node's open shells. */
  readonly name: string;
  #client: Client;
  #token = randomToken();
  #seq = 0;
  #started: PromiseWithResolvers<void> = Promise.withResolvers();
  #out = new ShellOutput(() => this.#started.resolve());
  #queue: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | null = null;
  #ended = false;
  #finished: Promise<Deno.CommandStatus>;

  /** @internal use `node.openShell(name)` */
  constructor(node: ShellTarget, name: string, client: Client) {
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
    const shells = open.get(this.node);
    if (shells?.get(this.name) === this) shells.delete(this.name);
    if (this.#out.remotePid === null) {
      this.#started.reject(
        classifyFailure(this.node.name, status.code, this.#out.preStart),
      );
    }
    this.#out.end(status.signal ? null : status.code, this.#endedError());
  }

  #endedError(): FiwiError {
    return new FiwiError(
      `Shell "${this.name}" on node "${this.node.name}" has ended: open a new one`,
    );
  }

  /**
   * Run `cmd` in the shell and resolve with its own exit status and output.
   * Directory changes, exports and variables persist for later runs. A
   * timeout or abort closes the shell and rejects with
   * {@linkcode TimeoutError} (or the signal's reason).
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
    options.signal?.throwIfAborted();
    const t0 = performance.now();
    const sentinel = `__FIWI_SH_${this.#token}_${++this.#seq}__`;
    const done = this.#out.beginRun(sentinel);
    // stdin from /dev/null: the command cannot read the commands after it.
    const script = `{ command eval ${shellQuote(cmd)}\n} </dev/null\n` +
      `printf '%s %d\\n' ${sentinel} "$?"; printf '%s\\n' ${sentinel} >&2\n`;
    const stop = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = new Promise<never>((_, reject) => {
      const fail = (error: unknown) => {
        reject(error);
        this.close().catch(() => {});
      };
      if (options.timeout) {
        timer = setTimeout(
          () =>
            fail(
              new TimeoutError(
                "command",
                `The timeout of ${options.timeout} ms expired in shell "${this.name}" on node "${this.node.name}" running ${
                  JSON.stringify(cmd)
                }`,
              ),
            ),
          options.timeout,
        );
      }
      options.signal?.addEventListener(
        "abort",
        () => fail(options.signal!.reason),
        { once: true, signal: stop.signal },
      );
    });
    stopped.catch(() => {});
    try {
      await this.#write(script);
      const r = await Promise.race([done, stopped]);
      const result: ShellResult = {
        cmd,
        ...r,
        success: r.code === 0,
        durationMs: performance.now() - t0,
      };
      log.info(
        "Ran {cmd} in shell {shell} on {node}: exit {code} in {durationMs} ms",
        {
          node: this.node.name,
          shell: this.name,
          cmd,
          code: result.code,
          durationMs: Math.round(result.durationMs),
        },
      );
      return result;
    } finally {
      clearTimeout(timer);
      stop.abort();
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
   * Rejects with {@linkcode TimeoutError} after `timeout` ms; the shell stays
   * open and the unmatched text stays buffered.
   */
  async expect(
    pattern: RegExp | string,
    options: ExpectOptions = {},
  ): Promise<string> {
    const timeout = options.timeout ?? DEFAULT_EXPECT_TIMEOUT;
    validateTimeout("timeout", timeout);
    const busy = this.#out.expecting;
    if (busy) {
      throw new FiwiError(
        `Shell "${this.name}" on node "${this.node.name}" is already expecting ${busy}: await it first`,
      );
    }
    options.signal?.throwIfAborted();
    const re = typeof pattern === "string"
      ? new RegExp(escapeRegExp(pattern))
      : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
    const wait = this.#out.expect(re);
    if (this.#ended) wait.cancel(this.#endedError());
    const stop = new AbortController();
    const timer = timeout > 0
      ? setTimeout(
        () =>
          wait.cancel(
            new TimeoutError(
              "io",
              `Expected ${re} in shell "${this.name}" on node "${this.node.name}" within ${timeout} ms`,
            ),
          ),
        timeout,
      )
      : undefined;
    options.signal?.addEventListener(
      "abort",
      () => wait.cancel(options.signal!.reason),
      { once: true, signal: stop.signal },
    );
    try {
      return await wait.promise;
    } finally {
      clearTimeout(timer);
      stop.abort();
    }
  }

  /**
   * Close the shell: kill the remote process group (the shell and what it
   * started), end the local client, and wait until both are gone. A pending
   * run or expect rejects. Safe to call more than once.
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

function spawn(node: ShellTarget, shell: string): Client {
  const argv = node.transportArgv(
    wrapCommand(`exec ${shellQuote(shell)}`, "stream"),
  );
  // Own session under a terminal, as for every run: Ctrl-C reaches fiwi,
  // which closes in order.
  return spawnClient(argv, {
    ownSession: node.transport === "local" || hasControllingTerminal(),
  });
}

async function openOnce(
  node: ShellTarget,
  name: string,
  shell: string,
  connectTimeout: number,
  signal?: AbortSignal,
): Promise<Shell> {
  signal?.throwIfAborted();
  const sh = new Shell(node, name, spawn(node, shell));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = new AbortController();
  try {
    await Promise.race([
      sh.ready,
      new Promise<never>((_, reject) => {
        signal?.addEventListener("abort", () => reject(signal.reason), {
          once: true,
          signal: stop.signal,
        });
        if (connectTimeout > 0) {
          timer = setTimeout(() =>
            reject(
              new TimeoutError(
                "connect",
                `The connect timeout of ${connectTimeout} ms expired opening shell "${name}" on node "${node.name}"`,
              ),
            ), connectTimeout);
        }
      }),
    ]);
    return sh;
  } catch (e) {
    await sh.close();
    throw e;
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/**
 * Open the named shell `name` on `node` (what `node.openShell(name)` does).
 * Rejects with the connection's error class ({@linkcode ConnectionError},
 * `AuthenticationError`, `HostKeyError`) or a connect
 * {@linkcode TimeoutError} when the shell cannot start, and with
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
export async function openShell(
  node: ShellTarget,
  name: string,
  options: ShellOptions = {},
): Promise<Shell> {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.:@-]+$/.test(name)) {
    throw new FiwiError(
      `Invalid shell name ${
        JSON.stringify(name)
      }: use letters, digits, ".", "_", ":", "@" or "-"`,
    );
  }
  const shell = options.shell ?? "sh";
  validateCommand(shell);
  validateTimeout("connectTimeout", options.connectTimeout);
  const policy = resolveRetry(options.retry);
  let shells = open.get(node);
  if (!shells) open.set(node, shells = new Map());
  if (shells.has(name)) {
    throw new FiwiError(
      `Shell "${name}" is already open on node "${node.name}": close it or pick another name`,
    );
  }
  await node.prepare();
  const connectTimeout = options.connectTimeout ?? node.connectTimeout;
  const attempt = async (): Promise<Shell | Error> => {
    try {
      return await openOnce(node, name, shell, connectTimeout, options.signal);
    } catch (e) {
      return e as Error;
    }
  };
  const out = await backoff(attempt, policy, {
    signal: options.signal,
    again: (got) => got instanceof ConnectionError,
    onRetry: (got, _n, wait) =>
      log.warn("Retrying shell {shell} on {node} in {delayMs} ms: {error}", {
        node: node.name,
        shell: name,
        delayMs: wait,
        error: (got as Error).message,
      }),
  });
  if (out.aborted) throw options.signal?.reason ?? out.value;
  if (out.value instanceof Error) throw out.value;
  const sh = out.value;
  if (shells.has(name)) {
    await sh.close();
    throw new FiwiError(
      `Shell "${name}" is already open on node "${node.name}": close it or pick another name`,
    );
  }
  shells.set(name, sh);
  return sh;
}
