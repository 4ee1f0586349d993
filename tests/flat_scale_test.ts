// Flat mode at scale (issue 23, part 1) on the loopback rig: the cap on
// live ControlMasters, `fiwi close` ending every master, a replaced master
// whose process is ended, the open-file limit checked before a large
// fan-out, and handshakes paced under an sshd with a small MaxStartups.
// Masters are counted by their title, `ssh: <this rig's dir>/cm/… [mux]`,
// and by their socket files: both unique to this run. No timing is
// asserted; every wait is bounded.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { runAll, SshNode } from "../mod.ts";
import { controlPool } from "../src/connection/pool.ts";
import {
  type LoopbackRig,
  skipReasonFor,
  SSHD,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { type Finished, fiwi, fiwiArgv } from "./_cli_harness.ts";
import { run } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

const ignore = skipReasonFor(
  "flat scale tests",
  "node-is-local",
  "harness-keys",
  "sshd-control",
) !== null;

/** An sshd of a test's own on 127.0.0.1, on the rig's keys. */
interface ExtraSshd extends AsyncDisposable {
  /** Its ports, one node each. */
  ports: number[];
}

/**
 * Start an sshd on `count` free ports of 127.0.0.1 (sshd listens on at
 * most 16 sockets), so a test has that many distinct masters without more
 * addresses (which the test permissions do not allow connecting to), with
 * `MaxStartups` as given (default: the rig's).
 */
async function startExtraSshd(
  rig: LoopbackRig,
  count: number,
  maxStartups = "200",
): Promise<ExtraSshd> {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  const tag = ports[0];
  const config = `${rig.dir}/sshd_extra_${tag}`;
  await Deno.writeTextFile(
    config,
    [
      ...ports.map((p) => `Port ${p}`),
      "ListenAddress 127.0.0.1",
      `HostKey ${rig.dir}/host_ed25519`,
      `PidFile ${rig.dir}/sshd_extra_${tag}.pid`,
      `AuthorizedKeysFile ${rig.dir}/authorized_keys`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      `MaxStartups ${maxStartups}`,
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const sshd = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", config, "-E", `${rig.dir}/sshd_extra_${tag}.log`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      sshd.kill("SIGTERM");
    } catch { /* gone */ }
    await sshd.status;
  };
  try {
    await within(10_000, listening(ports), "the extra sshd");
  } catch (e) {
    await stop();
    throw e;
  }
  return { ports, [Symbol.asyncDispose]: stop };
}

/** Resolves once 127.0.0.1 accepts on every one of `ports`. */
async function listening(ports: number[]): Promise<void> {
  for (;;) {
    const ok = await Promise.all(ports.map(async (port) => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }));
    if (ok.every((x) => x)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pids of this rig's masters, by their title. */
async function masterPids(rig: LoopbackRig): Promise<number[]> {
  const ps = await run("ps", [
    "-A",
    "-o",
    "pid=",
    "-o",
    "stat=",
    "-o",
    "args=",
  ]);
  const pids: number[] = [];
  for (const line of ps.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && !m[2].startsWith("Z") && m[3].startsWith(`ssh: ${rig.dir}/cm/`)) {
      pids.push(Number(m[1]));
    }
  }
  return pids;
}

/** Socket files in this rig's control directory. */
async function sockets(rig: LoopbackRig): Promise<number> {
  let n = 0;
  try {
    for await (const _ of Deno.readDir(`${rig.dir}/cm`)) n++;
  } catch { /* not made yet */ }
  return n;
}

/** Samples masters (by pid and by socket) until stopped; resolves the peaks. */
function sampleMasters(rig: LoopbackRig) {
  let stop = false;
  const peaks = { pids: 0, sockets: 0 };
  const done = (async () => {
    while (!stop) {
      peaks.pids = Math.max(peaks.pids, (await masterPids(rig)).length);
      peaks.sockets = Math.max(peaks.sockets, await sockets(rig));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return async () => {
    stop = true;
    await done;
    return peaks;
  };
}

/** A rig file naming one node per port, n1…nN, with `extra` rig keys. */
async function rigFile(
  rig: LoopbackRig,
  ports: number[],
  extra = "",
): Promise<string> {
  const file = `${rig.dir}/rigs_${ports.length}_${extra.length}.yaml`;
  await Deno.writeTextFile(
    file,
    `defaults: { user: ${rig.user}, sshConfig: ${rig.sshConfig}, hostKeyCheck: "off" }
rigs:
  loop:
${extra}    nodes:
${
      ports.map((p, i) => `      n${i + 1}: { host: 127.0.0.1, port: ${p} }`)
        .join("\n")
    }
`,
  );
  return file;
}

Deno.test({
  name: "flat mode: masters capped, closed, replaced without orphans",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  await using extra = await startExtraSshd(rig, 8);
  const ports = extra.ports;
  const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
  const cwd = rig.dir;
  const ok = (r: Finished, nodes: number) => {
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      r.stdout.split("\n").filter((l) => l.endsWith(": ok")).length,
      nodes,
      r.stdout + r.stderr,
    );
  };

  await t.step(
    "maxMasters 3 in the rig file: 8 nodes at fan-out 8 never have more than 3 live masters, and every run is ok",
    async () => {
      const file = await rigFile(rig, ports, "    maxMasters: 3\n");
      const peaks = sampleMasters(rig);
      const r = await fiwi(
        ["run", "--rig", file, "--no-log", "--no-db", "-f", "8", "echo ok"],
        { cwd, env },
      );
      const peak = await peaks();
      ok(r, 8);
      assert(peak.pids <= 3, `${peak.pids} masters ran at once`);
      assert(peak.sockets <= 3, `${peak.sockets} sockets at once`);
      assertEquals((await masterPids(rig)).length, 3);
    },
  );

  await t.step(
    "fiwi close --json stops every master, reports each with its pid, and their processes end",
    async () => {
      const before = (await masterPids(rig)).sort((a, b) => a - b);
      const file = await rigFile(rig, ports);
      const r = await fiwi(["close", "--rig", file, "--no-log", "--json"], {
        cwd,
        env,
      });
      assertEquals(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
      const closed = lines.filter((l) => l.state === "closed");
      assertEquals(
        closed.map((l) => l.pid).sort((a: number, b: number) => a - b),
        before,
      );
      assertEquals(lines.at(-1), {
        summary: { closed: 3, none: 5, skipped: 0 },
      });
      assertEquals(
        await settlesToZero(async () => (await masterPids(rig)).length),
        0,
      );
      assertEquals(await sockets(rig), 0);
    },
  );

  await t.step(
    "--max-masters 2 overrides the rig file's cap",
    async () => {
      const file = await rigFile(rig, ports, "    maxMasters: 3\n");
      const peaks = sampleMasters(rig);
      const r = await fiwi(
        [
          "run",
          "--rig",
          file,
          "--no-log",
          "--no-db",
          "--max-masters",
          "2",
          "-f",
          "8",
          "echo ok",
        ],
        { cwd, env },
      );
      const peak = await peaks();
      ok(r, 8);
      assert(peak.pids <= 2, `${peak.pids} masters ran at once`);
      const closed = await fiwi(["close", "--rig", file, "--no-log"], {
        cwd,
        env,
      });
      assertMatch(closed.stderr, /^Closed 2 ControlMasters: /);
      assertEquals(
        await settlesToZero(async () => (await masterPids(rig)).length),
        0,
      );
    },
  );

  await t.step(
    "a master whose socket went stale while it ran is ended when the pool replaces it",
    async () => {
      await using node = rig.node({ silent: true, index: 1 });
      const warm = await node.rexec("true", { retry: false });
      assertEquals(warm.code, 0, warm.stderr);
      const socket = (await controlPool.socketPath(node))!;
      const [pid] = await masterPids(rig);
      assert(pid, "no master");
      // What ssh leaves when it steps over a socket: the master runs on,
      // and a file nobody listens on holds its path.
      await Deno.remove(socket);
      const dead = await run("python3", [
        "-c",
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
        socket,
      ]);
      assertEquals(dead.code, 0, dead.stderr);
      const status = await controlPool.repair(node);
      assertEquals(status?.state, "stale");
      assertEquals(
        await settlesToZero(async () => (await masterPids(rig)).length),
        0,
      );
      const r = await node.rexec("echo fresh", { retry: false });
      assertEquals([r.success, r.stdout], [true, "fresh\n"], r.stderr);
    },
  );
});

Deno.test({
  name:
    "flat mode: a fan-out the open-file limit cannot carry is refused in one line, exit 2",
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_fd_" });
  try {
    const nodes = Array.from(
      { length: 64 },
      (_, i) => `      l${i + 1}: { host: localhost, transport: local }`,
    );
    await Deno.writeTextFile(
      `${dir}/rigs.yaml`,
      `rigs:\n  loc:\n    nodes:\n${nodes.join("\n")}\n`,
    );
    const argv = fiwiArgv({ kind: "run" }, [
      "run",
      "--rig",
      `${dir}/rigs.yaml`,
      "--no-log",
      "--no-db",
      "-f",
      "64",
      "true",
    ]);
    const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`);
    const r = await run("sh", ["-c", `ulimit -n 64; exec ${quoted.join(" ")}`]);
    assertEquals(r.code, 2, r.stderr);
    assertEquals(r.stdout, "");
    assertMatch(
      r.stderr,
      /^run: Fan-out 64 needs about (\d+) open files, the limit is 64: raise it with "ulimit -n \1" or lower the fan-out \(-f\) to \d+\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "flat mode: a burst at fan-out 16 against one sshd with MaxStartups 10:30:100 finishes without a failure",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  // An sshd of its own with sshd's default MaxStartups: every handshake of
  // the burst goes to it.
  await using sshd = await startExtraSshd(rig, 16, "10:30:100");
  const nodes = sshd.ports.map((port, i) =>
    new SshNode({
      name: `s${i + 1}`,
      host: "127.0.0.1",
      port,
      user: rig.user,
      sshConfig: rig.sshConfig,
      hostKeyCheck: "off",
      controlDir: `${rig.dir}/cm`,
      silent: true,
    })
  );
  try {
    const results = await runAll(nodes, "echo ok", {
      concurrency: 16,
      retry: false,
    });
    assertEquals(
      results.filter((r) => !r.success).map((r) =>
        `${r.node}: ${r.error?.message ?? r.stderr}`
      ),
      [],
    );
    assertEquals(results.map((r) => r.stdout), nodes.map(() => "ok\n"));
  } finally {
    await controlPool.closeAll();
  }
});
