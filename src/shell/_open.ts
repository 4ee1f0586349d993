/**
 * The opening of a shell, up to the moment its remote `sh` runs: the
 * registry of open names, the retry loop, and for each attempt the same
 * admission a run goes through (src/connection/admission.ts, reached
 * through the target's `admit`), the one spawn path, and the
 * connect timeout on the {@linkcode Watchdog} a run uses, so an opening
 * under load is admitted, timed and confirmed exactly like a `rexec`.
 *
 * It never sees the `Shell` class (src/shell/shell.ts makes one from the
 * client, through `make`), so the two files do not import each other.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConnectionError, FiwiError, TimeoutError } from "../errors.ts";
import { backoff, resolveRetry } from "../process/backoff.ts";
import { validateTimeout } from "../process/run_options.ts";
import { validateCommand } from "../transport/validate.ts";
import type { Clock } from "../process/clock.ts";
import type { Admission } from "../process/session.ts";
import {
  type Client,
  hasControllingTerminal,
  spawnClient,
} from "../process/spawn.ts";
import { Watchdog } from "../process/watchdog.ts";
import { shellQuote } from "../transport/quote.ts";
import { wrapCommand } from "../transport/wrapper.ts";
import type { ShellNode, ShellOptions } from "./_shell_types.ts";

const log = getLogger(["fiwi", "shell"]);

/** Spawn the client that runs `shell` on `node`, its stdin the lifeline. */
export function spawnShellClient(node: ShellNode, shell: string): Client {
  const argv = node.transportArgv(
    wrapCommand(`exec ${shellQuote(shell)}`, "stream"),
  );
  // Own session under a terminal, as for every run: Ctrl-C reaches fiwi,
  // which closes in order.
  return spawnClient(argv, {
    ownSession: node.transport === "local" || hasControllingTerminal(),
  });
}

/**
 * Wait for a slot to spawn the shell's client in. Resolves null for a
 * target without admission; rejects with the signal's reason when it
 * aborted first. The caller releases the admission.
 */
export async function admitShell(
  node: ShellNode,
  connectTimeout: number,
  signal?: AbortSignal,
): Promise<Admission | null> {
  if (!node.admit) return null;
  const wait = signal ?? new AbortController().signal;
  const admission = await node.admit(wait, connectTimeout);
  if (!admission) throw wait.reason;
  return admission;
}

/** What {@linkcode untilStarted} waits on and reports. */
export interface StartWait {
  /** Node name, for messages. */
  node: string;
  /** Shell name, for messages. */
  shell: string;
  /** ms from now until the shell must run; 0: no limit. */
  connectTimeout: number;
  /** From {@linkcode admitShell}: released (started) once the shell runs. */
  admission: Admission | null;
  /** Aborting it ends the wait with its reason. */
  signal?: AbortSignal;
  /** The watchdog's clock (tests). */
  clock?: Clock;
}

/**
 * Resolve once `ready` does (the start line arrived), releasing the
 * admission as started. Reject with `ready`'s own error, a connect
 * {@linkcode TimeoutError} when the watchdog's connect limit expired (and
 * was confirmed), a {@linkcode ConnectionError} when admission found the
 * master this client waits on hung (a retry may repeat it), or the
 * signal's reason. The caller closes the shell on rejection.
 */
export async function untilStarted(
  ready: Promise<void>,
  wait: StartWait,
): Promise<void> {
  const { connectTimeout, admission, signal } = wait;
  signal?.throwIfAborted();
  const failed = Promise.withResolvers<never>();
  failed.promise.catch(() => {});
  const dog = new Watchdog(
    { connect: connectTimeout },
    () =>
      failed.reject(
        new TimeoutError(
          "connect",
          `The connect timeout of ${connectTimeout} ms expired opening shell "${wait.shell}" on node "${wait.node}"`,
        ),
      ),
    wait.clock,
  );
  const onAbort = () => failed.reject(signal!.reason);
  const onLost = () =>
    failed.reject(
      new ConnectionError(
        `The ControlMaster of node "${wait.node}" stopped answering and was replaced`,
      ),
    );
  signal?.addEventListener("abort", onAbort, { once: true });
  admission?.lost?.addEventListener("abort", onLost, { once: true });
  if (admission?.lost?.aborted) onLost();
  try {
    await Promise.race([ready, failed.promise]);
    dog.started();
    // Not awaited: the caller's release(false) hands back what this started.
    void admission?.release(true);
  } finally {
    dog.dispose();
    signal?.removeEventListener("abort", onAbort);
    admission?.lost?.removeEventListener("abort", onLost);
  }
}

/** What the opening needs of a shell. */
export interface Opening {
  /** Resolves once the remote shell runs; rejects when it could not start. */
  readonly ready: Promise<void>;
  /** Kill it and wait until it is gone. */
  close(): Promise<void>;
}

const open = new WeakMap<ShellNode, Map<string, Opening>>();

/** `sh` ended: its name on `node` is free again (if it still held it). */
export function forget(node: ShellNode, name: string, sh: Opening): void {
  const shells = open.get(node);
  if (shells?.get(name) === sh) shells.delete(name);
}

function nameTaken(node: ShellNode, name: string): FiwiError {
  return new FiwiError(
    `Shell "${name}" is already open on node "${node.name}": close it or pick another name`,
  );
}

/** One attempt: admitted, spawned, and started within the connect timeout. */
async function openOnce<S extends Opening>(
  node: ShellNode,
  name: string,
  shell: string,
  connectTimeout: number,
  make: (client: Client) => S,
  signal?: AbortSignal,
): Promise<S> {
  signal?.throwIfAborted();
  const admission = await admitShell(node, connectTimeout, signal);
  try {
    const sh = make(spawnShellClient(node, shell));
    try {
      await untilStarted(sh.ready, {
        node: node.name,
        shell: name,
        connectTimeout,
        admission,
        signal,
      });
      return sh;
    } catch (e) {
      await sh.close();
      throw e;
    }
  } finally {
    await admission?.release(false);
  }
}

/**
 * `openShell`: check the input, then attempt under the retry policy (a
 * {@linkcode ConnectionError} is retried) and register the shell under its
 * name. `make` wraps a spawned client in a shell.
 */
export async function openNamed<S extends Opening>(
  node: ShellNode,
  name: string,
  options: ShellOptions,
  make: (client: Client) => S,
): Promise<S> {
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
  const policy = resolveRetry(options.retry ?? node.retry);
  let shells = open.get(node);
  if (!shells) open.set(node, shells = new Map());
  if (shells.has(name)) throw nameTaken(node, name);
  await node.prepare();
  const connectTimeout = options.connectTimeout ?? node.connectTimeout;
  const attempt = async (): Promise<S | Error> => {
    try {
      return await openOnce(
        node,
        name,
        shell,
        connectTimeout,
        make,
        options.signal,
      );
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
    throw nameTaken(node, name);
  }
  shells.set(name, sh);
  return sh;
}
