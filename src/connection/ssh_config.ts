/**
 * The ssh configuration in effect for a node: `ssh -G` run with the node's
 * own first-hop options (`-F`, `-p`, `-J`, `-o` …), so what it prints is
 * what a run of that node gets: the address, port and user after `HostName`,
 * `Port`, `User` and `Match`, and any `ProxyJump` or `ProxyCommand`. Hints
 * about a failed connection name these when ssh's own message does not.
 *
 * @example
 * ```ts
 * import { effectiveSshConfig, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "n1", host: "10.0.0.5", port: 2222 });
 * const config = await effectiveSshConfig(node.spec);
 * console.log(config?.hostname, config?.port); // "10.0.0.5" 2222
 * ```
 *
 * @module
 */

import { runHelper } from "../process/spawn.ts";
import { configArgv, type TransportSpec } from "../transport/argv.ts";
import {
  type EffectiveSshConfig,
  parseEffectiveSshConfig,
} from "../transport/ssh_config.ts";

export type { EffectiveSshConfig } from "../transport/ssh_config.ts";

/** Options of {@linkcode effectiveSshConfig}. */
export interface EffectiveSshConfigOptions {
  /**
   * ms `ssh -G` may take (default 5000): it reads only local files, but a
   * `Match exec` in the config runs a command.
   */
  timeout?: number;
  /** Stops `ssh -G` early; the result is then null. */
  signal?: AbortSignal;
}

/**
 * Ask ssh what its configuration makes of the node `spec` describes
 * (`ssh … -G -- destination`, through fiwi's one spawn path). Resolves null
 * when the first hop is not the node itself (local and ush transports, a
 * nested relay: ssh's config there is the relay's), or when `ssh -G` fails
 * or does not answer in time. Never rejects for a run-time failure; a
 * missing ssh binary is a `ConfigurationError`.
 *
 * @param spec the node's transport settings (`SshNode.spec`)
 * @param options time limit and abort signal
 * @returns the effective address, port, user and proxy, or null
 */
export async function effectiveSshConfig(
  spec: TransportSpec,
  options: EffectiveSshConfigOptions = {},
): Promise<EffectiveSshConfig | null> {
  const timeout = options.timeout ?? 5000;
  if (!(timeout > 0)) {
    throw new RangeError(
      `Invalid timeout ${JSON.stringify(timeout)}: give milliseconds > 0`,
    );
  }
  if (spec.transport !== "ssh") return null;
  if (spec.relay && spec.relayMode !== "jump") return null;
  // configArgv answers for nodes with a master (it serves the pool's socket
  // lookup); the ControlMaster options it then adds change no address,
  // port, user or proxy.
  const argv = configArgv({ ...spec, controlMaster: true });
  if (!argv || options.signal?.aborted) return null;
  const out = await runHelper(argv, timeout, options.signal);
  if (out.code !== 0 || options.signal?.aborted) return null;
  return parseEffectiveSshConfig(out.stdout);
}
