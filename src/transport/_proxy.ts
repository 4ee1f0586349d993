/**
 * The hop in front of a node, for reading ssh's errors: fiwi's relay, or the
 * `ProxyJump` or `ProxyCommand` of the ssh config (`ssh -G`), and which of
 * its hosts ssh's message names. Pure; used by `ssh_errors.ts`.
 *
 * @module
 */

import { parseRelay } from "./validate.ts";
import {
  type EffectiveSshConfig,
  type JumpHop,
  parseProxyJump,
} from "./ssh_config.ts";

/** A hop in front of the node: fiwi's relay, or the ssh config's proxy. */
export interface Proxy {
  /** How hints name it: `relay "pi@gw"`, `ProxyJump "gw" of your ssh config`. */
  name: string;
  /** What it is, for people: "relay", "jump host", "proxy command". */
  role: string;
  /** What to fix when it fails. */
  fix: string;
  /** Its hosts, first hop first; none for a `ProxyCommand`. */
  hops: JumpHop[];
}

/** The node's relay, else the ssh config's `ProxyJump` or `ProxyCommand`, else null. */
export function proxyOf(
  relay: string | undefined,
  config: EffectiveSshConfig | null,
): Proxy | null {
  if (relay) {
    let hops: JumpHop[] = [];
    try {
      hops = [parseRelay(relay)];
    } catch {
      /* a relay that does not parse: never named as the failing hop */
    }
    return {
      name: `relay "${relay}"`,
      role: "relay",
      fix: '"relay"',
      hops,
    };
  }
  if (config?.proxyJump) {
    return {
      name: `ProxyJump "${config.proxyJump}" of your ssh config`,
      role: "jump host",
      fix: 'the ssh config\'s "ProxyJump"',
      hops: parseProxyJump(config.proxyJump),
    };
  }
  if (config?.proxyCommand) {
    return {
      name: `ProxyCommand "${config.proxyCommand}" of your ssh config`,
      role: "proxy command",
      fix: 'the ssh config\'s "ProxyCommand"',
      hops: [],
    };
  }
  return null;
}

/**
 * The hop of `proxy` that ssh's message `text` is about, or undefined when
 * it is about the node (`target`, as ssh reaches it) or names no hop.
 */
export function failedHop(
  text: string,
  target: { host: string; port?: number },
  proxy: Proxy | null,
): JumpHop | undefined {
  return proxy?.hops.find((hop) => hopNamed(text, target, hop));
}

/**
 * True when ssh's message is about the hop `jump`, not the node (`target`,
 * as ssh reaches it): it names the hop's address (and port, when the hop
 * shares the node's address).
 */
function hopNamed(
  text: string,
  target: { host: string; port?: number },
  jump: JumpHop,
): boolean {
  const names = (host: string, port?: number) =>
    new RegExp(
      `(host |@|\\[)${host.replaceAll(".", "\\.")}(\\]?:${port ?? ""}| port ${
        port ?? ""
      }|[: ]|$)`,
      "m",
    ).test(text);
  if (jump.host !== target.host) return names(jump.host) && !names(target.host);
  return jump.port !== target.port && names(jump.host, jump.port ?? 22);
}
