/**
 * Reading ssh's error output: what the client printed on stderr when a
 * connection failed before the remote command began. One table of ssh's
 * messages gives both the classification (host key, authentication,
 * unreachable, and the finer reason) and a hint that says what to do. The
 * address a hint names is the one ssh's own message names (after the ssh
 * config applied `HostName`, `Port`, `User`); when the message names none,
 * the effective configuration (`ssh -G`, see `effectiveSshConfig`) when the
 * caller has it, else the node's settings. A `ProxyJump` or `ProxyCommand`
 * from the ssh config is named like a relay. Pure.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { readSshError } from "../../mod.ts";
 * const r = readSshError(
 *   "ssh: connect to host 10.0.0.5 port 2222: Connection refused\n",
 *   { host: "dut1" },
 * );
 * assertEquals([r.kind, r.reason, r.host, r.port], ["unreachable", "refused", "10.0.0.5", 2222]);
 * ```
 *
 * @module
 */

import type { EffectiveSshConfig, JumpHop } from "./ssh_config.ts";
import { failedHop, type Proxy, proxyOf } from "./_proxy.ts";

/** Which step failed, as ssh's stderr tells it. */
export type SshFailureKind = "host-key" | "auth" | "unreachable";

/**
 * Why, within a {@linkcode SshFailureKind}: the host key changed or is not
 * known; authentication failed; the connection was refused, the name did
 * not resolve, there is no route, it timed out, the server closed it before
 * the login; or none of these (`unknown`).
 */
export type SshFailureReason =
  | "host-key-changed"
  | "host-key-unknown"
  | "auth"
  | "refused"
  | "unresolved"
  | "no-route"
  | "timed-out"
  | "closed"
  | "unknown";

/**
 * The settings of the node a failure belongs to, for what ssh's message
 * does not name. An `SshNode` is one.
 */
export interface SshErrorNode {
  /** Host (or ssh config alias) of the node. */
  host: string;
  /** Port, when set; ssh's config decides otherwise. */
  port?: number;
  /** Remote user; null or absent when ssh's config decides. */
  user?: string | null;
  /** Relay as `[user@]host[:port]`, when the node is behind one. */
  relay?: string;
}

/** What ssh's stderr says about a failed connection: see {@linkcode readSshError}. */
export interface SshErrorReading {
  /** Which step failed. */
  kind: SshFailureKind;
  /** Why, more precisely. */
  reason: SshFailureReason;
  /**
   * The line of stderr that tells it (the last line when none is known),
   * trimmed; null when stderr is empty.
   */
  detail: string | null;
  /**
   * Which hop failed: the one to the relay (or to a jump host of the ssh
   * config's `ProxyJump`), or the node (also when there is none).
   */
  hop: "relay" | "node";
  /** The host that failed: as ssh's message names it, else from the settings. */
  host: string;
  /** Its port: as ssh's message names it, else from the settings, else undefined. */
  port: number | undefined;
  /**
   * The user of the login that failed: as ssh's message names it; else, for
   * the node, the ssh config's or the settings'; for a relay, the one its
   * address gives; null when not known.
   */
  user: string | null;
  /**
   * The relay or ssh config proxy in front of the node, as hints name it
   * (`relay "pi@gw"`, `ProxyJump "gw" of your ssh config`), whichever hop
   * failed; null without one.
   */
  via: string | null;
  /** What to do about it, one sentence for people. */
  hint: string;
}

/** A row of {@linkcode ROWS}: groups `host`, `port`, `entry`, `file`, `user` are picked up. */
interface Row {
  reason: SshFailureReason;
  kind: SshFailureKind;
  re: RegExp;
}

/**
 * ssh's "connect to host H port P: <what>" (and "Connection to H port P
 * <what>"), or `what` alone. "UNKNOWN port 65535" is a proxied connection's
 * own end, not an address.
 */
function connectError(what: string): RegExp {
  return new RegExp(
    `(?:connect to host|Connection to) (?!UNKNOWN )(?<host>\\S+) port (?<port>\\d+):? (?:${what})|${what}`,
    "i",
  );
}

/**
 * ssh's messages, first match wins: a host key problem before an
 * authentication failure before an unreachable host (a changed key also
 * prints "Host key verification failed").
 */
