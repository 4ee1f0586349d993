/**
 * Session: one subprocess lifecycle. Wraps the command (start line,
 * lifeline, stdin), spawns the transport's argv, streams both output
 * streams line by line, enforces the connect, command and io timeouts, and
 * on a timeout or abort tears the client down (which, through the
 * lifeline, kills the remote process group) before it resolves.
 *
 * This layer never sees `SshNode`: it takes a {@linkcode SessionNode}, the
 * few fields and methods a run needs.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { FiwiError } from "../errors.ts";
import { validateCommand } from "../transport/validate.ts";
import {
  LINGER_MS,
  type StdinMode,
  wrapCommand,
} from "../transport/wrapper.ts";
import { pumpLines, type StreamName } from "./lines.ts";
import { OutputRouter } from "./_output_router.ts";
import { buildResult } from "./result.ts";
import {
  DEFAULT_MAX_OUTPUT,
  isStdinStream,
  type RawRunOptions,
  type RunOptions,
  type RunResult,
  unstartedResult,
  validateRawRunOptions,
  validateRunOptions,
} from "./run_options.ts";
import {
  type Client,
  hasControllingTerminal,
  spawnClient,
  type SpawnOptions,
} from "./spawn.ts";
import { feedStream, pumpRaw, watchGrowth } from "./_stream_io.ts";
import { type TimeoutKind, Watchdog } from "./watchdog.ts";

export type { RunOptions, RunResult, StdinStream } from "./run_options.ts";

const log = getLogger(["fiwi", "session"]);
const encoder = new TextEncoder();

/** A slot to spawn in, from {@linkcode SessionNode.admit}. */
export interface Admission {
  /**
   * The run is past its start: it began (`true`) or never will (`false`).
   * Called at least once; a promise returned by the last call is awaited
   * before the run resolves.
   */
  release(started: boolean): void | Promise<unknown>;
  /**
   * Aborted when what the client waits on (a ControlMaster) was found hung
   * and replaced: an attempt that has not started then ends as a
   * connection failure, which a retry may repeat.
   */
  lost?: AbortSignal;
}

