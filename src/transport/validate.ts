/**
 * Validation of everything that ends up on an ssh command line: hosts,
 * users, relays, ports, `-o` options, the ControlMaster directory, commands
 * and the final argv. Each check throws a {@linkcode ConfigurationError}
 * naming the bad value before anything runs, so that input only ssh would
 * catch never comes back as a connection failure (and is never retried).
 * Pure.
 *
 * @module
 */

import { ConfigurationError, showValue } from "../errors.ts";
import {
  MULTI_WORD_KEYWORDS,
  REFUSED_KEYWORDS,
  SSH_KEYWORDS,
} from "./_ssh_keywords.ts";

/** Longest host accepted: a DNS name has at most 253 characters. */
export const MAX_HOST_LENGTH = 253;
/**
 * Longest single argument Linux `execve` takes, in bytes (MAX_ARG_STRLEN,
 * 131072 with the terminating NUL). The wrapped command is one argument.
 */
export const MAX_ARG_BYTES = 131071;
/** Longest unix socket path, in bytes (`sun_path` is 108 with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

// Names and IPv4: never an option (no leading "-"), never whitespace, never a
// shell metacharacter.
const NAME_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const IPV4_RE = /^\d{1,3}(\.\d{1,3}){3}$/;
const USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const OPTION_KEY_RE = /^[A-Za-z][A-Za-z0-9]*$/;
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f]/;
const encoder = new TextEncoder();

/** `value` quoted for a message, cut short when it is long. */
function shown(value: unknown): string {
  if (typeof value === "string" && value.length > 60) {
    return `${
      JSON.stringify(value.slice(0, 60))
    }… (${value.length} characters)`;
  }
  return showValue(value);
}

/** True when `text` is an IPv6 address, optionally with a `%zone`. */
export function isIpv6(text: string): boolean {
  const [address, zone, ...extra] = text.split("%");
  if (extra.length > 0) return false;
  if (zone !== undefined && !/^[A-Za-z0-9_.-]+$/.test(zone)) return false;
  const halves = address.split("::");
  if (halves.length > 2 || !address.includes(":")) return false;
  const groups = halves.flatMap((h) => h === "" ? [] : h.split(":"));
  let count = 0;
  for (const [i, group] of groups.entries()) {
    if (/^[0-9A-Fa-f]{1,4}$/.test(group)) count += 1;
    else if (i === groups.length - 1 && IPV4_RE.test(group)) count += 2;
    else return false;
  }
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** `host` without the brackets of a bracketed IPv6 address (`[::1]` → `::1`). */
export function bareHost(host: string): string {
  const m = /^\[(.*)\]$/.exec(host);
  return m && isIpv6(m[1]) ? m[1] : host;
}

/**
 * Check that `value` is a host name, an IPv4 address or an IPv6 address
 * (bare or in brackets, with an optional `%zone`): throws
 * {@linkcode ConfigurationError} naming `what` and the value otherwise.
 */
export function validateHost(value: string, what = "host"): void {
  const invalid = (why: string) =>
    new ConfigurationError(`Invalid ${what} ${shown(value)}: ${why}`);
  if (typeof value !== "string" || value === "") {
    throw invalid("give a host name or IP address");
  }
  if (value.length > MAX_HOST_LENGTH) {
    throw invalid(`a host name has at most ${MAX_HOST_LENGTH} characters`);
  }
  const bracketed = /^\[.*\]$/.test(value);
  const inner = bracketed ? value.slice(1, -1) : value;
  if (inner.includes(":") && isIpv6(inner)) return;
  const withPort = /^(\[[^\]]*\]|[^:\[\]]+):(\d+)$/.exec(value);
  if (withPort) {
    throw invalid(
      `give the host alone and the port separately (port: ${withPort[2]})`,
    );
  }
  if (bracketed) throw invalid("brackets are only for IPv6 addresses");
  if (value.includes("%")) {
    throw invalid(
      `"%" is only allowed in the zone of an IPv6 address, as in "fe80::1%eth0"`,
    );
  }
  if (!NAME_RE.test(value)) {
    throw invalid(
      `use a host name or IP address (no leading "-", whitespace or shell metacharacters)`,
    );
  }
}

/** Check that `value` is safe as a user name. */
export function validateUser(value: string, what = "user"): void {
  if (typeof value !== "string" || !USER_RE.test(value)) {
    throw new ConfigurationError(
      `Invalid ${what} ${
        shown(value)
      }: use letters, digits, ".", "_" or "-" (no leading "-")`,
    );
  }
}

/** Check a remote command: not empty, not whitespace only, no NUL. */
export function validateCommand(cmd: string): void {
  if (typeof cmd !== "string" || cmd.trim() === "") {
    throw new ConfigurationError(
      `Invalid command ${shown(cmd)}: give a non-empty command`,
    );
  }
  if (cmd.includes("\0")) {
    throw new ConfigurationError(
      `Invalid command ${shown(cmd)}: it contains a NUL character`,
    );
  }
}

/** A relay split into its parts. */
export interface RelayParts {
  /** Relay user, when given as `user@host`. */
  user?: string;
  /** Relay host (an IPv6 address without brackets). */
  host: string;
  /** Relay port, when given as `host:port`. */
  port?: number;
}

/**
 * Parse and validate a relay given as `[user@]host[:port]`; an IPv6 address
 * goes in brackets when a port follows (`[fe80::1]:2222`).
 */