const ROWS: readonly Row[] = [
  {
    reason: "host-key-changed",
    kind: "host-key",
    re:
      /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for (?<entry>\S+) has changed|Offending (?:\S+ )?key (?:for IP )?in (?<file>.+):\d+$/i,
  },
  {
    reason: "host-key-unknown",
    kind: "host-key",
    re:
      /No \S+ host key is known for (?<entry>\S+)|Host key verification failed/i,
  },
  {
    reason: "auth",
    kind: "auth",
    re:
      /(?:(?<user>[^@\s]+)@(?<host>\S+): )?(?:Permission denied|Too many authentication failures|Authentication failed)/i,
  },
  {
    reason: "refused",
    kind: "unreachable",
    re: connectError("Connection refused"),
  },
  {
    reason: "unresolved",
    kind: "unreachable",
    re:
      /Could not resolve hostname (?<host>\S+?):|Could not resolve|Name or service not known|nodename nor servname|Temporary failure in name resolution/i,
  },
  {
    reason: "no-route",
    kind: "unreachable",
    re: connectError("No route to host|Network is unreachable"),
  },
  {
    reason: "timed-out",
    kind: "unreachable",
    re: connectError("(?:Connection |Operation )?timed out"),
  },
  {
    // "UNKNOWN port 65535" is a proxied connection's own end: no address.
    reason: "closed",
    kind: "unreachable",
    re:
      /Connection (?:closed|reset) by (?:(?!UNKNOWN )(?<host>\S+) port (?<port>\d+)|\S+)/i,
  },
];

/** What the table found in stderr, before settings and hints. */
export interface SshErrorMatch {
  /** Which step failed. */
  kind: SshFailureKind;
  /** Why, more precisely. */
  reason: SshFailureReason;
  /** The telling line (the last one when none is known); null when stderr is empty. */
  detail: string | null;
  /** What ssh's message names: host, port, known_hosts entry and file, user. */
  named: Partial<Record<"host" | "port" | "entry" | "file" | "user", string>>;
}

/**
 * Match stderr against ssh's messages: the first row of the table with a
 * matching line wins; what the matching lines name is collected (the first
 * value of each group). Used by `classifyFailure` and
 * {@linkcode readSshError}.
 */
export function matchSshError(stderr: string): SshErrorMatch {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l);
  for (const row of ROWS) {
    const matches = lines.flatMap((line) => {
      const m = row.re.exec(line);
      return m ? [{ line, groups: m.groups ?? {} }] : [];
    });
    if (matches.length === 0) continue;
    const named: SshErrorMatch["named"] = {};
    for (const { groups } of matches) {
      for (const [k, v] of Object.entries(groups)) {
        if (v !== undefined) named[k as keyof typeof named] ??= v;
      }
    }
    return {
      kind: row.kind,
      reason: row.reason,
      detail: matches[0].line,
      named,
    };
  }
  return {
    kind: "unreachable",
    reason: "unknown",
    detail: lines.at(-1) ?? null,
    named: {},
  };
}

/** Options of {@linkcode readSshError}. */
export interface ReadSshErrorOptions {
  /**
   * The node's effective ssh configuration (`effectiveSshConfig`), when
   * known: its address, port and user fill in what ssh's message does not
   * name, and its `ProxyJump` or `ProxyCommand` is named like a relay.
   */
  config?: EffectiveSshConfig | null;
}

/**
 * Read ssh's stderr from a connection that failed before the remote command
 * began: which step failed and why, the line that says so, which hop (the
 * relay, or the ssh config's jump host, or the node), the address that
 * failed, and a hint. Host, port and user come from ssh's own message when
 * it names them, so a hint follows the ssh config; then from
 * `options.config` (what `ssh -G` says), then from `node`'s settings.
 *
 * @param stderr what the ssh client printed (more text, such as the
 *   run's error message, may follow it)
 * @param node the settings of the node the connection was for
 * @param options the node's effective ssh configuration, when known
 * @returns the classification and the hint
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { readSshError } from "../../mod.ts";
 * const r = readSshError(
 *   "pi@10.0.0.7: Permission denied (publickey).\n",
 *   { host: "10.0.0.7", user: "pi" },
 * );
 * assertEquals([r.kind, r.hop], ["auth", "node"]);
 * console.log(r.hint); // The node refused every key for "pi": check "user", …
 *
 * // ssh names no address here: the ssh config's (`ssh -G`) is named.
 * const jumped = readSshError(
 *   "channel 0: open failed: connect failed: Connection refused\n",
 *   { host: "dut" },
 *   {
 *     config: {
 *       hostname: "10.0.0.5", port: 2222, user: "pi",
 *       proxyJump: "gw", proxyCommand: null, controlPath: null,
 *     },
 *   },
 * );
 * assertEquals([jumped.host, jumped.port], ["10.0.0.5", 2222]);
 * console.log(jumped.hint); // Nothing accepts connections on 10.0.0.5:2222: … (through ProxyJump "gw" …)
 * ```
 */
