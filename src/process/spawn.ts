/**
 * Spawn: the one place fiwi starts a subprocess and tears it down. Runs,
 * shells, consoles, transfers and the pool's helper commands all come
 * through here.
 *
 * A run's client gets a lifeline: its stdin is a pipe fiwi holds open
 * (after writing any payload) and closes only to stop the run. The remote
 * wrapper (src/transport/wrapper.ts) kills the command's process group when
 * that pipe reaches EOF, which also happens when this process dies, however
 * it dies. Teardown ({@linkcode Client.stop}) is: close the lifeline, give
 * the client a moment to end on its own (the remote group dies and the
 * channel closes), then TERM, then KILL, each step bounded, so a hung node
 * or a master that still holds the client's pipes can never hold it up.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

/** How long a stopped client may take to end by itself once its lifeline is closed. */
export const LIFELINE_GRACE_MS = 500;
/** Grace between TERM and KILL of a local client, in ms. */
export const KILL_GRACE_MS = 500;
/**
 * How long the output of a stopped client may take to reach EOF. A
 * ControlMaster holds the pipes of its clients; on a hung node it never
 * closes them.
 */
export const DRAIN_GRACE_MS = 500;

/** Options of {@linkcode spawnClient}. */
export interface SpawnOptions {
  /**
   * Start the client in a session of its own (setsid), so a Ctrl-C typed on
   * fiwi's terminal reaches fiwi, which tears down in order, and not the
   * client.
   */
  ownSession?: boolean;
  /** Pipe stdin and hold it open as the run's lifeline (default true). */
  lifeline?: boolean;
  /**
   * Let the client write its stdout straight into this existing file
   * (through `sh`, which opens it and execs the client): the bytes never
   * pass through this process. A pull of 100 MB from each of 16 loopback
   * nodes took 4.0 s this way against 7.0 s through a pipe read here.
   */
  stdoutFile?: string;
  /**
   * The client's stdout is bytes, not lines (an archive): a client that
   * frames its output on the way (a gateway's) keeps every byte, NULs
   * included. Implied by `stdoutFile`.
   */
  rawStdout?: boolean;
}

let terminalFound: boolean | undefined;
/**
 * Whether this process has a controlling terminal, whose Ctrl-C or hangup
 * would reach every process of its group, clients included. Without one
 * (CI, cron, a service) no keyboard signal can reach the group, and clients
 * skip setsid(1), an exec that adds about 0.8 ms to every run. Unknown counts
 * as yes. Looked up once.
 */
export function hasControllingTerminal(): boolean {
  if (terminalFound !== undefined) return terminalFound;
  try {
    // /dev/tty opens only for a process with a controlling terminal (ENXIO
    // otherwise). /proc/self/stat would say so too, but needs --allow-all.
    Deno.openSync("/dev/tty", { read: true }).close();
    terminalFound = true;
  } catch (e) {
    terminalFound = e instanceof Deno.errors.NotCapable ||
      e instanceof Deno.errors.PermissionDenied;
  }
  return terminalFound;
}

let setsidFound: string | null | undefined;
/**
 * util-linux setsid(1), if this system has it and this program may run it
 * (a script with `--allow-run=ssh,sh` may not); looked up once.
 */
function setsidPath(): string | null {
  if (setsidFound !== undefined) return setsidFound;
  setsidFound = null;
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      if (
        Deno.statSync(path).isFile &&
        Deno.permissions.querySync({ name: "run", command: path }).state ===
          "granted"
      ) {
        return setsidFound = path;
      }
    } catch { /* not here, or no --allow-read */ }
  }
  return setsidFound;
}

/** Resolves after `ms`, or at once when `ms` is 0; the timer never leaks. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
  ]).finally(() => clearTimeout(timer));
}

/** A stdin payload several clients send alike; see {@linkcode Client.feedShared}. */
export interface SharedPayload {
  /** Names the bytes: equal keys, equal bytes. */
  readonly share: object;
  /** Bytes in the payload. */
  readonly size: number;
  /** The bytes; read by at most one client, cancelled by the others. */
  readonly stream: ReadableStream<Uint8Array>;
}

