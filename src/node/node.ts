/**
 * Node: one reachable rig node. Holds its identity and transport settings,
 * builds argv, runs commands ({@linkcode SshNode.rexec}) and keeps a weak
 * registry of live nodes. Option checks live in `_node_options.ts`, the
 * console stream in `console.ts`; the rest delegates to the node layer's
 * other modules (retry, admission, shell, transfer, reachable).
 *
 * @module
 */

import { controlPool } from "../connection/pool.ts";
import { rexecWithRetry } from "../connection/retry.ts";
import { admit, admitBehind } from "../connection/admission.ts";
import { openShell, type Shell, type ShellOptions } from "../shell/shell.ts";
import {
  pull,
  push,
  type TransferOptions,
  type TransferResult,
} from "../transfer/transfer.ts";
import {
  waitReachable,
  type WaitReachableOptions,
} from "../connection/reachable.ts";
import type { Admission } from "../process/session.ts";
import {
  type Client,
  spawnClient,
  type SpawnOptions,
} from "../process/spawn.ts";
import { closeGateways, gatewayChannel } from "../gateway/channel.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import {
  buildArgv,
  gatewayHopSpec,
  type TransportSpec,
} from "../transport/argv.ts";
import { validateArgv } from "../transport/validate.ts";
import {
  checkLocalFiles,
  checkNodeOptions,
  type NodeSettings,
  resolveNodeOptions,
  type SshNodeOptions,
} from "./_node_options.ts";
import {
  cleanConsoles,
  type ConsoleStream,
  type OpenConsolesOptions,
  startConsole,
} from "./console.ts";

export {
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_CONTROL_PERSIST_S,
  defaultControlDir,
} from "./_node_options.ts";
export type {
  DefaultedOption,
  GatewayHop,
  NodeSettings,
  SshNodeOptions,
} from "./_node_options.ts";
export type { OpenConsolesOptions } from "./console.ts";
import { ensurePrivateDir } from "../connection/_control_dir.ts";
import { wrapCommand } from "../transport/wrapper.ts";

const registry = new Set<WeakRef<SshNode>>();
const finalizer = new FinalizationRegistry<WeakRef<SshNode>>((ref) =>
  registry.delete(ref)
);

// The settings are declared once, as SshNodeOptions; the interface below
// gives the class its fields (each resolved option, read-only except
// `silent`), and the constructor assigns them all from resolveNodeOptions.
/** The settings of a node (its options with defaults applied), as fields. */
export interface SshNode extends Omit<NodeSettings, "silent"> {
  /** Lines are not sent to the logger. */
  silent: boolean;
}

/**
 * One reachable rig node.
 *
 * The constructor only records the options; they are validated when argv is
 * built, so {@linkcode SshNode.rexec} rejects with a
 * {@linkcode ConfigurationError} for an unsafe host, user or relay.
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const result = await node.rexec("uname -s");
 * console.log(result.code, result.stdout);
 * ```
 */
export class SshNode {
  #settings: NodeSettings;
  #validated = false;
  #prepared: Promise<void> | null = null;
  #console: ConsoleStream | null = null;

  /**
   * Create a node and add it to the registry. Options are checked when the
   * node is first used ({@linkcode SshNode.validate}).
   *
   * @param options the node's identity and transport settings
   */
  constructor(options: SshNodeOptions) {
    // The defaults are written once, in resolveNodeOptions: the rig file's
    // checker validates exactly what a node would hold, without making one.
    this.#settings = resolveNodeOptions(options);
    Object.assign(this, this.#settings);
    const ref = new WeakRef(this);
    registry.add(ref);
    finalizer.register(this, ref);
  }

  /**
   * A new node with this node's options, some of them changed: a variant
   * (no ControlMaster, another user, a longer timeout) without repeating
   * the rest.
   *
   * @example
   * ```ts
   * import { SshNode } from "../../mod.ts";
   * const node = new SshNode({ name: "n1", host: "10.0.0.1", user: "pi" });
   * const direct = node.with({ controlMaster: false });
   * console.log(direct.user, direct.controlMaster); // "pi" false
   * ```
   */
  with(overrides: Partial<SshNodeOptions>): SshNode {
    return new SshNode({
      ...this.#settings,
      silent: this.silent,
      sshOptions: { ...this.sshOptions },
      ...overrides,
    });
  }

  /** Live nodes: every node the program still references. */
  static getInstances(): SshNode[] {
    const nodes: SshNode[] = [];
    for (const ref of registry) {
      const node = ref.deref();
      if (node) nodes.push(node);
      else registry.delete(ref);
    }
    return nodes;
  }

  /**
   * Check every option; throws {@linkcode ConfigurationError} naming the bad
   * value. Called by {@linkcode SshNode.argv} and before every run.
   */
  validate(): void {
    if (this.#validated) return;
    checkNodeOptions(this);
    this.#validated = true;
  }

  /** The resolved transport settings (controlPersist in whole seconds, as ssh counts). */
  get spec(): TransportSpec {
    return {
      ...this.#settings,
      sshOptions: { ...this.sshOptions },
      controlPersist: Math.max(1, Math.ceil(this.controlPersist / 1000)),
    };
  }

  /** The exact argv {@linkcode SshNode.rexec} spawns for `cmd` (without `stdin`). */
  argv(cmd: string): string[] {
    return this.transportArgv(wrapCommand(cmd));
  }

  /**
   * The argv that runs `remoteCommand`, a command line for the node's shell
   * that is already wrapped (src/transport/wrapper.ts).
   */
  transportArgv(remoteCommand: string): string[] {
    this.validate();
    const argv = buildArgv(
      this.gateway ? gatewayHopSpec(this.spec) : this.spec,
      remoteCommand,
    );
    validateArgv(argv);
    return argv;
  }

  /**
   * Start the client for `argv`: here, or through the gateway's channel for
   * a node behind a gateway (src/gateway/channel.ts).
   */
  spawn(argv: readonly string[], options: SpawnOptions = {}): Client {
    if (!this.gateway) return spawnClient(argv, options);
    return gatewayChannel(this.gateway).spawn(argv, {
      raw: options.rawStdout,
      stdoutFile: options.stdoutFile,
    });
  }

  /**
   * Make the node ready to spawn: options valid, the local transport program
   * and identity file present, the private socket directory in place.
   * Rejects with {@linkcode ConfigurationError} naming what is missing.
   */
  prepare(): Promise<void> {
    this.#prepared ??= this.#prepare().catch((e) => {
      this.#prepared = null;
      throw e;
    });
    return this.#prepared;
  }

