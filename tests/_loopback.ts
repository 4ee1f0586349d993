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
 * real node instead (`FIWI_REMOTE_USER`, `FIWI_SSH_CONFIG` optional).
 *
 * @module
 */

import { SshNode, type SshNodeOptions } from "../mod.ts";

/** Path of the sshd binary the rig uses. */
export const SSHD = "/usr/sbin/sshd";
/** Name of the unprivileged node account the rig creates when run as root. */
export const NODE_USER = "fiwitest";
const NODE_HOME = `/var/lib/${NODE_USER}`;

function envGet(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/** True when these tests run against a live rig (`deno task test:live`). */
export const LIVE = envGet("FIWI_LIVE") === "1" && !!envGet("FIWI_REMOTE_IP");

/** Why integration tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  if (LIVE) return null;
  try {
    Deno.statSync(SSHD);
    return null;
  } catch {
    return `no sshd at ${SSHD} (apt-get install openssh-server)`;
  }
}

/** A running loopback (or live) rig. */
export interface LoopbackRig extends AsyncDisposable {
  /** Temp dir with keys, configs and sockets. */
  dir: string;
  /** Port sshd listens on. */
  port: number;
  /**
   * Node addresses: `hosts[0]` and `hosts[1]`, then any `extraHosts`
   * (127.0.0.3 onwards).
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
  /** A ready node on `hosts[index]`; options override the rig's. */
  node(options?: Partial<SshNodeOptions> & { index?: number }): SshNode;
  /** Run a shell command on the node as the node user, outside fiwi. */
  sh(cmd: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stop sshd (sessions too); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  /** Start sshd again after `stop()`. */
  start(): Promise<void>;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function accepts(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Pids of every live descendant of `root`. */
async function descendants(root: number): Promise<number[]> {
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

async function ensureNodeUser(): Promise<void> {
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

function liveRig(): LoopbackRig {
  const host = envGet("FIWI_REMOTE_IP")!;
  const user = envGet("FIWI_REMOTE_USER") ?? "root";
  const sshConfig = envGet("FIWI_SSH_CONFIG") ?? "";
  const rig: LoopbackRig = {
    dir: "",
    port: 22,
    hosts: [host, host],
    user,
    sshConfig,
    identityFile: "",
    relayReady: false,
    node(options = {}) {
      const { index: _index, ...rest } = options;
      return new SshNode({
        name: "live",
        host,
        user,
        ...(sshConfig ? { sshConfig } : {}),
        ...rest,
      });
    },
    async sh(cmd) {
      return await run("ssh", [
        ...(sshConfig ? ["-F", sshConfig] : []),
        "-o",
        "BatchMode=yes",
        "--",
        `${user}@${host}`,
        cmd,
      ]);
    },
    async stop() {},
    async start() {},
    async [Symbol.asyncDispose]() {},
  };
  return rig;
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
  if (LIVE) return liveRig();
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
      [
        `Port ${port}`,
        ...group.map((h) => `ListenAddress ${h}`),
        `HostKey ${hostKey}`,
        `PidFile ${pidFile}`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
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
      await Deno.writeTextFile(
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
      await must("chown", ["-R", `${NODE_USER}:`, ssh]);
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
        run("ssh", [
          "-F",
          `${dir}/ssh_config`,
          "-o",
          "BatchMode=yes",
          "-p",
          String(port),
          "--",
          `${user}@${hosts[0]}`,
          cmd,
        ]),
      stop: stopSshd,
      start: startSshd,
      async [Symbol.asyncDispose]() {
        // Masters first, so no client waits on a dying server.
        await run("sh", [
          "-c",
          `for s in "${dir}"/cm/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit x 2>/dev/null; done; true`,
        ]);
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

// "[s]leep 300" matches "sleep 300" but not the probe's own command line.
function selfProof(text: string): string {
  return `[${text[0]}]${text.slice(1)}`;
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

/** Count local processes whose command line contains `text` (plain text). */
export async function countLocal(text: string): Promise<number> {
  const r = await run("pgrep", ["-f", "-c", selfProof(text)]);
  return Number(r.stdout.trim() || "0");
}