export function parseRelay(relay: string): RelayParts {
  const invalid = (why: string) =>
    new ConfigurationError(`Invalid relay ${shown(relay)}: ${why}`);
  if (typeof relay !== "string") throw invalid('give "[user@]host[:port]"');
  let rest = relay;
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    validateUser(user, "relay user");
  }
  let host = rest;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(rest);
  if (bracketed) {
    if (!isIpv6(bracketed[1])) {
      throw invalid("brackets are only for IPv6 addresses");
    }
    [host, portText] = [bracketed[1], bracketed[2]];
  } else if (rest.split(":").length === 2) {
    [host, portText] = rest.split(":");
  }
  if (host === "") {
    throw invalid('the host is missing: give "[user@]host[:port]"');
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw invalid(
        `the port ${
          JSON.stringify(portText)
        } is not a whole number from 1 to 65535`,
      );
    }
  }
  validateHost(host, "relay");
  return { user, host, port };
}

/** Check a TCP port number. */
export function validatePort(port: number, what = "port"): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigurationError(
      `Invalid ${what} ${showValue(port)}: use a whole number from 1 to 65535`,
    );
  }
}

/**
 * Check extra `-o` options as ssh would: keys are ssh_config keywords that
 * ssh takes on its command line (not `Host`, `Match`, `Include` or
 * `RemoteCommand`), values are single-line and, unless the keyword takes
 * several words (`ProxyCommand`, `SendEnv` …), one word or a double-quoted
 * string.
 */
export function validateSshOptions(options: Record<string, string>): void {
  if (
    options === null || typeof options !== "object" || Array.isArray(options)
  ) {
    throw new ConfigurationError(
      `Invalid sshOptions ${
        shown(options)
      }: give a mapping of ssh_config keywords to values`,
    );
  }
  for (const [key, value] of Object.entries(options)) {
    validateSshOption(key, value);
  }
}

function validateSshOption(key: string, value: string): void {
  const lower = key.toLowerCase();
  const refused = REFUSED_KEYWORDS.get(lower);
  if (refused) {
    throw new ConfigurationError(
      `Invalid ssh option ${JSON.stringify(key)}: ${refused}`,
    );
  }
  if (!OPTION_KEY_RE.test(key) || !SSH_KEYWORDS.has(lower)) {
    throw new ConfigurationError(
      `Unknown ssh option ${
        shown(key)
      }: use an ssh_config(5) keyword such as "ServerAliveInterval"`,
    );
  }
  const bad = (why: string) =>
    new ConfigurationError(
      `Invalid value ${shown(value)} for ssh option "${key}": ${why}`,
    );
  if (typeof value !== "string" || CONTROL_RE.test(value)) {
    throw bad("give a single-line string");
  }
  if (value.trim() === "") throw bad("give a value");
  if (
    /\s/.test(value) && !MULTI_WORD_KEYWORDS.has(lower) &&
    !/^"[^"\\]*"$/.test(value)
  ) {
    throw bad(
      "it takes one word; put a path with spaces in double quotes",
    );
  }
}

/**
 * Longest ControlMaster directory ssh can use, in bytes. ssh binds its
 * master socket at `${ControlPath}.` plus 16 random characters before it
 * links it into place, and the ControlPath is `${dir}/%C` (40 hex digits),
 * plus `-j` and 8 hex digits for a jump-mode node (src/transport/argv.ts).
 */
export function maxControlDirBytes(jumpTag: boolean): number {
  return MAX_SOCKET_PATH_BYTES - 17 - 1 - 40 - (jumpTag ? 10 : 0);
}

/**
 * Check a ControlMaster directory the way ssh will read it in
 * `ControlPath=${dir}/%C`: no whitespace, no `%`, `$`, quotes or
 * backslashes (ssh expands or splits on them), no leading `~` (ssh would
 * expand it, fiwi would not), and short enough for a socket path
 * ({@linkcode maxControlDirBytes}).
 */
export function validateControlDir(dir: string, jumpTag = false): void {
  const invalid = (why: string) =>
    new ConfigurationError(`Invalid controlDir ${shown(dir)}: ${why}`);
  if (typeof dir !== "string" || dir === "") {
    throw invalid("give a directory path");
  }
  if (/\s/.test(dir) || CONTROL_RE.test(dir)) {
    throw invalid(
      "ssh splits ControlPath at whitespace; choose a path without spaces",
    );
  }
  const special = /[%$"'\\]/.exec(dir);
  if (special) {
    throw invalid(
      `ssh expands or strips ${
        JSON.stringify(special[0])
      } in ControlPath; choose a path without %, $, quotes or backslashes`,
    );
  }
  if (dir.startsWith("~")) {
    throw invalid("give an absolute path (fiwi does not expand ~)");
  }
  const bytes = encoder.encode(dir).length;
  const max = maxControlDirBytes(jumpTag);
  if (bytes > max) {
    throw invalid(
      `it is ${bytes} bytes long, and ssh's socket path in it allows at most ${max}${
        jumpTag ? " for a jump relay" : ""
      }; choose a shorter directory`,
    );
  }
}

/**
 * Check that every argument of `argv` fits the system's limit for one
 * argument ({@linkcode MAX_ARG_BYTES}). Throws {@linkcode ConfigurationError}
 * instead of letting the spawn fail with "Argument list too long".
 */
export function validateArgv(argv: readonly string[]): void {
  for (const arg of argv) {
    if (arg.length <= MAX_ARG_BYTES / 3) continue; // UTF-8: at most 3 bytes a unit
    const bytes = encoder.encode(arg).length;
    if (bytes > MAX_ARG_BYTES) {
      throw new ConfigurationError(
        `Command too long: it becomes a ${bytes}-byte argument of "${
          argv[0]
        }", and the system allows ${MAX_ARG_BYTES} bytes; pass a long script as stdin instead (rexec("sh -s", { stdin: script }))`,
      );
    }
  }
}
