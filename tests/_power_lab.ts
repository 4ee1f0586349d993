/**
 * A power lab on the loopback rig: the power-tool stand-ins of
 * tests/fixtures/power copied where the node user can run them and keep
 * their state, a hook that logs every switch with a timestamp, and
 * optionally a DUT whose "power" is its own sshd: the hook starts that sshd
 * when the DUT's port is switched on and kills it (with every connection)
 * when it is switched off.
 *
 * @module
 */

import type { SshNode } from "../mod.ts";
import { type LoopbackRig, NODE_USER, SSHD } from "./_loopback.ts";

const FIXTURES = new URL("./fixtures/power/", import.meta.url).pathname;
/** The stand-ins, by tool name. */
export const TOOLS = ["uhubctl", "ykushcmd", "usbrelay", "sispmctl"] as const;

/** One logged switch. */
export interface HookEvent {
  tool: string;
  id: string;
  port: number;
  state: "on" | "off";
  /** Wall clock in ms. */
  at: number;
}

/** The switch that powers the DUT. */
export interface DutSwitch {
  tool: (typeof TOOLS)[number];
  id: string;
  port: number;
}

/** A running power lab. */
export interface PowerLab extends AsyncDisposable {
  /** Directory of the stand-ins (writable by the node user). */
  dir: string;
  /** Path of a stand-in, for `command:`. */
  tool(name: (typeof TOOLS)[number]): string;
  /** Replace a stand-in's state: lines of "ID PORT on|off". */
  setState(name: (typeof TOOLS)[number], lines: string[]): Promise<void>;
  /** A stand-in's state as "ID PORT" to on/off. */
  state(name: (typeof TOOLS)[number]): Promise<Record<string, string>>;
  /** Every switch so far, in order. */
  events(): Promise<HookEvent[]>;
  /** The DUT's sshd port (0 without a DUT). */
  dutPort: number;
  /** A node for the DUT (throws without a DUT). */
  dut(options?: { name?: string; connectTimeout?: number }): SshNode;
  /** Whether the DUT's sshd runs. */
  dutRunning(): Promise<boolean>;
}

const HOOK = `#!/bin/sh
here=$(dirname "$0")
tool=$(basename "$0" .hook)
echo "$tool $1 $2 $3 $(date +%s%N)" >>"$here/hook.log"
killtree() {
  for c in $(ps -o pid= --ppid "$1"); do killtree "$c"; done
  kill -KILL "$1" 2>/dev/null
}
[ -f "$here/dut/switch" ] || exit 0
[ "$tool $1 $2" = "$(cat "$here/dut/switch")" ] || exit 0
case "$3" in
off) if [ -f "$here/dut/pid" ]; then killtree "$(cat "$here/dut/pid")"; rm -f "$here/dut/pid"; fi ;;
on) [ -f "$here/dut/pid" ] || ${SSHD} -f "$here/dut/sshd_config" -E "$here/dut/sshd.log" ;;
esac
`;

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function writeDut(rig: LoopbackRig, dir: string, sw: DutSwitch) {
  const port = freePort();
  await Deno.mkdir(`${dir}/dut`);
  await Deno.copyFile(`${rig.dir}/host_ed25519`, `${dir}/dut/host_key`);
  await Deno.chmod(`${dir}/dut/host_key`, 0o600);
  await Deno.writeTextFile(
    `${dir}/dut/switch`,
    `${sw.tool} ${sw.id} ${sw.port}`,
  );
  await Deno.writeTextFile(
    `${dir}/dut/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/dut/host_key`,
      `PidFile ${dir}/dut/pid`,
      `AuthorizedKeysFile ${rig.dir}/authorized_keys`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PrintMotd no",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const hostPub = (await Deno.readTextFile(`${rig.dir}/host_ed25519.pub`))
    .trim().split(" ").slice(0, 2).join(" ");
  await Deno.writeTextFile(
    `${rig.dir}/known_hosts`,
    `[127.0.0.1]:${port} ${hostPub}\n`,
    { append: true },
  );
  return port;
}

/** Pids of `root` and every live descendant of it. */
async function tree(root: number): Promise<number[]> {
  const ps = await run("ps", ["-A", "-o", "pid=,ppid="]);
  const kids = new Map<number, number[]>();
  for (const line of ps.split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid) kids.set(ppid, [...(kids.get(ppid) ?? []), pid]);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}

async function stopDut(dir: string): Promise<void> {
  const pid = Number(await Deno.readTextFile(`${dir}/dut/pid`).catch(() => ""));
  if (!pid) return;
  for (const p of await tree(pid)) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** Set up the stand-ins (and a DUT when `dut` is given) on `rig`. */
export async function startPowerLab(
  rig: LoopbackRig,
  options: { dut?: DutSwitch } = {},
): Promise<PowerLab> {
  const dir = `${rig.dir}/power`;
  await Deno.mkdir(dir);
  for (const tool of TOOLS) {
    await Deno.copyFile(`${FIXTURES}${tool}`, `${dir}/${tool}`);
    await Deno.chmod(`${dir}/${tool}`, 0o755);
    await Deno.writeTextFile(`${dir}/${tool}.hook`, HOOK, { mode: 0o755 });
    await Deno.chmod(`${dir}/${tool}.hook`, 0o755);
    await Deno.writeTextFile(`${dir}/${tool}.state`, "");
  }
  await Deno.copyFile(`${FIXTURES}_state.sh`, `${dir}/_state.sh`);
  await Deno.writeTextFile(`${dir}/hook.log`, "");
  const dutPort = options.dut ? await writeDut(rig, dir, options.dut) : 0;
  if (Deno.uid() === 0) await run("chown", ["-R", `${NODE_USER}:`, dir]);
  const own = async (path: string) => {
    if (Deno.uid() === 0) await run("chown", [`${NODE_USER}:`, path]);
  };
  return {
    dir,
    dutPort,
    tool: (name) => `${dir}/${name}`,
    async setState(name, lines) {
      await Deno.writeTextFile(`${dir}/${name}.state`, lines.join("\n") + "\n");
      await own(`${dir}/${name}.state`);
    },
    async state(name) {
      const text = await Deno.readTextFile(`${dir}/${name}.state`);
      const out: Record<string, string> = {};
      for (const line of text.split("\n").filter((l) => l)) {
        const [id, port, state] = line.split(" ");
        out[`${id} ${port}`] = state;
      }
      return out;
    },
    async events() {
      const text = await Deno.readTextFile(`${dir}/hook.log`);
      return text.split("\n").filter((l) => l).map((l) => {
        const [tool, id, port, state, ns] = l.split(" ");
        return {
          tool,
          id,
          port: Number(port),
          state: state as "on" | "off",
          at: Number(BigInt(ns) / 1_000_000n),
        };
      });
    },
    dut(o = {}) {
      if (!dutPort) throw new Error("This lab has no DUT");
      return rig.node({
        name: o.name ?? "dut",
        port: dutPort,
        connectTimeout: o.connectTimeout ?? 5000,
      });
    },
    async dutRunning() {
      const pid = Number(
        await Deno.readTextFile(`${dir}/dut/pid`).catch(() => ""),
      );
      if (!pid) return false;
      try {
        Deno.kill(pid, "SIGCONT");
        return true;
      } catch {
        return false;
      }
    },
    async [Symbol.asyncDispose]() {
      if (dutPort) await stopDut(dir);
    },
  };
}
