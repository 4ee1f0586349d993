/**
 * Session: one subprocess lifecycle. Spawns the transport's argv, streams
 * both output streams line by line, learns from the start line that the
 * remote command began (and its pid), enforces the connect, command and io
 * timeouts, and on a timeout or abort kills the remote process group and the
 * local client before it resolves.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  FiwiError,
  HostKeyError,
  TimeoutError,
} from "./errors.ts";
import {
  type EofPolicy,
  type Line,
  pumpLines,
  type StreamName,
} from "./lines.ts";
import { START_MARKER, validateCommand } from "./transport.ts";
import type { SshNode } from "./node.ts";
import type { RetryOptions } from "./retry.ts";

/** Per-run options of {@linkcode SshSession.postCmd} and `SshNode.rexec`. */
export interface RunOptions {
  /** ms until the remote command is known to have begun (default: the node's, 15 s). */
  connectTimeout?: number;
  /** ms of silence on both streams before the run is stopped (default: the node's, none). */
  ioTimeout?: number;
  /** ms of wall clock before the run is stopped (default: the node's, none). */
  cmdTimeout?: number;
  /** Aborting it stops the run the way a timeout does. */
  signal?: AbortSignal;
  /** Called once per line, in order per stream. */
  onLine?: (line: Line) => void;
  /** A trailing fragment without `\n`: emitted (default) or dropped. */
  eof?: EofPolicy;
  /** Written to the command's stdin line by line, then closed. */
  stdin?: string;
  /** Bytes kept per stream in the result (default 1 MiB); lines still stream. */
  maxOutput?: number;
  /**
   * `SshNode.rexec` only: retry a run whose connection failed before the
   * command began (default: 3 attempts, 1 s then 2 s apart); `false`: one
   * attempt. See src/retry.ts.
   */
  retry?: RetryOptions | false;
}

/** The outcome of one run. */
export interface RunResult {
  /** Node name. */
  node: string;
  /** The command as given. */
  cmd: string;
  /** The argv that was spawned. */
  argv: string[];
  /** Exit code of the local client, or null when it died of a signal. */
  code: number | null;
  /** Signal that ended the local client, if any. */
  signal: string | null;
  /** Exit code 0, began, no timeout, no abort, no error. */
  success: boolean;
  /** Kept stdout (up to `maxOutput` bytes), lines ending in `\n`. */
  stdout: string;
  /** Kept stderr (up to `maxOutput` bytes), without fiwi's start line. */
  stderr: string;
  /** True when either stream exceeded `maxOutput`. */
  truncated: boolean;
  /** The remote command is known to have begun. */
  started: boolean;
  /** Pid of the remote command's shell (its process group), when known. */
  remotePid: number | null;
  /** Which timeout stopped the run, if one did. */
  timedOut: "connect" | "command" | "io" | null;
  /** The run was stopped by its signal or by closing the session. */
  aborted: boolean;
  /** Why the run failed before the command began, or which timeout fired. */
  error: FiwiError | null;
  /** When the run was spawned. */
  startedAt: Date;
  /** Wall-clock duration of the whole run. */
  durationMs: number;
  /** Attempts `SshNode.rexec` made (retries included); absent from `postCmd`. */
  attempts?: number;
}

/** Default of {@linkcode RunOptions.maxOutput}: 1 MiB per stream. */
export const DEFAULT_MAX_OUTPUT = 1024 * 1024;
/** Grace between TERM and KILL of the local client, in ms. */
const KILL_GRACE_MS = 1000;
/** How long teardown waits for the pipes to reach EOF after a kill, in ms. */
const DRAIN_GRACE_MS = 2000;
/** setTimeout fires at once beyond this; longer timeouts mean "none". */
const MAX_TIMER_MS = 2 ** 31 - 1;

const log = getLogger(["fiwi", "session"]);

type Timer = ReturnType<typeof setTimeout>;

/** Check that a timeout option is a non-negative number of ms. */
export function validateTimeout(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new ConfigurationError(
      `Invalid ${name} ${
        JSON.stringify(value)
      }: give milliseconds as a number >= 0 (0 means none)`,
    );
  }
}

/**
 * Check the run-time options of one run (timeouts and `maxOutput`): throws
 * {@linkcode ConfigurationError} naming the bad value.
 */
export function validateRunOptions(options: RunOptions): void {
  for (
    const key of [
      "connectTimeout",
      "ioTimeout",
      "cmdTimeout",
      "maxOutput",
    ] as const
  ) {
    validateTimeout(key, options[key]);
  }
}

