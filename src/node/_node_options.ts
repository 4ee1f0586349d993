/**
 * The options of an `SshNode`, their defaults ({@linkcode resolveNodeOptions}),
 * and the checks run before a node is used: every option valid
 * ({@linkcode checkNodeOptions}; {@linkcode validateNodeOptions} without a
 * node), the transport program and the files it names present
 * ({@linkcode checkLocalFiles}).
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import type { GatewayNode } from "../gateway/channel.ts";
import { validateVars } from "./node_values.ts";
import { validateTimeout } from "../process/run_options.ts";
import {
  DEFAULT_RETRY,
  resolveRetry,
  type RetryOptions,
} from "../process/backoff.ts";
import type {
  HostKeyCheck,
  RelayMode,
  TransportKind,
} from "../transport/argv.ts";
import {
  parseRelay,
  validateControlDir,
  validateHost,
  validatePort,
  validateSshOptions,
  validateUser,
} from "../transport/validate.ts";

/** Options of {@linkcode SshNode}. Times are milliseconds. */
export interface SshNodeOptions {
  /** Label, unique in a rig. */
  name: string;
  /** IP or host name. */
  host: string;
  /**
   * Remote user (default "root"). `null`: none in argv (`ssh host`), so
   * ssh's config decides (its `User`, else the local login name), as for
   * a host given on the command line without `user@`.
   */
  user?: string | null;
  /** Remote port. */
  port?: number;
  /** Transport (default "ssh"). */
  transport?: TransportKind;
  /** Jump host, `[user@]host[:port]`. */
  relay?: string;
  /** nested (default): the inner ssh/ush runs on the relay; jump: `ssh -J`. */
  relayMode?: RelayMode;
  /**
   * The node fiwi reaches this one through (an `SshNode`; nested gateways
   * allowed): its gateway program (src/gateway/) runs the ssh to this node
   * with the gateway account's own keys and ssh config, so `sshConfig`,
   * `identityFile` and `controlDir` do not apply and no ControlMaster is
   * kept here. The ssh transport only; not with `relay`.
   */
  gateway?: GatewayHop;
  /** The ush client (default "ush" on PATH, env FIWI_USH). */
  ushPath?: string;
  /** Keep a ControlMaster (default true for ssh; always off for ush/local). */
  controlMaster?: boolean;
  /**
   * How long a ControlMaster stays up after its last client, in ms
   * (default 5 min; ssh counts whole seconds, at least 1): the next run
   * within it skips the handshake.
   */
  controlPersist?: number;
  /** true: lines are not sent to the logger. */
  silent?: boolean;
  /** Takes part in {@linkcode SshNode.openConsoles}. */
  console?: boolean;
  /** Console stream command (default "dmesg -w"). */
  consoleCommand?: string;
  /** Device label (free text). */
  device?: string;
  /** Device IP (free text). */
  devip?: string;
  /**
   * The node's own values for `{key}` in commands
   * ({@linkcode expandNodeValues}): names like shell variables, not one of
   * the built-in keys (`name`, `host`, `user`, `device`, `devip`).
   */
  vars?: Record<string, string>;
  /** `ssh -F` file (default: env FIWI_SSH_CONFIG). */
  sshConfig?: string;
  /** `ssh -i` file. */
  identityFile?: string;
  /** Extra `-o Key=Value`. */
  sshOptions?: Record<string, string>;
  /** Host-key policy (default "default": ssh's own). */
  hostKeyCheck?: HostKeyCheck;
  /** Default connect timeout (15 s). */
  connectTimeout?: number;
  /** Default io timeout (none). */
  ioTimeout?: number;
  /** Default command timeout (none). */
  cmdTimeout?: number;
  /**
   * Default retry policy of `rexec` and transfers when a run gives no
   * `retry` (default {@linkcode DEFAULT_RETRY}: 3 attempts); `false`: one
   * attempt. See src/connection/retry.ts.
   */
  retry?: RetryOptions | false;
  /**
   * Private directory for ControlMaster sockets (default: env
   * FIWI_CONTROL_DIR, else `${XDG_RUNTIME_DIR:-/tmp}/fiwi-<uid>/cm`).
   */
  controlDir?: string;
}

/** A gateway as a node option: a gateway node that may itself sit behind one. */
export interface GatewayHop extends GatewayNode {
  /** The gateway this gateway is reached through, if any. */
  readonly gateway?: GatewayHop;
}

/** Default connect timeout: 15 s. */
export const DEFAULT_CONNECT_TIMEOUT = 15_000;
/** Default ControlPersist: masters idle this long (5 min) are closed. */
export const DEFAULT_CONTROL_PERSIST_S = 300;

/** An environment variable, or undefined when unset, empty or not allowed. */
export function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env: fall back to defaults
  }
}