/**
 * One client: its output streams, its exit, its teardown. A local
 * subprocess ({@linkcode spawnClient}) is one; a client a gateway runs for
 * fiwi (src/gateway/) is another. Runs, the watchdog and the output router
 * see only this class, and teardown ({@linkcode Client.stop}) is written
 * once, here, over the few primitives each kind supplies.
 */
export abstract class Client {
  /** The argv that was spawned (setsid not included). */
  abstract readonly argv: readonly string[];
  /** Raw stdout. Read it to the end or cancel it. */
  abstract readonly stdout: ReadableStream<Uint8Array>;
  /** Raw stderr. Read it to the end or cancel it. */
  abstract readonly stderr: ReadableStream<Uint8Array>;
  /** Settles when the client has exited. */
  abstract readonly status: Promise<Deno.CommandStatus>;
  /** True once the client has exited. */
  abstract get exited(): boolean;
  /**
   * Why the client's connection was lost under it, when fiwi knows (a
   * gateway's session ended): the run then ends as a connection failure
   * with this message.
   */
  get lostReason(): string | undefined {
    return undefined;
  }
  /**
   * Write to the client's stdin without closing it. Resolves false when the
   * pipe is gone (the client ended, or the lifeline was released).
   */
  abstract write(bytes: Uint8Array): Promise<boolean>;
  /**
   * Close stdin: the remote wrapper sees EOF and, if the command still
   * runs, kills its process group. Safe to call more than once.
   */
  abstract releaseLifeline(): void;
  /** Send `signal` to the client; a client already gone is fine. */
  abstract kill(signal: Deno.Signal): void;

  /**
   * Feed stdin from `payload`, whose bytes other clients get too, when this
   * client can fetch them once for all of them (a gateway stages them once
   * and feeds each of its clients from there). Resolves false when the
   * payload could not be had (its stream failed); null when this client
   * cannot share, and the caller writes the bytes itself.
   */
  feedShared(
    _payload: SharedPayload,
    _onChunk: () => void,
  ): Promise<boolean> | null {
    return null;
  }

  #stopping: Promise<Deno.CommandStatus> | null = null;
  #drained = new AbortController();

  /**
   * Pass it to whatever reads {@linkcode Client.stdout} and
   * {@linkcode Client.stderr}: {@linkcode Client.drain} aborts it to cancel
   * the reads (a locked stream can only be cancelled by its reader).
   */
  get readSignal(): AbortSignal {
    return this.#drained.signal;
  }

  /** True once {@linkcode Client.stop} was called. */
  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /**
   * Tear the client down: close the lifeline, wait briefly for it to end on
   * its own (`graceful`: a remote command ran, and its group dies first),
   * then TERM, then KILL. Resolves with its exit status; bounded in time
   * whatever the node or the master does.
   */
  stop(graceful = true): Promise<Deno.CommandStatus> {
    this.#stopping ??= this.#stop(graceful);
    return this.#stopping;
  }

  async #stop(graceful: boolean): Promise<Deno.CommandStatus> {
    this.releaseLifeline();
    const grace = graceful ? LIFELINE_GRACE_MS : 0;
    if (!this.exited && !(await within(this.status, grace))) {
      this.kill("SIGTERM");
      if (!(await within(this.status, KILL_GRACE_MS))) this.kill("SIGKILL");
    }
    return await this.status;
  }

  /**
   * Wait for `readers` (the consumers of stdout and stderr) after the
   * client stopped: at most {@linkcode DRAIN_GRACE_MS}, then cancel both
   * streams so nothing stays open. Resolves true when they finished.
   */
  async drain(readers: Promise<unknown>): Promise<boolean> {
    const done = readers.then(() => true, () => true);
    if (await within(done, DRAIN_GRACE_MS)) return true;
    this.#drained.abort();
    await done;
    return false;
  }
}

/** A local subprocess, from {@linkcode spawnClient}. */
class ProcessClient extends Client {
  readonly argv: readonly string[];
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  #exited = false;