/**
 * The result of a run that never spawned (aborted before it began, or a
 * caller's own failure): nothing ran, nothing was kept.
 */
export function unstartedResult(
  fields: Pick<RunResult, "node" | "cmd" | "argv" | "aborted" | "error">,
): RunResult {
  return {
    ...fields,
    code: null,
    signal: null,
    success: false,
    stdout: "",
    stderr: "",
    truncated: false,
    started: false,
    remotePid: null,
    timedOut: null,
    startedAt: new Date(),
    durationMs: 0,
  };
}

function startTimer(
  ms: number | undefined,
  fn: () => void,
): Timer | undefined {
  if (ms === undefined || ms <= 0 || ms > MAX_TIMER_MS) return undefined;
  return setTimeout(fn, ms);
}

/** Bytes of `text` in UTF-8 (decoded text holds no lone surrogates). */
function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // Two bytes below U+0800; a surrogate pair is two units for four bytes.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

/** Accumulates one stream's kept output under a byte cap. */
class Kept {
  #parts: string[] = [];
  #bytes = 0;
  truncated = false;
  constructor(readonly max: number) {}
  add(text: string, newline: boolean): void {
    if (this.truncated) return;
    const n = utf8Length(text) + (newline ? 1 : 0);
    if (this.#bytes + n > this.max) {
      this.truncated = true;
      return;
    }
    this.#bytes += n;
    this.#parts.push(newline ? text + "\n" : text);
  }
  text(): string {
    return this.#parts.join("");
  }
}

const HOSTKEY_RE =
  /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known|host key for .* has changed/i;
const MUX_RACE_RE = /^ControlSocket .* already exists, disabling multiplexing$/;
const AUTH_RE =
  /Permission denied|Too many authentication failures|Authentication failed/i;

/** Tell why a run ended before its command began, from the client's stderr. */
export function classifyFailure(
  node: string,
  code: number | null,
  stderr: string,
): FiwiError {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const last = lines.at(-1) ?? `exit code ${code}`;
  const detail = lines.find((l) => HOSTKEY_RE.test(l)) ??
    lines.find((l) => AUTH_RE.test(l)) ?? last;
  if (HOSTKEY_RE.test(stderr)) {
    return new HostKeyError(
      `Host key check failed for node "${node}": ${detail}; update known_hosts or set hostKeyCheck`,
    );
  }
  if (AUTH_RE.test(stderr)) {
    return new AuthenticationError(
      `Authentication failed for node "${node}": ${detail}; check the user and identity file`,
    );
  }
  return new ConnectionError(
    `Cannot reach node "${node}": ${detail}`,
  );
}

/**
 * One subprocess lifecycle against a node: {@linkcode SshSession.postCmd}
 * runs a command to completion (process exited, both streams at EOF, line
 * buffers flushed) and resolves with a {@linkcode RunResult} for every
 * run-time outcome. One run at a time; {@linkcode SshSession.close} stops a
 * running one and tears it down.
 *
 * @example
 * ```ts
 * import { SshNode, SshSession } from "../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using session = new SshSession(node);
 * const result = await session.postCmd("echo hi");
 * console.log(result.stdout); // "hi\n"
 * ```
 */
export class SshSession {
  /** The node this session runs on. */
  readonly node: SshNode;
  #defaults: RunOptions;
  #closer = new AbortController();
  #current: Promise<RunResult> | null = null;

  /**
   * Create a session; nothing runs until {@linkcode SshSession.postCmd}.
   *
   * @param node where commands run
   * @param options defaults for every {@linkcode SshSession.postCmd}
   */
  constructor(node: SshNode, options: RunOptions = {}) {
    this.node = node;
    this.#defaults = options;
  }

