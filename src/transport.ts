/**
 * Transport: the exact argv fiwi spawns for a node, and the validation and
 * quoting that keep it safe. Pure functions only; nothing here does I/O.
 *
 * @module
 */

import { ConfigurationError } from "./errors.ts";

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
  /** Remote user. */
  user: string;
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

/** The line the wrapped remote command prints on stderr before the command. */
export const START_MARKER = "__FIWI_START__";

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote a string for a POSIX shell. Safe words pass unchanged; anything else
 * is put in single quotes, with embedded single quotes spelled `'\''`.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./transport.ts";
 * shellQuote("it's"); // "'it'\\''s'"
 * ```
 */
export function shellQuote(value: string): string {
  if (value !== "" && SAFE_WORD.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Join argv into one command line for a POSIX shell. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

// Host names, IPv4, IPv6 (with brackets or zone ids): never an option, never
// whitespace, never a shell metacharacter.
const HOST_RE = /^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$/;
const USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const OPTION_KEY_RE = /^[A-Za-z][A-Za-z0-9]*$/;
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f]/;

/**
 * Check that `value` is safe as a host name: throws
 * {@linkcode ConfigurationError} naming `what` and the value otherwise.
 */
export function validateHost(value: string, what = "host"): void {
  if (typeof value !== "string" || !HOST_RE.test(value)) {
    throw new ConfigurationError(
      `Invalid ${what} ${
        JSON.stringify(value)
      }: use a host name or IP address ` +
        `(no leading "-", whitespace or shell metacharacters)`,
    );
  }
}

/** Check that `value` is safe as a user name. */
export function validateUser(value: string, what = "user"): void {
  if (typeof value !== "string" || !USER_RE.test(value)) {
    throw new ConfigurationError(
      `Invalid ${what} ${
        JSON.stringify(value)
      }: use letters, digits, ".", "_" ` +
        `or "-" (no leading "-")`,
    );
  }
}

/** Check a remote command: not empty, not whitespace only, no NUL. */
export function validateCommand(cmd: string): void {
  if (typeof cmd !== "string" || cmd.trim() === "") {
    throw new ConfigurationError(
      `Invalid command ${JSON.stringify(cmd)}: give a non-empty command`,
    );
  }
  if (cmd.includes("\0")) {
    throw new ConfigurationError(
      `Invalid command ${JSON.stringify(cmd)}: it contains a NUL character`,
    );
  }
}

/** A relay split into its parts. */
export interface RelayParts {
  /** Relay user, when given as `user@host`. */
  user?: string;
  /** Relay host. */
  host: string;
  /** Relay port, when given as `host:port`. */
  port?: number;
}

/**
 * Parse and validate a relay given as `[user@]host[:port]` (IPv6 in
 * brackets when a port follows).
 */
export function parseRelay(relay: string): RelayParts {
  if (typeof relay !== "string") validateHost(String(relay), "relay");
  let rest = relay;
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    validateUser(user, "relay user");
  }
  let port: number | undefined;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(rest);
  if (m) {
    rest = m[1].replace(/^\[(.*)\]$/, "$1");
    port = Number(m[2]);
    validatePort(port, "relay port");
  }
  validateHost(rest, "relay");
  return { user, host: rest, port };
}

/** Check a TCP port number. */
export function validatePort(port: number, what = "port"): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigurationError(
      `Invalid ${what} ${
        JSON.stringify(port)
      }: use a whole number from 1 to 65535`,
    );
  }
}

/** Check extra `-o` options: keys are option names, values are single-line. */
export function validateSshOptions(options: Record<string, string>): void {
  for (const [key, value] of Object.entries(options)) {
    if (!OPTION_KEY_RE.test(key)) {
      throw new ConfigurationError(
        `Invalid ssh option name ${
          JSON.stringify(key)
        }: use an ssh_config keyword such as "ServerAliveInterval"`,
      );
    }
    if (typeof value !== "string" || CONTROL_RE.test(value)) {
      throw new ConfigurationError(
        `Invalid value ${
          JSON.stringify(value)
        } for ssh option "${key}": give a single-line string`,
      );
    }
  }
}

/**
 * Wrap a command so the remote shell first reports, on stderr, that it began
 * and its own pid (the session and process-group leader), then runs the
 * command through `eval` so its syntax and exit status are its own.
 */
export function wrapCommand(cmd: string): string {
  return `printf '${START_MARKER} %d\\n' $$ >&2; eval ${shellQuote(cmd)}`;
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

function connectSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
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
    "-o",
    `ConnectTimeout=${connectSeconds(spec.connectTimeout)}`,
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
 * Build the argv that runs `remoteCommand` (a shell command line for the
 * node's shell, already wrapped if wanted) on the node described by `spec`.
 *
 * - ssh: `ssh [-F cfg] -o BatchMode=yes -o ConnectTimeout=N … -- user@host cmd`
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
  const target = `${spec.user}@${spec.host}`;

  let inner: string[];
  if (spec.transport === "ush") {
    inner = [spec.ushPath, spec.host, remoteCommand];
  } else if (relay && spec.relayMode === "jump") {
    const jump = `${relay.user ?? spec.user}@${
      relay.host.includes(":") ? `[${relay.host}]` : relay.host
    }${relay.port !== undefined ? `:${relay.port}` : ""}`;
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
      "-o",
      `ConnectTimeout=${connectSeconds(spec.connectTimeout)}`,
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
    `${relay.user ?? spec.user}@${relay.host}`,
    shellJoin(inner),
  ];
}

/**
 * The argv that asks the ControlMaster of `spec` to exit (`ssh -O exit`), or
 * `null` when the node uses none.
 */
export function controlExitArgv(spec: TransportSpec): string[] | null {
  if (spec.transport === "local" || !spec.controlMaster) return null;
  const argv = buildArgv(spec, "true");
  // Same options and destination, with "-O exit" instead of a command.
  const dash = argv.indexOf("--");
  return [
    ...argv.slice(0, dash),
    "-O",
    "exit",
    ...argv.slice(dash, dash + 2),
  ];
}