/** The private directory of ControlMaster sockets (env FIWI_CONTROL_DIR). */
export function defaultControlDir(): string {
  const explicit = env("FIWI_CONTROL_DIR");
  if (explicit) return explicit;
  let uid = "user";
  try {
    uid = String(Deno.uid() ?? "user");
  } catch { /* no --allow-sys */ }
  return `${env("XDG_RUNTIME_DIR") ?? "/tmp"}/fiwi-${uid}/cm`;
}

/** The path of `program` on PATH (or as given), or null. */
async function which(program: string): Promise<string | null> {
  const candidates = program.includes("/")
    ? [program]
    : (env("PATH") ?? "/usr/bin:/bin").split(":").filter((d) => d).map((d) =>
      `${d}/${program}`
    );
  for (const path of candidates) {
    try {
      const st = await Deno.stat(path);
      if (st.isFile) return path;
    } catch (e) {
      // Without read access every candidate looks missing: say which grant
      // is lacking instead of "not found".
      if (e instanceof Deno.errors.NotCapable) {
        throw new ConfigurationError(
          `Looking for "${program}" at "${path}" needs read access: grant --allow-read (at least for the PATH directories)`,
          { cause: e },
        );
      }
    }
  }
  return null;
}

/** The options that take a default when absent ({@linkcode resolveNodeOptions}). */
export type DefaultedOption =
  | "user"
  | "transport"
  | "relayMode"
  | "ushPath"
  | "controlMaster"
  | "controlPersist"
  | "silent"
  | "console"
  | "consoleCommand"
  | "sshOptions"
  | "hostKeyCheck"
  | "connectTimeout"
  | "retry"
  | "controlDir";

/**
 * Every setting of a node with its defaults applied: what an `SshNode`
 * holds and what {@linkcode checkNodeOptions} reads. Derived from
 * {@linkcode SshNodeOptions}, so an option is declared (and documented) once.
 */
export type NodeSettings = Readonly<
  & Required<Pick<SshNodeOptions, DefaultedOption>>
  & Omit<SshNodeOptions, DefaultedOption>
>;

/**
 * The settings a node made from `options` holds, every default applied
 * (the environment's `FIWI_USH`, `FIWI_SSH_CONFIG`, `FIWI_CONTROL_DIR`
 * included). Nothing is checked and no node is made: the one place the
 * defaults are written, read by the `SshNode` constructor and by
 * {@linkcode validateNodeOptions}.
 */
export function resolveNodeOptions(
  options: SshNodeOptions,
): NodeSettings {
  const o = options ?? ({} as SshNodeOptions);
  const transport = o.transport ?? "ssh";
  return {
    name: o.name,
    host: o.host,
    // null (no user: ssh's config decides) is kept; only absent means root.
    user: o.user === null ? null : o.user ?? "root",
    port: o.port,
    transport,
    relay: o.relay,
    relayMode: o.relayMode ?? "nested",
    gateway: o.gateway,
    ushPath: o.ushPath ?? env("FIWI_USH") ?? "ush",
    // Behind a gateway the ssh runs there: no master here.
    controlMaster: transport === "ssh" && !o.gateway &&
      (o.controlMaster ?? true),
    controlPersist: o.controlPersist ?? DEFAULT_CONTROL_PERSIST_S * 1000,
    silent: o.silent ?? false,
    console: o.console ?? false,
    consoleCommand: o.consoleCommand ?? "dmesg -w",
    device: o.device,
    devip: o.devip,
    // A copy, so that a later change to the caller's object is not seen;
    // anything but a mapping is kept as given for checkNodeOptions to name.
    vars:
      typeof o.vars === "object" && o.vars !== null && !Array.isArray(o.vars)
        ? { ...o.vars }
        : o.vars,
    sshConfig: o.sshConfig ?? env("FIWI_SSH_CONFIG"),
    identityFile: o.identityFile,
    sshOptions: { ...(o.sshOptions ?? {}) },
    hostKeyCheck: o.hostKeyCheck ?? "default",
    connectTimeout: o.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
    ioTimeout: o.ioTimeout,
    cmdTimeout: o.cmdTimeout,
    retry: o.retry ?? DEFAULT_RETRY,
    controlDir: o.controlDir ?? defaultControlDir(),
  };
}

/**
 * Check node options without making a node (a made node joins the registry
 * of live nodes): throws {@linkcode ConfigurationError} naming the bad
 * value, exactly as the node's first use would.
 *
 * @example
 * ```ts
 * import { assertThrows } from "jsr:@std/assert@^1";
 * import { validateNodeOptions } from "./_node_options.ts";
 * validateNodeOptions({ name: "n1", host: "10.0.0.1" });
 * assertThrows(() => validateNodeOptions({ name: "n1", host: "-oProxyCommand=x" }));
 * ```
 */
export function validateNodeOptions(options: SshNodeOptions): void {
  checkNodeOptions(resolveNodeOptions(options));
}