  /** True once {@linkcode SshSession.close} was called. */
  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /**
   * Run `cmd` on the node and resolve when it is complete. Rejects only for
   * bad input ({@linkcode ConfigurationError}); every run-time outcome is a
   * resolved {@linkcode RunResult}.
   */
  async postCmd(cmd: string, options: RunOptions = {}): Promise<RunResult> {
    if (this.closed) {
      throw new FiwiError(
        `Session on node "${this.node.name}" is closed: open a new one`,
      );
    }
    if (this.#current) {
      throw new FiwiError(
        `Session on node "${this.node.name}" is already running a command: wait for it or use another session`,
      );
    }
    const opts: RunOptions = { ...this.#defaults, ...options };
    validateCommand(cmd);
    validateRunOptions(opts);
    const run = (async () => {
      await this.node.prepare();
      const argv = this.node.argv(cmd);
      return await execute(this.node, cmd, argv, opts, this.#closer.signal);
    })();
    this.#current = run;
    try {
      return await run;
    } finally {
      this.#current = null;
    }
  }

  /** Stop the running command, if any, and wait until it is torn down. */
  async close(): Promise<void> {
    this.#closer.abort();
    await this.#current?.catch(() => {});
  }

  /** Same as {@linkcode SshSession.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type StopReason = "connect" | "command" | "io" | "abort";

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

async function execute(
  node: SshNode,
  cmd: string,
  argv: string[],
  opts: RunOptions,
  closeSignal: AbortSignal,
): Promise<RunResult> {
  const connectTimeout = opts.connectTimeout ?? node.connectTimeout;
  const ioTimeout = opts.ioTimeout ?? node.ioTimeout;
  const cmdTimeout = opts.cmdTimeout ?? node.cmdTimeout;
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const eof = opts.eof ?? "emit";
  const onLine = opts.onLine;
  const logLines = !node.silent && log.isEnabledFor("info");
  const startedAt = new Date();
  const t0 = performance.now();
  const signals = [closeSignal, opts.signal].filter((s): s is AbortSignal =>
    !!s
  );
  if (signals.some((s) => s.aborted)) {
    return unstartedResult({
      node: node.name,
      cmd,
      argv,
      aborted: true,
      error: null,
    });
  }

  let child: Deno.ChildProcess;
  try {
    // Own session, under a terminal: its Ctrl-C reaches fiwi, which tears
    // down in order, instead of killing clients under it; for "local" always,
    // so the shell's pid is also its process group. setsid(1) execs in place (the
    // child is never a group leader, so it does not fork); Deno's own
    // `detached` forks the whole runtime on the main thread instead, which
    // made a 64-node fan-out 1.6x slower than ssh + xargs.
    const ownSession = node.transport === "local" || hasControllingTerminal();
    const setsid = ownSession ? setsidPath() : null;
    child = new Deno.Command(setsid ?? argv[0], {
      args: setsid ? argv : argv.slice(1),
      stdin: opts.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      detached: ownSession && !setsid,
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigurationError(
        `Transport program "${
          argv[0]
        }" was not found: install it or put it on PATH`,
        { cause: e },
      );
    }
    throw e;
  }

  let started = false;
  let remotePid: number | null = null;
  let timedOut: RunResult["timedOut"] = null;
  let aborted = false;
  let stopping = false;
  let remoteKill: Promise<void> | null = null;
  const kept = { stdout: new Kept(maxOutput), stderr: new Kept(maxOutput) };
  const drainAbort = new AbortController();

  let connectTimer = startTimer(connectTimeout, () => stop("connect"));
  const cmdTimer = startTimer(cmdTimeout, () => stop("command"));
  let ioTimer: Timer | undefined;
  const bumpIo = () => {
    if (!started || stopping || !ioTimeout) return;
    clearTimeout(ioTimer);
    ioTimer = startTimer(ioTimeout, () => stop("io"));
  };
  const clearTimers = () => {
    clearTimeout(connectTimer);
    clearTimeout(cmdTimer);
    clearTimeout(ioTimer);
  };

  const status = child.status;
  let teardown: Promise<void> | null = null;
  function stop(reason: StopReason): void {
    if (stopping) return;
    stopping = true;
    if (reason === "abort") aborted = true;
    else timedOut = reason;
    clearTimers();
    log.debug("Stopping {cmd} on {node}: {reason}", {
      node: node.name,
      cmd,
      reason,
    });
    if (remotePid !== null) remoteKill = node.killRemoteGroup(remotePid);
    teardown = (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      let graceTimer: Timer | undefined;
      const exited = await Promise.race([
        status.then(() => true),
        new Promise<false>((r) =>
          graceTimer = setTimeout(() => r(false), KILL_GRACE_MS)
        ),
      ]);
      clearTimeout(graceTimer);
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await status;
      // The pipes normally reach EOF with the client; a stray holder must
      // not hang teardown.
      const drainTimer = setTimeout(() => drainAbort.abort(), DRAIN_GRACE_MS);
      await readersDone;
      clearTimeout(drainTimer);
    })();
  }

  // One timestamp per chunk: every line of a chunk arrived together.
  let now = Date.now();
  const onBytes = () => {
    now = Date.now();
    bumpIo();
  };
  // The start line, or a client's noise before it: true when consumed.
  const beforeStart = (text: string): boolean => {
    // Two clients racing to become the first master for one socket: the
    // loser says so and runs without multiplexing. Noise, not output.
    if (MUX_RACE_RE.test(text)) return true;
    if (!text.startsWith(START_MARKER + " ")) return false;
    const pid = Number(text.slice(START_MARKER.length + 1));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    started = true;
    remotePid = pid;
    clearTimeout(connectTimer);
    connectTimer = undefined;
    if (stopping) remoteKill ??= node.killRemoteGroup(pid);
    else bumpIo();
    return true;
  };

  const read = async (
    stream: StreamName,
    bytes: ReadableStream<Uint8Array>,
  ) => {
    // Runs once per line (millions for a chatty command): kept flat.
    const keep = kept[stream];
    const stderr = stream === "stderr";
    const name = node.name;
    const onText = (text: string, partial: boolean) => {
      if (stderr && !started && beforeStart(text)) return;
      if (!keep.truncated) keep.add(text, !partial);
      if (logLines) {
        log.info("{node} {stream}: {text}", { node: name, stream, text });
      }
      if (onLine) {
        try {
          onLine({ node: name, stream, text, partial, time: now });
        } catch (e) {
          log.error("onLine callback threw on node {node}: {error}", {
            node: name,
            error: e,
          });
        }
      }
    };
    try {
      await pumpLines(bytes, onText, {
        eof,
        onBytes,
        signal: drainAbort.signal,
      });
    } catch (e) {
      if (!drainAbort.signal.aborted) {
        log.warn("Reading {stream} of node {node} failed: {error}", {
          node: node.name,
          stream,
          error: e,
        });
      }
    }
  };
  const readersDone = Promise.all([
    read("stdout", child.stdout),
    read("stderr", child.stderr),
  ]);

  const onAbort = () => stop("abort");
  for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
  if (signals.some((s) => s.aborted)) stop("abort");

  const writer = opts.stdin !== undefined
    ? writeStdin(child.stdin, opts.stdin)
    : null;

  try {
    await Promise.all([status, readersDone, writer]);
    // A teardown started while we waited (or by the last bytes) finishes first.
    // stop() runs at most once, so there is at most one teardown to await.
    await teardown;
    await remoteKill;
  } finally {
    clearTimers();
    for (const s of signals) s.removeEventListener("abort", onAbort);
  }

  const st = await status;
  const stdout = kept.stdout.text();
  const stderr = kept.stderr.text();
  let error: FiwiError | null = null;
  if (timedOut) {
    const limit = timedOut === "connect"
      ? connectTimeout
      : timedOut === "io"
      ? ioTimeout
      : cmdTimeout;
    error = new TimeoutError(
      timedOut,
      `The ${timedOut} timeout of ${limit} ms expired on node "${node.name}" running ${
        JSON.stringify(cmd)
      }`,
    );
  } else if (!aborted && !started && st.code !== 0) {
    error = classifyFailure(node.name, st.code, stderr);
  }
  const durationMs = performance.now() - t0;
  const result: RunResult = {
    node: node.name,
    cmd,
    argv,
    code: st.signal ? null : st.code,
    signal: st.signal ?? null,
    success: st.success && started && !timedOut && !aborted && !error,
    stdout,
    stderr,
    truncated: kept.stdout.truncated || kept.stderr.truncated,
    started,
    remotePid,
    timedOut,
    aborted,
    error,
    startedAt,
    durationMs,
  };
  log.info("Ran {cmd} on {node}: exit {code} in {durationMs} ms", {
    node: node.name,
    cmd,
    code: result.code,
    signal: result.signal,
    durationMs: Math.round(durationMs),
    timedOut,
    aborted,
    error: error?.message,
  });
  return result;
}

async function writeStdin(
  stdin: WritableStream<Uint8Array>,
  text: string,
): Promise<void> {
  const writer = stdin.getWriter();
  const encoder = new TextEncoder();
  try {
    // Line by line, so an interactive peer sees each line as it is written.
    for (const piece of text.split(/(?<=\n)/)) {
      if (piece !== "") await writer.write(encoder.encode(piece));
    }
    await writer.close();
  } catch {
    // The command exited without reading all of it: not an error of the run.
    await writer.abort().catch(() => {});
  }
}