/** What a run needs of a node. `SshNode` satisfies it. */
export interface SessionNode {
  /** Node name, on every line and result. */
  readonly name: string;
  /** `local` clients always get a session of their own. */
  readonly transport: string;
  /** No line goes to the logger. */
  readonly silent: boolean;
  /** Default connect timeout in ms. */
  readonly connectTimeout: number;
  /** Default io timeout in ms. */
  readonly ioTimeout?: number;
  /** Default command timeout in ms. */
  readonly cmdTimeout?: number;
  /** Check the options and make the node ready to spawn; rejects for bad input. */
  prepare(): Promise<void>;
  /** The argv that runs `remoteCommand` (already wrapped) on the node. */
  transportArgv(remoteCommand: string): string[];
  /**
   * Wait for a slot to spawn in (the spawn rate, the node's first master);
   * resolves null when the signal aborted first. `connectTimeout` is the
   * run's, in ms (0: none).
   */
  admit?(
    signal: AbortSignal,
    connectTimeout: number,
  ): Promise<Admission | null>;
  /**
   * Start the client for `argv` somewhere other than here (a node behind a
   * gateway: the gateway runs it); absent, {@linkcode spawnClient} does.
   */
  spawn?(argv: readonly string[], options: SpawnOptions): Client;
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
 * import { SshNode, SshSession } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using session = new SshSession(node);
 * const result = await session.postCmd("echo hi");
 * console.log(result.stdout); // "hi\n"
 * ```
 */
export class SshSession {
  /** The node this session runs on. */
  readonly node: SessionNode;
  #defaults: RunOptions;
  #closer = new AbortController();
  #current: Promise<RunResult> | null = null;

  /**
   * Create a session; nothing runs until {@linkcode SshSession.postCmd}.
   *
   * @param node where commands run
   * @param options defaults for every {@linkcode SshSession.postCmd}
   */
  constructor(node: SessionNode, options: RunOptions = {}) {
    this.node = node;
    this.#defaults = options;
  }

  /** True once {@linkcode SshSession.close} was called. */
  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /**
   * Run `cmd` on the node and resolve when it is complete. Rejects only for
   * bad input (`ConfigurationError`); every run-time outcome is a resolved
   * {@linkcode RunResult}.
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
      return await execute(this.node, cmd, opts, this.#closer.signal);
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

/**
 * Run `cmd` once on `node` with the library's own options: a stream stdin,
 * raw stdout into a sink or a file (file transfers). Like
 * {@linkcode SshSession.postCmd} in a session of its own: rejects only for
 * bad input, resolves for every run-time outcome. Internal: not exported
 * from `mod.ts`.
 */
export async function runRaw(
  node: SessionNode,
  cmd: string,
  options: RawRunOptions,
): Promise<RunResult> {
  validateCommand(cmd);
  validateRawRunOptions(options);
  await node.prepare();
  // No session to close: only `options.signal` stops it early.
  return await execute(node, cmd, options, new AbortController().signal);
}

/** The payload as bytes, or null for none. Text keeps its line breaks. */
function payloadBytes(
  stdin: string | Uint8Array | undefined,
): Uint8Array | null {
  if (stdin === undefined) return null;
  return typeof stdin === "string" ? encoder.encode(stdin) : stdin;
}

/** The stdin mode of the wrapper for a run's `stdin` option. */
function stdinMode(stdin: RawRunOptions["stdin"]): StdinMode {
  if (isStdinStream(stdin)) {
    return stdin.direct ? "direct" : { payloadBytes: stdin.size };
  }
  const payload = payloadBytes(stdin);
  return payload ? { payloadBytes: payload.byteLength } : "none";
}

/**
 * Write the payload, then keep the pipe open: it is the lifeline. Text goes
 * line by line, so an interactive peer sees each line as it is written.
 */
async function feed(client: Client, stdin: string | Uint8Array): Promise<void> {
  if (typeof stdin !== "string") {
    await client.write(stdin);
    return;
  }
  for (const piece of stdin.split(/(?<=\n)/)) {
    if (piece !== "" && !(await client.write(encoder.encode(piece)))) return;
  }
}

/** The limits of one run, options over the node's defaults. */
function limitsOf(target: SessionNode, opts: RawRunOptions) {
  return {
    connect: opts.connectTimeout ?? target.connectTimeout,
    io: opts.ioTimeout ?? target.ioTimeout,
    command: opts.cmdTimeout ?? target.cmdTimeout,
  };
}

/** Runs `cmd` on `target` once; see the module doc. Resolves, never rejects for a run-time outcome. */
async function execute(
  target: SessionNode,
  cmd: string,
  opts: RawRunOptions,
  closeSignal: AbortSignal,
): Promise<RunResult> {
  const argv = target.transportArgv(wrapCommand(cmd, stdinMode(opts.stdin)));
  const signal = opts.signal
    ? AbortSignal.any([closeSignal, opts.signal])
    : closeSignal;
  const unstarted = () =>
    unstartedResult({
      node: target.name,
      cmd,
      argv,
      aborted: true,
      error: null,
    });
  if (signal.aborted) return unstarted();
  const admission = target.admit
    ? await target.admit(signal, limitsOf(target, opts).connect)
    : null;
  if (target.admit && !admission) return unstarted();
  try {
    return await runClient(target, cmd, argv, opts, signal, admission);
  } finally {
    await admission?.release(false);
  }
}

async function runClient(
  target: SessionNode,
  cmd: string,
  argv: string[],
  opts: RawRunOptions,
  signal: AbortSignal,
  admission: Admission | null,
): Promise<RunResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  // A session of its own under a terminal, so Ctrl-C reaches fiwi, which
  // tears down in order; for "local" always, so the shell's pid is its group.
  const spawnOptions: SpawnOptions = {
    ownSession: target.transport === "local" || hasControllingTerminal(),
    stdoutFile: opts.stdoutFile,
    rawStdout: opts.stdoutSink !== undefined,
  };
  const client = target.spawn
    ? target.spawn(argv, spawnOptions)
    : spawnClient(argv, spawnOptions);
  const limits = limitsOf(target, opts);
  let stopped: TimeoutKind | "abort" | "lost" | null = null;
  const stop = (why: TimeoutKind | "abort" | "lost") => {
    if (stopped) return;
    stopped = why;
    dog.dispose();
    log.debug("Stopping {cmd} on {node}: {reason}", {
      node: target.name,
      cmd,
      reason: why,
    });
    // Before the start line no remote command runs that could die first.
    void client.stop(router.started);
  };
  const dog = new Watchdog(limits, stop);
  const router = new OutputRouter({
    node: target.name,
    maxOutput: opts.maxOutput ?? DEFAULT_MAX_OUTPUT,
    logLines: !target.silent && log.isEnabledFor("info"),
    onLine: opts.onLine,
    strict: opts.eof === "strict",
    onStart: () => {
      admission?.release(true);
      dog.started();
    },
  });
  const onBytes = () => {
    router.now = Date.now();
    dog.activity();
  };
  // Only the node writes the command's stdout: a byte there proves the
  // connection even before the start line on stderr was read.
  const onStdoutBytes = () => {
    onBytes();
    dog.started();
  };
  const sink = opts.stdoutSink;
  const read = (stream: StreamName) =>
    (sink && stream === "stdout"
      ? pumpRaw(client.stdout, sink, onStdoutBytes, client.readSignal)
      : pumpLines(client[stream], router.sink(stream), {
        eof: opts.eof ?? "emit",
        onBytes: stream === "stdout" ? onStdoutBytes : onBytes,
        // Client.drain() aborts it: a master may hold the pipes forever.
        signal: client.readSignal,
      })).catch((e) => {
        if (!client.stopping) {
          log.warn("Reading {stream} of node {node} failed: {error}", {
            node: target.name,
            stream,
            error: e,
          });
        }
      });
  const readers = Promise.all([read("stdout"), read("stderr")]);
  const growth = opts.stdoutFile === undefined
    ? null
    : watchGrowth(opts.stdoutFile, (bytes) => {
      onBytes();
      opts.onStdoutFile?.(bytes);
    });
  const onAbort = () => stop("abort");
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) stop("abort");
  const onLost = () => {
    if (!router.started) stop("lost");
  };
  admission?.lost?.addEventListener("abort", onLost, { once: true });
  const stdin = opts.stdin;
  if (isStdinStream(stdin)) {
    void feedStream(client, stdin, () => dog.activity()).then((ok) => {
      if (!ok) stop("abort");
      else if (stdin.direct) client.releaseLifeline();
    });
  } else if (stdin !== undefined) void feed(client, stdin);

  let status: Deno.CommandStatus;
  try {
    status = await client.status;
    // The shell is gone. A local one's watcher learns it here (over ssh,
    // sshd closed its stdin already): what still holds the output is killed
    // after the linger, so the readers end; the rest may stay.
    client.releaseLifeline();
    if (client.stopping) {
      await client.stop();
      await client.drain(readers);
    } else {
      await readers;
    }
  } finally {
    await growth?.stop();
    dog.dispose();
    signal.removeEventListener("abort", onAbort);
    admission?.lost?.removeEventListener("abort", onLost);
  }
  const killed = router.killed;
  if (killed > 0) {
    log.warn(
      "{killed} process(es) of {cmd} on {node} still held its output {linger} ms after its shell exited; they were killed",
      { node: target.name, cmd, killed, linger: LINGER_MS },
    );
  }
  const timedOut = stopped === "abort" || stopped === "lost" ? null : stopped;
  const result = buildResult({
    node: target.name,
    cmd,
    argv,
    status,
    killed,
    remotePid: router.remotePid,
    timedOut,
    limit: timedOut ? limits[timedOut] : undefined,
    aborted: stopped === "abort",
    lost: client.lostReason ??
      (stopped === "lost"
        ? `The ControlMaster of node "${target.name}" stopped answering and was replaced`
        : undefined),
    stdout: router.stdout.text(),
    stderr: router.stderr.text(),
    truncated: router.stdout.truncated || router.stderr.truncated,
    startedAt,
    durationMs: performance.now() - t0,
  });
  log.info("Ran {cmd} on {node}: exit {code} in {durationMs} ms", {
    node: target.name,
    cmd,
    code: result.code,
    signal: result.signal,
    durationMs: Math.round(result.durationMs),
    timedOut,
    aborted: result.aborted,
    error: result.error?.message,
  });
  return result;
}
