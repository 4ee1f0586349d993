/**
 * Argv: the exact command line fiwi spawns to reach a node over ssh, ush or
 * locally, relays included, and the ControlMaster requests for the same
 * node. Pure functions only; nothing here does I/O.
 *
 * @module
 */

import { shellJoin } from "./quote.ts";
import { bareHost, parseRelay } from "./validate.ts";

/** How fiwi reaches a node. */
export type TransportKind = "ssh" | "ush" | "local";
/** How a relay is used: a shell on the relay runs the inner hop, or `ssh -J`. */
export type RelayMode = "nested" | "jump";
/** Host-key policy of the ssh client. */
export type HostKeyCheck = "default" | "accept-new" | "off";

/** Everything argv building needs to know about a node, already resolved. */
export interface TransportSpec {
  /** IP or host name. */
  host: string;
  /** Remote user; absent or null: none in argv, ssh's config decides. */
  user?: string | null;
  /** Remote port, when not the default. */
  port?: number;
  /** Transport kind. */
  transport: TransportKind;
  /** Jump host as `[user@]host[:port]`. */
  relay?: string;
  /** Relay mode. */
  relayMode: RelayMode;
  /** Path or name of the ush client. */
  ushPath: string;
  /** Use a ControlMaster socket (ssh only). */
  controlMaster: boolean;
  /** Directory holding the ControlMaster sockets. */
  controlDir: string;
  /** Seconds a master stays up after its last client (the pool's idle expiry). */
  controlPersist: number;
  /** `ssh -F` file. */
  sshConfig?: string;
  /** `ssh -i` file. */
  identityFile?: string;
  /** Extra `-o Key=Value`. */
  sshOptions: Record<string, string>;
  /** Host-key policy. */
  hostKeyCheck: HostKeyCheck;
  /** Connect timeout in milliseconds (rounded up to whole seconds for ssh). */
  connectTimeout: number;
}

function hostKeyOptions(policy: HostKeyCheck): string[] {
  switch (policy) {
    case "accept-new":
      // LogLevel=ERROR keeps "Permanently added …" out of the command's stderr.
      return [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "LogLevel=ERROR",
      ];
    case "off":
      return [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
      ];
    default:
      return [];
  }
}

/**
 * `-o ConnectTimeout=N`, rounded up to whole seconds; nothing for 0, which
 * means "no connect timeout" to fiwi (rounding up would make it 1 s).
 */
function connectTimeoutOption(ms: number): string[] {
  if (!(ms > 0)) return [];
  return ["-o", `ConnectTimeout=${Math.max(1, Math.ceil(ms / 1000))}`];
}

function extraOptions(options: Record<string, string>): string[] {
  return Object.entries(options).flatMap(([k, v]) => ["-o", `${k}=${v}`]);
}

/**
 * The ControlMaster options for a socket in `dir`. `jump` is the `-J` hop of
 * a jump-mode node: OpenSSH 9.2's `%C` leaves it out, so without a tag two
 * nodes with one address behind different jump hosts would share a master
 * and run each other's commands.
 */
export function controlOptions(
  dir: string,
  persistSeconds: number,
  jump?: string,
): string[] {
  const tag = jump === undefined ? "" : `-j${fnv1a(jump)}`;
  return [
    "-o",
    "ControlMaster=auto",
    "-o",
    `ControlPath=${dir}/%C${tag}`,
    "-o",
    `ControlPersist=${persistSeconds}`,
  ];
}

/** 32-bit FNV-1a of `text` as 8 hex digits: short enough for a socket path. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * Options of the local (first) ssh hop, without destination: config file,
 * batch mode, connect timeout, host-key policy, ControlMaster, extras, port,
 * identity.
 */
function localHopOptions(
  spec: TransportSpec,
  port: number | undefined,
  extras: Record<string, string>,
  jump?: string,
): string[] {
  return [
    ...(spec.sshConfig ? ["-F", spec.sshConfig] : []),
    "-o",
    "BatchMode=yes",
    ...connectTimeoutOption(spec.connectTimeout),
    ...hostKeyOptions(spec.hostKeyCheck),
    ...(spec.controlMaster
      ? controlOptions(spec.controlDir, spec.controlPersist, jump)
      : []),
    ...extraOptions(extras),
    ...(port !== undefined ? ["-p", String(port)] : []),
    ...(spec.identityFile ? ["-i", spec.identityFile] : []),
  ];
}

/**
 * `user@host`, or `host` alone without a user: ssh's config then picks the
 * login name (its `User`, else the local one), as `ssh host` does; `%C` in
 * the ControlPath hashes the user ssh resolved, so sockets stay distinct.
 */
function destination(user: string | null | undefined, host: string): string {
  return user ? `${user}@${host}` : host;
}

/**
 * Build the argv that runs `remoteCommand` (a shell command line for the
 * node's shell, already wrapped if wanted) on the node described by `spec`.
 *
 * - ssh: `ssh [-F cfg] -o BatchMode=yes [-o ConnectTimeout=N] … -- [user@]host cmd`
 *   (no ConnectTimeout when `connectTimeout` is 0; an IPv6 host bare)
 * - ush: `[ssh … user@relay] ush host cmd`
 * - local: `sh -c cmd`
 * - relay, nested: the inner ssh (or ush) argv is quoted once more for the
 *   relay's shell; relay, jump: `ssh -J relay` (ssh only).
 */
