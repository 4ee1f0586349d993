/**
 * The ssh client configuration in effect for one destination, as `ssh -G`
 * prints it (one `keyword value` line each, keywords in lower case): the
 * address, port and user ssh will really use after its config applied
 * `HostName`, `Port`, `User` and `Match`, and the proxy it goes through.
 * Pure: running `ssh -G` is `effectiveSshConfig` (src/connection/).
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseEffectiveSshConfig } from "./ssh_config.ts";
 * const config = parseEffectiveSshConfig(
 *   "user alice\nhostname 10.0.0.5\nport 2222\nproxyjump pi@[10.0.0.1]:2200\n",
 * );
 * assertEquals(config?.port, 2222);
 * assertEquals(config?.proxyJump, "pi@[10.0.0.1]:2200");
 * ```
 *
 * @module
 */

/** What ssh's configuration makes of a destination: see {@linkcode parseEffectiveSshConfig}. */
export interface EffectiveSshConfig {
  /** The address ssh connects to (`HostName`, else the destination itself). */
  hostname: string;
  /** The port it connects to (`Port`, else 22). */
  port: number;
  /** The user it logs in as (`User`, else the local user). */
  user: string;
  /** `ProxyJump` as ssh prints it (`[user@]host[:port]`, comma-separated hops), or null. */
  proxyJump: string | null;
  /** `ProxyCommand`, `%` tokens not expanded, or null. */
  proxyCommand: string | null;
  /** `ControlPath` with `%C` expanded, or null without one. */
  controlPath: string | null;
}

/** One hop of a `ProxyJump` list. */
export interface JumpHop {
  /** User, when the hop names one. */
  user?: string;
  /** Host (an IPv6 address without brackets). */
  host: string;
  /** Port, when the hop names one. */
  port?: number;
}

/** A value ssh prints for "not set". */
function orNull(value: string | undefined): string | null {
  return value === undefined || value === "none" ? null : value;
}

/**
 * Read the output of `ssh -G`: the first value of each keyword counts, as
 * for ssh itself. Null when the text lacks the address or a valid port
 * (ssh failed, or this is not `ssh -G` output).
 *
 * @param text what `ssh -G … -- destination` printed on stdout
 * @returns the settings hints need, or null
 */
export function parseEffectiveSshConfig(
  text: string,
): EffectiveSshConfig | null {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([a-z0-9]+)\s+(.*?)\s*$/.exec(line);
    if (m && !values.has(m[1])) values.set(m[1], m[2]);
  }
  const hostname = values.get("hostname");
  const port = Number(values.get("port"));
  if (!hostname || !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    return null;
  }
  return {
    hostname,
    port,
    user: values.get("user") ?? "",
    proxyJump: orNull(values.get("proxyjump")),
    proxyCommand: orNull(values.get("proxycommand")),
    controlPath: orNull(values.get("controlpath")),
  };
}

/**
 * Split a `ProxyJump` value into its hops, first hop first: each is
 * `[ssh://][user@]host[:port]`, a host in brackets (`[10.0.0.1]:2200`, as
 * `ssh -G` prints every host with a port) or bare. Hops that do not parse
 * are left out.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseProxyJump } from "./ssh_config.ts";
 * assertEquals(parseProxyJump("pi@[10.0.0.1]:2200,gw"), [
 *   { user: "pi", host: "10.0.0.1", port: 2200 },
 *   { host: "gw" },
 * ]);
 * ```
 */
export function parseProxyJump(value: string): JumpHop[] {
  return value.split(",").flatMap((hop) => {
    const m =
      /^(?:ssh:\/\/)?(?:(?<user>[^@\s]+)@)?(?:\[(?<bracketed>[^\]\s]+)\]|(?<host>[^:@\s[\]]+))(?::(?<port>\d{1,5}))?$/
        .exec(hop.trim());
    if (!m?.groups) return [];
    const { user, bracketed, host, port } = m.groups;
    const parsed: JumpHop = { host: bracketed ?? host };
    if (user !== undefined) parsed.user = user;
    if (port !== undefined) parsed.port = Number(port);
    return [parsed];
  });
}