/**
 * Check every option of a node; throws {@linkcode ConfigurationError}
 * naming the bad value.
 */
export function checkNodeOptions(n: NodeSettings): void {
  if (typeof n.name !== "string" || n.name.trim() === "") {
    throw new ConfigurationError(
      `Invalid node name ${JSON.stringify(n.name)}: give a non-empty name`,
    );
  }
  if (!["ssh", "ush", "local"].includes(n.transport)) {
    throw new ConfigurationError(
      `Invalid transport ${
        JSON.stringify(n.transport)
      } for node "${n.name}": use "ssh", "ush" or "local"`,
    );
  }
  if (!["nested", "jump"].includes(n.relayMode)) {
    throw new ConfigurationError(
      `Invalid relayMode ${
        JSON.stringify(n.relayMode)
      } for node "${n.name}": use "nested" or "jump"`,
    );
  }
  if (!["default", "accept-new", "off"].includes(n.hostKeyCheck)) {
    throw new ConfigurationError(
      `Invalid hostKeyCheck ${
        JSON.stringify(n.hostKeyCheck)
      } for node "${n.name}": use "default", "accept-new" or "off"`,
    );
  }
  if (n.transport !== "local") {
    validateHost(n.host);
    if (n.user !== null) validateUser(n.user);
    if (n.port !== undefined) validatePort(n.port);
    if (n.relay !== undefined) parseRelay(n.relay);
    if (
      n.relay !== undefined && n.relayMode === "jump" &&
      n.transport !== "ssh"
    ) {
      throw new ConfigurationError(
        `Relay mode "jump" needs the ssh transport, node "${n.name}" uses "${n.transport}": use relayMode "nested"`,
      );
    }
    validateSshOptions(n.sshOptions);
    if (n.controlMaster) {
      validateControlDir(
        n.controlDir,
        n.relay !== undefined && n.relayMode === "jump",
      );
    }
    if (
      n.transport === "ush" &&
      (n.ushPath.trim() === "" || /\s/.test(n.ushPath))
    ) {
      throw new ConfigurationError(
        `Invalid ushPath ${
          JSON.stringify(n.ushPath)
        }: give a program name or path`,
      );
    }
  }
  if (n.gateway !== undefined) checkGateway(n);
  if (n.vars !== undefined) validateVars(n.vars, n.name);
  validateTimeout("connectTimeout", n.connectTimeout);
  validateTimeout("ioTimeout", n.ioTimeout);
  validateTimeout("cmdTimeout", n.cmdTimeout);
  validateTimeout("controlPersist", n.controlPersist);
  resolveRetry(n.retry);
}

/** The longest chain of gateways behind gateways. */
const MAX_GATEWAY_DEPTH = 16;

/** A node behind a gateway: ssh only, no relay, no cycle. */
function checkGateway(n: NodeSettings): void {
  const g = n.gateway;
  if (
    typeof g !== "object" || g === null || typeof g.name !== "string" ||
    typeof g.transportArgv !== "function"
  ) {
    throw new ConfigurationError(
      `Invalid gateway for node "${n.name}": give an SshNode`,
    );
  }
  if (n.transport !== "ssh" || n.relay !== undefined) {
    throw new ConfigurationError(
      `Node "${n.name}" has a gateway: it needs the ssh transport and no relay`,
    );
  }
  const chain = [n.name];
  for (let hop: GatewayHop | undefined = g; hop; hop = hop.gateway) {
    chain.push(hop.name);
    if (hop.name === n.name || chain.length > MAX_GATEWAY_DEPTH + 1) {
      throw new ConfigurationError(
        `Gateways of node "${n.name}" form a cycle or a chain over ${MAX_GATEWAY_DEPTH}: ${
          chain.join(" -> ")
        }`,
      );
    }
  }
}

/**
 * Check that what a node's client needs on this machine is there: the
 * transport program, the identity file, the ssh config file. Rejects with
 * {@linkcode ConfigurationError} naming what is missing.
 */
export async function checkLocalFiles(n: NodeSettings): Promise<void> {
  const program = n.transport === "ush" && !n.relay ? n.ushPath : "ssh";
  if (!(await which(program))) {
    throw new ConfigurationError(
      `Transport program "${program}" for node "${n.name}" was not found: install it, put it on PATH` +
        (n.transport === "ush" ? " or set ushPath / FIWI_USH" : ""),
    );
  }
  if (n.identityFile) {
    try {
      await Deno.stat(n.identityFile);
    } catch (e) {
      throw new ConfigurationError(
        `Identity file "${n.identityFile}" for node "${n.name}" cannot be read: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
  }
  if (n.sshConfig) {
    try {
      await Deno.stat(n.sshConfig);
    } catch (e) {
      throw new ConfigurationError(
        `ssh config file "${n.sshConfig}" for node "${n.name}" cannot be read: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
  }
}
