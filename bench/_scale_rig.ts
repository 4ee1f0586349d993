/**
 * The loopback rig of the scale benchmark: up to thousands of node
 * addresses on 127.1.0.0/16 and a few gateway addresses on 127.2.0.0/24,
 * one OpenSSH server per 16 addresses (sshd's `ListenAddress` limit), all on
 * one port. It follows `tests/_loopback.ts` (same node user, same sshd
 * settings) without its 250-address limit.
 *
 * Keys: the controller (this user) has its own key, readable only by it;
 * the gateway user has a key pair of its own in its `~/.ssh`, generated
 * there and authorized on the nodes: a gateway reaches the nodes the way a
 * real jump host does, and no private key is copied anywhere. One client
 * config (`ssh_config`) serves both, picking the key by local user, so a
 * tool that hands its ssh options to its gateways (clush) works unchanged.
 *
 * Every sshd logs its errors to its own file.
 *
 * @module
 */

import {
  accepts,
  descendants,
  ensureNodeUser,
  loopbackSshdConfig,
  NODE_HOME,
  NODE_USER,
  SSHD,
} from "../tests/_loopback.ts";
import { must } from "../tests/_sh.ts";

/** sshd accepts at most 16 `ListenAddress` lines. */
const PER_SSHD = 16;

/** The address of node `i` (0-based): 127.1.a.b, b in 1..250. */
export function nodeAddress(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** The address of gateway `i` (0-based). */
export function gatewayAddress(i: number): string {
  return `127.2.0.${i + 1}`;
}

/** The gateway (0-based) in front of node `i` of `nodes`: even blocks. */
export function gatewayOf(i: number, nodes: number, gateways: number): number {
  return Math.floor(i * gateways / nodes);
}

/** A started scale rig. */
export interface ScaleRig extends AsyncDisposable {
  /** Temp dir of keys, configs, logs and scratch files (0755). */
  dir: string;
  /** The port every sshd listens on. */
  port: number;
  /** Node addresses, in node order. */
  nodes: string[];
  /** Gateway addresses. */
  gateways: string[];
  /** The login user on nodes and gateways. */
  user: string;
  /** The client ssh config (-F) of the controller and the gateways. */
  sshConfig: string;
  /** sshd log files: one per node sshd, then the gateways' last. */
  logs: { nodes: string[]; gateway: string };
  /** Pids of the listening sshds: the nodes', the gateways' (0: none). */
  daemons: { nodes: number[]; gateway: number };
  /** A dir the node user may write to (for pushes), inside `dir`. */
  dropDir: string;
}

/** Options of {@linkcode startScaleRig}. */
export interface ScaleRigOptions {
  /** Node addresses (1 to 64,000). */
  nodes: number;
  /** Gateway addresses (0 to 16). */
  gateways: number;
}

/**
 * The node user's `~/.ssh/config` as `tests/_loopback.ts` writes it (key
 * and known hosts by port), written only when missing: a gateway program
 * that runs plain `ssh` then finds this rig's gateway key too.
 */
async function ensureHarnessConfig(): Promise<void> {
  const path = `${NODE_HOME}/.ssh/config`;
  if (await Deno.stat(path).then(() => true, () => false)) return;
  await Deno.writeTextFile(
    path,
    [
      "Host *",
      "  StrictHostKeyChecking yes",
      "  IdentitiesOnly yes",
      "  IdentityFile ~/.ssh/fiwi_id_%p",
      "  UserKnownHostsFile ~/.ssh/fiwi_known_%p",
      "",
    ].join("\n"),
  );
  await must("chown", [`${NODE_USER}:`, path]);
}

/** Generate an ed25519 key pair at `path`; its public line. */
async function keygen(path: string, comment: string): Promise<string> {
  await must("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    comment,
    "-f",
    path,
  ]);
  return (await Deno.readTextFile(`${path}.pub`)).trim();
}

/**
 * The client config: host keys pinned, batch mode, and the key by local
 * user (the controller's for this user, the gateway's for the node user).
 */
