/**
 * The loopback rig: a real OpenSSH server for integration tests.
 *
 * {@linkcode startLoopbackRig} generates host and client keys in a temp dir,
 * writes an sshd config, starts `sshd -D -f <config>` listening on
 * 127.0.0.1 and 127.0.0.2 (two "nodes"; either can be the other's relay) on a
 * free port, waits until both accept connections, and hands out ready
 * {@linkcode SshNode}s. Disposing it (`await using`) stops sshd and every
 * session it spawned and removes the temp dir, also when a test fails.
 *
 * With `FIWI_LIVE=1` and `FIWI_REMOTE_IP` set, the same tests run against a
 * real node instead (`FIWI_REMOTE_USER`, default root; `FIWI_REMOTE_PORT`,
 * default what the ssh config says; `FIWI_SSH_CONFIG`; `FIWI_REMOTE_IP2`
 * for a second node). Nothing is installed there; a case that needs what
 * only this harness has declares it ({@linkcode skipHere}) and is skipped
 * with the reason. `tests/live_sshd.sh` starts a stand-in live node.
 *
 * @module
 */

import { SshNode, type SshNodeOptions } from "../mod.ts";
import { envGet, LIVE, liveRig, SSHD, sshdMissing } from "./_live_rig.ts";
import { closeMasters, must, plainSsh, run, selfProof } from "./_sh.ts";

export {
  CI,
  type HarnessNeed,
  LIVE,
  missing,
  skipHere,
  skipReason,
  skipReasonFor,
  SSHD,
} from "./_live_rig.ts";
export {
  countCarrying,
  countExact,
  countLocal,
  marker,
  within,
} from "./_sh.ts";

/** Name of the unprivileged node account the rig creates when run as root. */
export const NODE_USER = "fiwitest";
/** The node user's home (its keys and ssh config live in `.ssh`). */
export const NODE_HOME = `/var/lib/${NODE_USER}`;

/**
 * Put `text` in `path`, a file the node account's running ssh clients read
 * (its ~/.ssh/config): never truncated in place, since a gateway's client
 * reading it empty falls back to the default known_hosts and fails with
 * "Host key verification failed."; left alone when it already holds
 * `text`; otherwise a copy owned by the node user is renamed over it.
 */