export function readSshError(
  stderr: string,
  node: SshErrorNode,
  options: ReadSshErrorOptions = {},
): SshErrorReading {
  const match = matchSshError(stderr);
  const config = options.config ?? null;
  // The node as ssh reaches it: the config's address, else the settings.
  const target = config
    ? { host: config.hostname, port: config.port }
    : { host: node.host, port: node.port };
  const proxy = proxyOf(node.relay, config);
  const failed = failedHop(stderr, target, proxy);
  const hop = failed ? "relay" : "node";
  const entry = match.named.entry ? splitEntry(match.named.entry) : undefined;
  const fallback = failed ?? target;
  const host = entry?.host ?? match.named.host ?? fallback.host;
  const port = entry
    ? entry.port
    : match.named.port !== undefined
    ? Number(match.named.port)
    : fallback.port;
  const user = match.named.user ??
    (failed
      ? failed.user ?? null
      : (config?.user || null) ?? node.user ?? null);
  const facts: HintFacts = { match, node, proxy, failed, host, port, user };
  const hint = match.kind === "host-key"
    ? hostKeyHint(facts)
    : match.kind === "auth"
    ? authHint(facts)
    : unreachableHint(facts);
  return {
    kind: match.kind,
    reason: match.reason,
    detail: match.detail,
    hop,
    host,
    port,
    user,
    via: proxy?.name ?? null,
    hint: proxy && failed
      ? `The ${proxy.name} failed, not the node: ${hint}`
      : hint,
  };
}

/** A known_hosts entry (`host` or `[host]:port`) split. */
function splitEntry(entry: string): { host: string; port: number } {
  // ssh writes the port only when it is not 22.
  const m = /^\[(.+)\]:(\d+)$/.exec(entry);
  return m ? { host: m[1], port: Number(m[2]) } : { host: entry, port: 22 };
}

/** `host:port` (`[host]:port` for IPv6), or the host alone when the port is not known. */
function address(host: string, port: number | undefined): string {
  if (port === undefined) return host;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What the hints are written from. */
interface HintFacts {
  match: SshErrorMatch;
  node: SshErrorNode;
  proxy: Proxy | null;
  /** The hop in front of the node that failed, if it was one. */
  failed: JumpHop | undefined;
  host: string;
  port: number | undefined;
  user: string | null;
}

function hostKeyHint({ match, host, port }: HintFacts): string {
  if (match.reason === "host-key-changed") {
    const entry = match.named.entry ??
      (port !== undefined && port !== 22 ? `[${host}]:${port}` : host);
    const quoted = entry.startsWith("[") ? `"${entry}"` : entry;
    const file = match.named.file ? ` -f "${match.named.file}"` : "";
    return `The host key of ${host} changed (reinstalled?): if that is expected, remove the old key with ssh-keygen${file} -R ${quoted}, then try again`;
  }
  return `Verify the key of ${host}, then add it (ssh-keyscan${
    port !== undefined && port !== 22 ? ` -p ${port}` : ""
  } ${host} >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new`;
}

function authHint({ node, proxy, failed, user }: HintFacts): string {
  if (proxy && failed) {
    const login = `${failed.user ? `${failed.user}@` : ""}${
      address(failed.host, failed.port)
    }`;
    const copy = proxy.role === "relay" ? node.relay : login;
    return `it refused every key: check the ${proxy.role}'s user and its authorized_keys (ssh-copy-id ${copy})`;
  }
  if (user === null) {
    return `The node refused every key for the user your ssh config gives: check its "User", "identityFile", and that user's ~/.ssh/authorized_keys on the node (ssh-copy-id)`;
  }
  const configured = node.user === null || node.user === undefined
    ? `, the user your ssh config gives: check its "User"`
    : `: check "user"`;
  return `The node refused every key for "${user}"${configured}, "identityFile", and the node's ~${user}/.ssh/authorized_keys (ssh-copy-id)`;
}

function unreachableHint(
  { match, proxy, failed, host, port }: HintFacts,
): string {
  const atNode = !failed;
  const who = atNode ? "the node" : `the ${proxy?.role}`;
  const where = address(host, port);
  // A hop in front that forwarded the attempt worked: the node's side failed.
  const via = atNode && proxy
    ? ` (through ${proxy.name}${proxy.hops.length ? ", which answered" : ""})`
    : "";
  switch (match.reason) {
    case "refused":
      return `Nothing accepts connections on ${where}: start sshd there or fix ${
        atNode ? '"port"' : proxy!.fix
      }${via}`;
    case "unresolved":
      return `The host name "${host}" does not resolve: fix ${
        atNode ? '"host"' : proxy!.fix
      }, DNS or the ssh config${via}`;
    case "no-route":
      return `No route to ${host}: check cabling, VLAN or VPN${via}`;
    case "timed-out":
      return `No answer from ${where}: ${who} may be down, or a firewall drops packets${via}`;
    case "closed":
      return `${where} closed the connection before the login: its sshd may be starting, overloaded (MaxStartups) or refusing this client${via}`;
    default:
      return `Check that ${who} is up and sshd listens on ${where}${via}`;
  }
}
