/**
 * Validation of everything that ends up on an ssh command line: hosts,
 * users, relays, ports, `-o` options and commands. Each check throws a
 * {@linkcode ConfigurationError} naming the bad value before anything runs.
 * Pure.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

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