async function replaceShared(path: string, text: string): Promise<void> {
  if (await Deno.readTextFile(path).catch(() => null) === text) return;
  const temp = `${path}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(temp, text, { mode: 0o644 });
  await must("chown", [`${NODE_USER}:`, temp]);
  await Deno.rename(temp, path);
}

/** A running loopback (or live) rig. */
export interface LoopbackRig extends AsyncDisposable {
  /** A live rig (`FIWI_LIVE=1`): the node is not this machine. */
  live: boolean;
  /**
   * Local temp dir with keys, configs and control sockets (`cm/`). On a
   * live rig it holds only sockets and what tests write; it is not on the
   * node.
   */
  dir: string;
  /**
   * Port sshd listens on; on a live rig `FIWI_REMOTE_PORT`, or undefined
   * when the ssh config decides.
   */
  port: number | undefined;
  /**
   * Node addresses: `hosts[0]` and `hosts[1]`, then any `extraHosts`
   * (127.0.0.3 onwards). A live rig has `FIWI_REMOTE_IP` and, when set,
   * `FIWI_REMOTE_IP2`.
   */
  hosts: string[];
  /** Remote user. */
  user: string;
  /** Client ssh config (-F). */
  sshConfig: string;
  /** Client private key. */
  identityFile: string;
  /** Whether a nested relay through `hosts[0]` to `hosts[1]` is set up. */
  relayReady: boolean;
  /**
   * A ready node named `node<index>` on `hosts[index]` (a live rig with
   * fewer addresses reuses them in turn); options override the rig's.
   */
  node(options?: Partial<SshNodeOptions> & { index?: number }): SshNode;
  /** Run a shell command on the node as the node user, outside fiwi. */
  sh(cmd: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stop sshd (sessions too); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  /** Start sshd again after `stop()`. */
  start(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Whether something accepts TCP connections at `host`:`port`. */
export async function accepts(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Pids of every live descendant of `root` (from `ps`). */
export async function descendants(root: number): Promise<number[]> {
  const ps = await run("ps", ["-A", "-o", "pid=,ppid="]);
  const children = new Map<number, number[]>();
  for (const line of ps.stdout.split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!pid) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

/** What {@linkcode loopbackSshdConfig} needs. */
export interface LoopbackSshdConfig {
  port: number;
  /** Its `ListenAddress` lines (sshd takes at most 16). */
  addresses: readonly string[];
  hostKey: string;
  pidFile: string;
  authorizedKeys: string;
}

/**
 * The sshd_config of a loopback sshd: key logins only, no PAM, no login
 * chatter, and room for the bursts tests and benches make (200 sessions
 * and unauthenticated connections).
 */
export function loopbackSshdConfig(o: LoopbackSshdConfig): string {
  return [
    `Port ${o.port}`,
    ...o.addresses.map((a) => `ListenAddress ${a}`),
    `HostKey ${o.hostKey}`,
    `PidFile ${o.pidFile}`,
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    "StrictModes no",
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    "PermitRootLogin prohibit-password",
    "MaxSessions 200",
    "MaxStartups 200",
    "PrintMotd no",
    "PrintLastLog no",
    "LogLevel ERROR",
    "",
  ].join("\n");
}

/**
 * Create the unprivileged node user (`/bin/sh`, key logins only) if it is
 * missing, and give it its home and `.ssh`. Needs root.
 */
export async function ensureNodeUser(): Promise<void> {
  const id = await run("id", ["-u", NODE_USER]);
  if (id.code !== 0) {
    await must("useradd", [
      "-M",
      "-d",
      NODE_HOME,
      "-s",
      "/bin/sh",
      NODE_USER,
    ]);
  }
  // A locked password ("!") blocks key logins with UsePAM no; "*" does not.
  await must("usermod", [
    "-p",
    "*",
    "-s",
    "/bin/sh",
    "-d",
    NODE_HOME,
    NODE_USER,
  ]);
  await Deno.mkdir(`${NODE_HOME}/.ssh`, { recursive: true, mode: 0o700 });
  await must("chown", ["-R", `${NODE_USER}:`, NODE_HOME]);
}

/** Options of {@linkcode startLoopbackRig}. */
export interface LoopbackRigOptions {
  /**
   * More node addresses beyond the two, 127.0.0.3 onwards (default 0, at
   * most 250): a fan-out of 64 nodes takes `extraHosts: 62`. sshd allows 16
   * `ListenAddress` lines, so every 16 addresses get their own sshd on the
   * same port. Ignored for a live rig.
   */
  extraHosts?: number;
}

/** Start the loopback rig (or describe the live one). */
export async function startLoopbackRig(
  options: LoopbackRigOptions = {},
): Promise<LoopbackRig> {
  if (LIVE) return await liveRig();
  // Reached without sshd only under CI=true (skipReason() skips otherwise).
  const lacking = sshdMissing();
  if (lacking !== null) {
    throw new Error(
      `The loopback rig cannot start: ${lacking}; under CI=true a test that needs sshd fails instead of being skipped`,
    );
  }
  const extraHosts = options.extraHosts ?? 0;
  if (!Number.isInteger(extraHosts) || extraHosts < 0 || extraHosts > 250) {
    throw new RangeError(
      `Invalid extraHosts ${JSON.stringify(extraHosts)}: give 0 to 250`,
    );
  }
  const isRoot = Deno.uid() === 0;
  const user = isRoot ? NODE_USER : (envGet("USER") ?? "root");
  if (isRoot) await ensureNodeUser();
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_" });
  // The node user must reach authorized_keys through it.
  await Deno.chmod(dir, 0o755);
  const hosts = ["127.0.0.1", "127.0.0.2"];
  for (let i = 0; i < extraHosts; i++) hosts.push(`127.0.0.${i + 3}`);
  // One listening sshd per 16 addresses; the first is `sshd`.
  const listenGroups: string[][] = [];
  for (let i = 0; i < hosts.length; i += 16) {
    listenGroups.push(hosts.slice(i, i + 16));
  }
  let sshd: Deno.ChildProcess | null = null;
  let moreSshd: Deno.ChildProcess[] = [];
  let stopped = true;
  try {
    const hostKey = `${dir}/host_ed25519`;
    const clientKey = `${dir}/id_ed25519`;
    await must("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "fiwi-host",
      "-f",
      hostKey,
    ]);
    await must("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "fiwi-client",
      "-f",
      clientKey,
    ]);
    const clientPub = await Deno.readTextFile(`${clientKey}.pub`);
    const hostPub = (await Deno.readTextFile(`${hostKey}.pub`)).trim().split(
      " ",
    ).slice(0, 2)
      .join(" ");
    await Deno.writeTextFile(`${dir}/authorized_keys`, clientPub, {
      mode: 0o644,
    });
    await Deno.chmod(`${dir}/authorized_keys`, 0o644);
    const port = freePort();
    const knownHosts = hosts.map((h) => `[${h}]:${port} ${hostPub}\n`).join("");
    await Deno.writeTextFile(`${dir}/known_hosts`, knownHosts);
    const clientConfig = [
      "Host *",
      `  UserKnownHostsFile ${dir}/known_hosts`,
      "  StrictHostKeyChecking yes",
      `  IdentityFile ${clientKey}`,
      "  IdentitiesOnly yes",
      "",
    ].join("\n");
    await Deno.writeTextFile(`${dir}/ssh_config`, clientConfig);
    const sshdConfig = (group: string[], pidFile: string) =>
      loopbackSshdConfig({
        port,
        addresses: group,
        hostKey,
        pidFile,
        authorizedKeys: `${dir}/authorized_keys`,
      });
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      sshdConfig(listenGroups[0], `${dir}/sshd.pid`),
    );
    for (let i = 1; i < listenGroups.length; i++) {
      await Deno.writeTextFile(
        `${dir}/sshd_config.${i}`,
        sshdConfig(listenGroups[i], `${dir}/sshd.${i}.pid`),
      );
    }

    let relayReady = false;
    if (isRoot) {
      // The relay's own ssh (the inner hop) runs as the node user: give it
      // its key and known hosts the way a real relay has them.
      const ssh = `${NODE_HOME}/.ssh`;
      // Per port, so rigs running at once do not overwrite each other's.
      await Deno.copyFile(clientKey, `${ssh}/fiwi_id_${port}`);
      await Deno.chmod(`${ssh}/fiwi_id_${port}`, 0o600);
      await Deno.writeTextFile(`${ssh}/fiwi_known_${port}`, knownHosts);
      await must("chown", ["-R", `${NODE_USER}:`, ssh]);
      await replaceShared(
        `${ssh}/config`,
        [
          "Host *",
          "  StrictHostKeyChecking yes",
          "  IdentitiesOnly yes",
          "  IdentityFile ~/.ssh/fiwi_id_%p",
          "  UserKnownHostsFile ~/.ssh/fiwi_known_%p",
          "",
        ].join("\n"),
      );
      relayReady = true;
    }
    await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});

    const startSshd = async () => {
      const errLog = await Deno.open(`${dir}/sshd.log`, {
        create: true,
        append: true,
      });
      errLog.close();
      const spawnSshd = (config: string) =>
        new Deno.Command(SSHD, {
          args: ["-D", "-e", "-f", config, "-E", `${dir}/sshd.log`],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
      sshd = spawnSshd(`${dir}/sshd_config`);
      moreSshd = listenGroups.slice(1).map((_, i) =>
        spawnSshd(`${dir}/sshd_config.${i + 1}`)
      );
      stopped = false;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const ok = await Promise.all(hosts.map((h) => accepts(h, port)));
        if (ok.every((x) => x)) return;
        const exited = await Promise.race([
          ...[sshd, ...moreSshd].map((d) => d.status.then(() => true)),
          new Promise<false>((r) => setTimeout(() => r(false), 50)),
        ]);
        if (exited) break;
      }
      const log = await Deno.readTextFile(`${dir}/sshd.log`).catch(() => "");
      await stopSshd();
      throw new Error(`sshd did not start on port ${port}: ${log.trim()}`);
    };

    const stopSshd = async () => {
      if (stopped || !sshd) return;
      stopped = true;
      // Connection handlers and their sessions outlive the listener: end
      // every descendant of this sshd (and only this one: other rigs may
      // share the node user), then sshd itself.
      for (const daemon of [sshd, ...moreSshd]) {
        const doomed = await descendants(daemon.pid);
        for (const pid of doomed) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* already gone */ }
        }
        try {
          daemon.kill("SIGTERM");
        } catch { /* gone */ }
        await daemon.status;
      }
    };

    await startSshd();
    const rig: LoopbackRig = {
      live: false,
      dir,
      port,
      hosts,
      user,
      sshConfig: `${dir}/ssh_config`,
      identityFile: clientKey,
      relayReady,
      node(options = {}) {
        const { index = 0, ...rest } = options;
        return new SshNode({
          name: `node${index}`,
          host: hosts[index],
          port,
          user,
          sshConfig: `${dir}/ssh_config`,
          controlDir: `${dir}/cm`,
          ...rest,
        });
      },
      sh: (cmd) =>
        run(
          "ssh",
          plainSsh(
            { user, port, sshConfig: `${dir}/ssh_config` },
            hosts[0],
            cmd,
          ),
        ),
      stop: stopSshd,
      start: startSshd,
      async [Symbol.asyncDispose]() {
        // Masters first, so no client waits on a dying server.
        await closeMasters(dir);
        await stopSshd();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        for (const f of [`fiwi_id_${port}`, `fiwi_known_${port}`]) {
          await Deno.remove(`${NODE_HOME}/.ssh/${f}`).catch(() => {});
        }
      },
    };
    return rig;
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * Count live processes of the node user whose full command line contains
 * `text` (plain text, no regex characters), or is exactly `text` when
 * `exact` is set (a wrapper shell whose script mentions it then does not
 * count).
 */
export async function countRemote(
  rig: LoopbackRig,
  text: string,
  exact = false,
): Promise<number> {
  const r = await rig.sh(
    `pgrep ${exact ? "-x " : ""}-f -c -u "$(id -u)" '${
      selfProof(text)
    }' || true`,
  );
  return Number(r.stdout.trim() || "0");
}

/**
 * A rig file for `rig`: rig "loop" with n1 on the first address and n2 on
 * the second (`nodes: 1` for n1 alone), then `extra` lines under `nodes:`.
 */
export function loopRigYaml(
  rig: LoopbackRig,
  options: { nodes?: 1 | 2; extra?: string } = {},
): string {
  return `defaults:
  user: ${rig.user}
  port: ${rig.port}
  sshConfig: ${rig.sshConfig}
rigs:
  loop:
    nodes:
      n1: ${rig.hosts[0]}
${options.nodes === 1 ? "" : `      n2: ${rig.hosts[1]}\n`}${
    options.extra ?? ""
  }`;
}