  constructor(
    argv: readonly string[],
    child: Deno.ChildProcess,
    piped: boolean,
  ) {
    super();
    this.argv = argv;
    this.#child = child;
    this.stdout = child.stdout;
    this.stderr = child.stderr;
    this.#stdin = piped ? child.stdin.getWriter() : null;
    this.status = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  async write(bytes: Uint8Array): Promise<boolean> {
    if (!this.#stdin) return false;
    try {
      await this.#stdin.write(bytes);
      return true;
    } catch {
      return false;
    }
  }

  releaseLifeline(): void {
    const w = this.#stdin;
    if (!w) return;
    this.#stdin = null;
    w.close().catch(() => {});
  }

  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch { /* exited meanwhile */ }
  }
}

/**
 * Spawn `argv` with piped output. Throws {@linkcode ConfigurationError}
 * when the program does not exist.
 */
export function spawnClient(
  argv: readonly string[],
  options: SpawnOptions = {},
): Client {
  const lifeline = options.lifeline ?? true;
  // setsid(1) execs in place (the child is never a group leader, so it does
  // not fork); Deno's own `detached` forks the whole runtime on the main
  // thread instead, which made a 64-node fan-out 1.6x slower than ssh +
  // xargs.
  const setsid = options.ownSession ? setsidPath() : null;
  const full = options.stdoutFile === undefined
    ? argv
    : ["sh", "-c", 'exec "$@" >"$0"', options.stdoutFile, ...argv];
  try {
    const child = new Deno.Command(setsid ?? full[0], {
      args: setsid ? [...full] : full.slice(1),
      stdin: lifeline ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      detached: !!options.ownSession && !setsid,
    }).spawn();
    return new ProcessClient(argv, child, lifeline);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigurationError(
        `Program "${full[0]}" was not found: install it or put it on PATH`,
        { cause: e },
      );
    }
    if (e instanceof Deno.errors.NotCapable) {
      throw new ConfigurationError(
        `Running "${setsid ?? full[0]}" is not allowed: add it to --allow-run`,
        { cause: e },
      );
    }
    throw e;
  }
}

/** What a helper command printed, and how it ended. */
export interface HelperResult {
  /** Exit code, or null when it was killed or never answered in time. */
  code: number | null;
  /** Everything it printed on stdout. */
  stdout: string;
  /** Everything it printed on stderr. */
  stderr: string;
  /** True when the time limit ended it. */
  timedOut: boolean;
}

/**
 * Call `onChunk` for every chunk of `stream` until its end. Aborting
 * `signal` cancels the read through the reader (a locked stream cannot be
 * cancelled any other way) and ends the loop.
 */
export async function forEachChunk(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onChunk: (chunk: Uint8Array) => void | Promise<void>,
): Promise<void> {
  const reader = stream.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await onChunk(value);
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

/** Read a stream to its end as text; aborting `signal` ends the read early. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<string> {
  let text = "";
  const d = new TextDecoder();
  await forEachChunk(stream, signal, (chunk) => {
    text += d.decode(chunk, { stream: true });
  });
  return text + d.decode();
}

/**
 * Run a short helper command (`ssh -O check`, `ssh -G`, a remote probe) to
 * its end and collect its output, within `timeoutMs` in all. Never awaits a
 * pipe past that limit: a ControlMaster may hold a client's pipes forever.
 * Never rejects for a run-time failure; `code` is null when it did not end
 * by itself.
 */
export async function runHelper(
  argv: readonly string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HelperResult> {
  const client = spawnClient(argv, { lifeline: false });
  const out = collect(client.stdout, client.readSignal).catch(() => "");
  const err = collect(client.stderr, client.readSignal).catch(() => "");
  const readers = Promise.all([out, err]);
  const stop = () => client.stop();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    const ended = await within(client.status, timeoutMs);
    if (!ended) await client.stop();
    const complete = ended ? await within(readers, timeoutMs) : undefined;
    if (!complete) await client.drain(readers);
    const status = await client.status;
    return {
      code: ended && !status.signal ? status.code : null,
      stdout: await out,
      stderr: await err,
      timedOut: !ended,
    };
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}