export function buildArgv(
  spec: TransportSpec,
  remoteCommand: string,
): string[] {
  if (spec.transport === "local") return ["sh", "-c", remoteCommand];
  const relay = spec.relay ? parseRelay(spec.relay) : undefined;
  // ssh takes an IPv6 destination bare (`user@::1`), never in brackets.
  const host = bareHost(spec.host);
  const target = destination(spec.user, host);

  let inner: string[];
  if (spec.transport === "ush") {
    inner = [spec.ushPath, host, remoteCommand];
  } else if (relay && spec.relayMode === "jump") {
    const jump = destination(
      relay.user ?? spec.user,
      `${relay.host.includes(":") ? `[${relay.host}]` : relay.host}${
        relay.port !== undefined ? `:${relay.port}` : ""
      }`,
    );
    return [
      "ssh",
      ...localHopOptions(spec, spec.port, spec.sshOptions, jump),
      "-J",
      jump,
      "--",
      target,
      remoteCommand,
    ];
  } else if (relay) {
    // Nested: this hop runs on the relay with the relay's own keys and config.
    inner = [
      "ssh",
      "-o",
      "BatchMode=yes",
      ...connectTimeoutOption(spec.connectTimeout),
      ...hostKeyOptions(spec.hostKeyCheck),
      ...extraOptions(spec.sshOptions),
      ...(spec.port !== undefined ? ["-p", String(spec.port)] : []),
      "--",
      target,
      remoteCommand,
    ];
  } else {
    return [
      "ssh",
      ...localHopOptions(spec, spec.port, spec.sshOptions),
      "--",
      target,
      remoteCommand,
    ];
  }

  if (!relay) return inner;
  return [
    "ssh",
    ...localHopOptions(spec, relay.port, {}),
    "--",
    destination(relay.user ?? spec.user, relay.host),
    shellJoin(inner),
  ];
}

/**
 * Options of the ssh a gateway runs to a node that keep its known_hosts
 * read-only: a gateway starts many clients at once (its own fanout), and
 * `UpdateHostKeys` (on by default since OpenSSH 8.5 with the default
 * `UserKnownHostsFile`) rewrites the file through a temporary copy and a
 * rename, so a client adding its key meanwhile is lost, and a later client
 * fails with "Host key verification failed."; `CheckHostIP` (on by default
 * before 8.5) adds an IP line for every new address. Neither changes which
 * keys are trusted: `hostKeyCheck` still decides that, and `accept-new`
 * still appends an unknown key (one append, never a rewrite). A node's own
 * `sshOptions` override them.
 */
export const GATEWAY_HOP_OPTIONS: Readonly<Record<string, string>> = {
  UpdateHostKeys: "no",
  CheckHostIP: "no",
};

/**
 * The spec of the ssh a gateway runs to the node of `spec`: the gateway
 * account's own config and keys (no `-F`, no `-i`: those paths are the
 * controller's), no ControlMaster, and {@linkcode GATEWAY_HOP_OPTIONS}
 * before the node's own `sshOptions`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { buildArgv, gatewayHopSpec } from "./argv.ts";
 * const argv = buildArgv(gatewayHopSpec({
 *   host: "10.0.0.9", transport: "ssh", relayMode: "nested", ushPath: "ush",
 *   controlMaster: true, controlDir: "/cm", controlPersist: 60,
 *   sshConfig: "/etc/fiwi/ssh_config", sshOptions: {},
 *   hostKeyCheck: "default", connectTimeout: 5000,
 * }), "true");
 * assertEquals(argv.includes("UpdateHostKeys=no"), true);
 * assertEquals(argv.includes("-F"), false);
 * ```
 */
export function gatewayHopSpec(spec: TransportSpec): TransportSpec {
  return {
    ...spec,
    sshConfig: undefined,
    identityFile: undefined,
    controlMaster: false,
    sshOptions: { ...GATEWAY_HOP_OPTIONS, ...spec.sshOptions },
  };
}

/** A request to a running ControlMaster (`ssh -O <op>`). */
export type ControlOp = "check" | "exit" | "stop";

/**
 * The argv that sends `op` to the ControlMaster of `spec` (`ssh … -O op --
 * dest`), or `null` when the node uses none. `stop` makes the master accept
 * no new clients and exit once its sessions end; `exit` ends it at once.
 */
export function controlArgv(
  spec: TransportSpec,
  op: ControlOp,
): string[] | null {
  const argv = firstHopArgv(spec);
  if (!argv) return null;
  const dash = argv.indexOf("--");
  return [...argv.slice(0, dash), "-O", op, ...argv.slice(dash, dash + 2)];
}

/**
 * `ssh … -G -- dest`: the client configuration ssh resolves for the first
 * hop of `spec` (`%C` expanded in `controlpath`), or null without a master.
 */
export function configArgv(spec: TransportSpec): string[] | null {
  const argv = firstHopArgv(spec);
  if (!argv) return null;
  const dash = argv.indexOf("--");
  return [...argv.slice(0, dash), "-G", ...argv.slice(dash, dash + 2)];
}

function firstHopArgv(spec: TransportSpec): string[] | null {
  if (spec.transport === "local" || !spec.controlMaster) return null;
  return buildArgv(spec, "true");
}