  async #prepare(): Promise<void> {
    this.validate();
    if (this.transport === "local") return;
    // Behind a gateway, the ssh and its files are the gateway's.
    if (this.gateway) return await this.gateway.prepare();
    await checkLocalFiles(this);
    if (this.controlMaster) {
      await ensurePrivateDir(this.controlDir);
      controlPool.track(this.spec);
    }
  }

  /**
   * Wait until a run may spawn its client (src/connection/admission.ts): one
   * handshake per ControlMaster, a bounded number of clients connecting at
   * once, a hung master found while a client waits on it. Resolves null
   * when `signal` aborted first.
   */
  admit(
    signal: AbortSignal,
    connectTimeout: number,
  ): Promise<Admission | null> {
    // Behind a gateway no master here: only its handshakes are paced.
    if (this.gateway) return admitBehind(this.gateway, signal);
    return admit(this, signal, connectTimeout);
  }

  /**
   * Run `cmd` in a new {@linkcode SshSession} (see its `postCmd`); a run
   * whose connection failed before the command began is retried under
   * `options.retry` (src/retry.ts). `result.attempts` counts the attempts.
   */
  rexec(cmd: string, options: RunOptions = {}): Promise<RunResult> {
    return rexecWithRetry(this, cmd, options);
  }

  /**
   * Wait until a command really starts on this node again (after a power
   * cycle or reboot): resolves true once one does, false when `timeout`
   * (default 5 min) passes or `signal` aborts. See src/connection/reachable.ts.
   */
  waitReachable(options: WaitReachableOptions = {}): Promise<boolean> {
    return waitReachable(this, options);
  }

  /**
   * Open the named persistent shell `name` on this node (src/shell.ts):
   * cwd, environment and variables persist between its runs.
   */
  openShell(name: string, options: ShellOptions = {}): Promise<Shell> {
    return openShell(this, name, options);
  }

  /**
   * Copy local files or directories (recursively) into the remote
   * directory `destDir` (created if missing), each under its own base name;
   * modes, mtimes and links kept, each file in place only once whole
   * (src/transfer/transfer.ts). Rejects only for bad input, such as a missing
   * source ({@linkcode ConfigurationError}), before anything runs.
   */
  push(
    sources: string | string[],
    destDir: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    return push(this, sources, destDir, options);
  }

  /**
   * Copy remote files or directories into the local directory
   * `destDir/<node name>/`, each under its base name (src/transfer/transfer.ts).
   * Rejects only for bad input ({@linkcode ConfigurationError}).
   */
  pull(
    sources: string | string[],
    destDir: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    return pull(this, sources, destDir, options);
  }

  /** Remote cleanup: kill stale copies of this node's console command. */
  clean(): Promise<void> {
    return cleanConsoles(this);
  }

  /**
   * Open this node's console stream (its `consoleCommand`) in the background,
   * or return the open one. Lines go to the logger (category `fiwi.console`)
   * and `onLine`.
   */
  async openConsole(
    options: Omit<OpenConsolesOptions, "nodes"> = {},
  ): Promise<ConsoleStream> {
    if (this.#console) return this.#console;
    if (options.clean ?? true) await this.clean();
    return this.#console ??= startConsole(this, options);
  }

  /**
   * The open console stream (its `done` settles when the stream ends, on its
   * own or by {@linkcode SshNode.closeConsole}); null when none is open.
   */
  get consoleStream(): ConsoleStream | null {
    return this.#console;
  }

  /** Close this node's console stream, if open, and wait for its teardown. */
  async closeConsole(): Promise<RunResult | null> {
    const c = this.#console;
    if (!c) return null;
    this.#console = null;
    return await c.close();
  }

  /**
   * Close the console, the channel of a gateway this node is, and the
   * ControlMaster, if any.
   */
  async close(): Promise<void> {
    await this.closeConsole();
    await closeGateways(this);
    if (!this.controlMaster) return;
    try {
      this.validate();
    } catch {
      return; // never spawned anything
    }
    await controlPool.exit(this.spec);
  }

  /** Same as {@linkcode SshNode.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Open the console of every live node with `console: true` (or of
   * `options.nodes`): clean stale console commands, then start each stream.
   */
  static async openConsoles(options: OpenConsolesOptions = {}): Promise<void> {
    const nodes = options.nodes ??
      SshNode.getInstances().filter((n) => n.console);
    await Promise.all(nodes.map((n) => n.openConsole(options)));
  }

  /** Close every open console stream. */
  static async closeConsoles(): Promise<void> {
    await Promise.all(SshNode.getInstances().map((n) => n.closeConsole()));
  }
}