function clientConfig(
  dir: string,
  port: number,
  gatewayKey: string | null,
): string {
  const lines = [
    "Host *",
    `  Port ${port}`,
    `  UserKnownHostsFile ${dir}/known_hosts`,
    "  StrictHostKeyChecking yes",
    "  IdentitiesOnly yes",
    "  BatchMode yes",
  ];
  if (gatewayKey === null) {
    lines.push(`  IdentityFile ${dir}/id_ed25519`);
  } else {
    lines.push(
      `Match localuser ${NODE_USER}`,
      `  IdentityFile ${gatewayKey}`,
      `Match !localuser ${NODE_USER}`,
      `  IdentityFile ${dir}/id_ed25519`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Stop `daemons`: their connection handlers (SIGKILL), then them. */
async function stopDaemons(daemons: Deno.ChildProcess[]): Promise<void> {
  for (const daemon of daemons) {
    for (const pid of await descendants(daemon.pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
    try {
      daemon.kill("SIGTERM");
    } catch { /* gone */ }
  }
  await Promise.all(daemons.map((d) => d.status));
}

/**
 * Start the rig: keys, configs, one sshd per 16 addresses; resolves once
 * every address accepts connections (bounded). Disposing it stops every
 * sshd with its sessions and removes the temp dir and the gateway key.
 */
export async function startScaleRig(
  options: ScaleRigOptions,
): Promise<ScaleRig> {
  const { nodes: n, gateways: g } = options;
  if (!Number.isInteger(n) || n < 1 || n > 64_000) {
    throw new RangeError(`Invalid nodes ${JSON.stringify(n)}: give 1 to 64000`);
  }
  if (!Number.isInteger(g) || g < 0 || g > 16) {
    throw new RangeError(`Invalid gateways ${JSON.stringify(g)}: give 0 to 16`);
  }
  const isRoot = Deno.uid() === 0;
  const user = isRoot ? NODE_USER : (Deno.env.get("USER") ?? "root");
  if (isRoot) await ensureNodeUser();
  // Held for the rig's life: no other loopback rig picks this port (they
  // probe 127.0.0.1, which our servers do not listen on).
  const hold = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (hold.addr as Deno.NetAddr).port;
  const dir = await Deno.makeTempDir({ prefix: "fiwi_scale_" });
  const cleanups: (() => Promise<void>)[] = [
    async () => await Deno.remove(dir, { recursive: true }).catch(() => {}),
    () => Promise.resolve(hold.close()),
  ];
  const dispose = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    await Deno.chmod(dir, 0o755);
    const nodes = Array.from({ length: n }, (_, i) => nodeAddress(i));
    const gateways = Array.from({ length: g }, (_, i) => gatewayAddress(i));
    const hostPub = (await keygen(`${dir}/host_ed25519`, "fiwi-scale-host"))
      .split(" ").slice(0, 2).join(" ");
    const keys = [await keygen(`${dir}/id_ed25519`, "fiwi-scale-controller")];
    let gatewayKey: string | null = null;
    if (isRoot) {
      // The gateway user's own key, made in its ~/.ssh under the name the
      // test harness's ~/.ssh/config gives a rig on this port.
      gatewayKey = `${NODE_HOME}/.ssh/fiwi_id_${port}`;
      const known = `${NODE_HOME}/.ssh/fiwi_known_${port}`;
      cleanups.push(async () => {
        for (const f of [gatewayKey!, `${gatewayKey}.pub`, known]) {
          await Deno.remove(f).catch(() => {});
        }
      });
      keys.push(await keygen(gatewayKey, "fiwi-scale-gateway"));
      await Deno.writeTextFile(
        known,
        [...nodes, ...gateways].map((h) => `[${h}]:${port} ${hostPub}\n`)
          .join(""),
      );
      await must("chown", [
        `${NODE_USER}:`,
        gatewayKey,
        `${gatewayKey}.pub`,
        known,
      ]);
      await ensureHarnessConfig();
    }
    await Deno.writeTextFile(`${dir}/authorized_keys`, keys.join("\n") + "\n");
    await Deno.chmod(`${dir}/authorized_keys`, 0o644);
    await Deno.writeTextFile(
      `${dir}/known_hosts`,
      [...nodes, ...gateways].map((h) => `[${h}]:${port} ${hostPub}\n`).join(
        "",
      ),
    );
    await Deno.writeTextFile(
      `${dir}/ssh_config`,
      clientConfig(dir, port, gatewayKey),
    );
    const dropDir = `${dir}/drop`;
    await Deno.mkdir(dropDir);
    await Deno.chmod(dropDir, 0o1777);
    await Deno.mkdir(`${dir}/gwlog`);
    await Deno.chmod(`${dir}/gwlog`, 0o1777);
    await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});

    const groups: string[][] = [];
    for (let i = 0; i < n; i += PER_SSHD) {
      groups.push(nodes.slice(i, i + PER_SSHD));
    }
    if (g > 0) groups.push(gateways);
    const logs = groups.map((_, i) => `${dir}/sshd.${i}.log`);
    const daemons: Deno.ChildProcess[] = [];
    cleanups.push(() => stopDaemons(daemons));
    for (const [i, group] of groups.entries()) {
      const config = `${dir}/sshd_config.${i}`;
      await Deno.writeTextFile(
        config,
        loopbackSshdConfig({
          port,
          addresses: group,
          hostKey: `${dir}/host_ed25519`,
          pidFile: `${dir}/sshd.${i}.pid`,
          authorizedKeys: `${dir}/authorized_keys`,
        }),
      );
      daemons.push(
        new Deno.Command(SSHD, {
          args: ["-D", "-e", "-f", config, "-E", logs[i]],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    await waitListening([...nodes, ...gateways], port, daemons, logs);
    return {
      dir,
      port,
      nodes,
      gateways,
      user,
      sshConfig: `${dir}/ssh_config`,
      logs: {
        nodes: g > 0 ? logs.slice(0, -1) : logs,
        gateway: g > 0 ? logs.at(-1)! : "",
      },
      daemons: {
        nodes: (g > 0 ? daemons.slice(0, -1) : daemons).map((d) => d.pid),
        gateway: g > 0 ? daemons.at(-1)!.pid : 0,
      },
      dropDir,
      [Symbol.asyncDispose]: dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** Wait (at most 60 s) until every address accepts; throw with the logs. */
async function waitListening(
  addresses: string[],
  port: number,
  daemons: Deno.ChildProcess[],
  logs: string[],
): Promise<void> {
  let exited = false;
  for (const d of daemons) d.status.then(() => exited = true);
  const deadline = Date.now() + 60_000;
  let pending = addresses;
  while (Date.now() < deadline && !exited) {
    const ok: boolean[] = [];
    for (let i = 0; i < pending.length; i += 256) {
      ok.push(
        ...await Promise.all(
          pending.slice(i, i + 256).map((a) => accepts(a, port)),
        ),
      );
    }
    pending = pending.filter((_, i) => !ok[i]);
    if (pending.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const text = (await Promise.all(
    logs.map((l) => Deno.readTextFile(l).catch(() => "")),
  )).join("").trim();
  throw new Error(
    `sshd did not listen on ${pending.length} addresses (first "${
      pending[0]
    }") on port ${port}: ${text.slice(-2000)}`,
  );
}
