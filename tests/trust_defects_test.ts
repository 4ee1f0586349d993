// Issue 18 ("Trust"): a host given without user@ logs in as ssh's config
// says (a rig file's defaults.user still wins); a signal stops `fiwi run`
// while it waits on standard input, and a terminal is told it is reading
// it; every power tool call is bounded and a hung tool is killed; and
// ProcessManager.killAll() leaves no log file of its own on the node.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
} from "jsr:@std/assert@^1";
import {
  parseRig,
  ProcessManager,
  Rig,
  SshNode,
  TimeoutError,
} from "../mod.ts";
import { toolTimeout } from "../src/hardware/_power_tools.ts";
import { fiwi, fiwiArgv, startFiwi } from "./_cli_harness.ts";
import {
  countLocal,
  countRemote,
  type LoopbackRig,
  loopRigYaml,
  NODE_USER,
  skipHere,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { run } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

/** Unique to this test run: every process it counts carries it. */
const RUN = crypto.randomUUID().slice(0, 8);
let serial = 0;
/** A `sleep` no other test runs: `sleep 7<4 digits>.<run><n>` (exact match). */
function uniqueSleep(): string {
  serial++;
  const digits = parseInt(RUN.slice(0, 4), 16) % 10_000;
  return `sleep 7${String(digits).padStart(4, "0")}.${
    parseInt(RUN.slice(4), 16) % 1000
  }${serial}`;
}

/** Local processes whose whole command line is `text`. */
async function countLocalExact(text: string): Promise<number> {
  const r = await run("pgrep", ["-x", "-f", "-c", text]);
  return Number(r.stdout.trim() || "0");
}

function rigYaml(rig: LoopbackRig, extra = ""): string {
  return loopRigYaml(rig, { nodes: 1, extra });
}

Deno.test("a host without user@ has no user in argv; SshNode's own default stays root", () => {
  const rig = parseRig(
    "rigs:\n  r:\n    relay: gw.lan\n    nodes:\n      a: 10.0.0.1\n",
  );
  const [bare, named] = rig.select("10.0.0.9,pi@10.0.0.8");
  assertEquals([bare.user, named.user], [null, "pi"]);
  // Nested relay: the relay hop and the inner hop both without user@.
  const argv = bare.argv("true");
  assertEquals(argv.slice(-3, -1), ["--", "gw.lan"]);
  assertMatch(argv.at(-1)!, /^ssh .* -- 10\.0\.0\.9 /);
  assertEquals(named.argv("true").slice(-3, -1), ["--", "pi@gw.lan"]);
  assertMatch(named.argv("true").at(-1)!, / -- pi@10\.0\.0\.8 /);
  // A rig node without user, and the library's SshNode, keep "root".
  assertEquals(rig.nodes[0].argv("true").slice(-3, -1), ["--", "root@gw.lan"]);
  const lib = new SshNode({ name: "x", host: "10.0.0.7" });
  assertEquals(lib.argv("true").slice(-3, -1), ["--", "root@10.0.0.7"]);
  const none = new SshNode({ name: "y", host: "::1", user: null });
  const direct = none.argv("true");
  assertEquals(direct.slice(-3, -1), ["--", "::1"]);
  assert(
    direct.some((a) => a.startsWith("ControlPath=") && a.endsWith("/%C")),
  );
  // A rig file's defaults.user still applies to hosts outside the rig.
  const withUser = parseRig(
    "defaults: { user: admin }\nrigs:\n  r:\n    nodes:\n      a: 10.0.0.1\n",
  );
  assertEquals(withUser.select("10.0.0.9")[0].user, "admin");
});

Deno.test("power: each tool has its own bound, and a shorter --timeout bounds every call", () => {
  const sw = { via: "pi", tool: "uhubctl" as const, id: "1-1", port: 1 };
  const ykush = { via: "pi", tool: "ykushcmd" as const, port: 1 };
  assertEquals(
    [
      toolTimeout(sw),
      toolTimeout(sw, 0),
      toolTimeout(sw, 1000),
      toolTimeout(sw, 600_000),
      toolTimeout(ykush),
      toolTimeout(ykush, 5000),
    ],
    [30_000, 30_000, 1000, 30_000, 15_000, 5000],
  );
});

Deno.test({
  name:
    "fiwi run -w <host> logs in as the ssh config's User; a rig file's defaults.user wins; one master each",
  ignore: Deno.uid() !== 0 ||
    skipHere("user from ssh config", "harness-keys", "node-is-local"),
  async fn() {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_trust_user_" });
    try {
      const cm = `${rig.dir}/cm`;
      const config = `${cwd}/ssh_config`;
      await Deno.writeTextFile(
        config,
        [
          "Host *",
          `  User ${NODE_USER}`,
          `  Port ${rig.port}`,
          `  UserKnownHostsFile ${rig.dir}/known_hosts`,
          "  StrictHostKeyChecking yes",
          `  IdentityFile ${rig.identityFile}`,
          "  IdentitiesOnly yes",
          "",
        ].join("\n"),
      );
      // What plain ssh does with that config.
      const plain = await run("ssh", [
        "-F",
        config,
        "-o",
        "BatchMode=yes",
        rig.hosts[0],
        "id -un",
      ]);
      assertEquals(plain.stdout, `${NODE_USER}\n`, plain.stderr);
      const env = {
        FIWI_SSH_CONFIG: config,
        FIWI_CONTROL_DIR: cm,
        NO_COLOR: "1",
      };
      // No rigs.yaml here: the built-in rig, no user anywhere but ssh's config.
      const adHoc = await fiwi(
        ["run", "--no-log", "-w", rig.hosts[0], "id -un"],
        { cwd, env },
      );
      assertEquals(
        [adHoc.code, adHoc.stdout],
        [0, `${rig.hosts[0]}: ${NODE_USER}\n`],
        adHoc.stderr,
      );
      await Deno.writeTextFile(
        `${cwd}/rigs.yaml`,
        "defaults: { user: root }\nrigs:\n  r:\n    nodes:\n      n: 127.0.0.9\n",
      );
      const ruled = await fiwi(
        ["run", "--no-log", "-w", rig.hosts[0], "id -un"],
        { cwd, env },
      );
      assertEquals(
        [ruled.code, ruled.stdout],
        [0, `${rig.hosts[0]}: root\n`],
        ruled.stderr,
      );
      // %C hashes the user ssh resolved: two logins, two masters.
      const sockets = [];
      for await (const e of Deno.readDir(cm)) sockets.push(e.name);
      assertEquals(sockets.length, 2, `masters: ${sockets}`);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sleep | fiwi run: SIGTERM, SIGHUP and SIGINT stop it while it reads stdin; a terminal says it reads",
  ignore: skipHere("signals while reading stdin", "node-is-local"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_trust_stdin_" });
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, rigYaml(rig));
    try {
      for (
        const [signal, code] of [
          ["SIGTERM", 143],
          ["SIGHUP", 129],
          ["SIGINT", 130],
        ] as const
      ) {
        await t.step(`${signal} exits ${code} at once`, async () => {
          const marker = `trust-stdin-${RUN}-${signal}`;
          const log = `${cwd}/${signal}.log`;
          const [program, ...args] = fiwiArgv({ kind: "run" }, [
            "run",
            "--log",
            log,
            "-w",
            "n1",
            `echo ${marker}`,
          ]);
          // A pipe whose writer never writes nor closes: `sleep N | fiwi run`.
          const child = new Deno.Command(program, {
            args,
            cwd,
            env,
            stdin: "piped",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const writer = child.stdin.getWriter();
          const output = Promise.all([
            new Response(child.stdout).text(),
            new Response(child.stderr).text(),
          ]);
          try {
            // Its signal handlers are up once the start is logged.
            assertEquals(
              await settlesToZero(async () => {
                const text = await Deno.readTextFile(log).catch(() => "");
                return text.includes("Started fiwi run") ? 0 : 1;
              }, 20_000),
              0,
              "fiwi logged its start",
            );
            const t0 = performance.now();
            child.kill(signal);
            const status = await within(
              10_000,
              child.status,
              `fiwi's end after ${signal}`,
            );
            const [stdout, stderr] = await within(10_000, output, "output");
            assertEquals([status.code, stdout], [code, ""], stderr);
            assertEquals(
              stderr,
              `Interrupted by ${signal} while reading standard input: nothing was run\n`,
            );
            assert(performance.now() - t0 < 5000, "it ended promptly");
            assertEquals(await countLocal(marker), 0, "no fiwi, no ssh left");
            assertEquals(await countRemote(rig, marker), 0);
          } finally {
            await writer.close().catch(() => {});
            try {
              child.kill("SIGKILL");
            } catch { /* ended */ }
            await child.status;
            await output.catch(() => {});
          }
        });
      }

      await t.step(
        "on a terminal: the progress line says so; Ctrl-D sends, Ctrl-C stops",
        async () => {
          const sent = startFiwi(
            ["run", "--no-log", "--stdin", "-", "-w", "n1", "cat"],
            { cwd, env, terminal: true, via: { kind: "task" } },
          );
          await sent.waitFor(
            /\[0\/1 done\] reading standard input \(Ctrl-D to end\)…/,
          );
          await sent.type(`hello ${RUN}\n`);
          await sent.type("\x04");
          const r = await sent.done;
          assertEquals(r.code, 0, r.stdout);
          assertMatch(r.stdout, new RegExp(`n1: hello ${RUN}\r\n`));

          const stopped = startFiwi(
            ["run", "--no-log", "--stdin", "-", "-w", "n1", `echo ${RUN}`],
            { cwd, env, terminal: true, via: { kind: "task" } },
          );
          await stopped.waitFor(/reading standard input \(Ctrl-D to end\)…/);
          await stopped.type("\x03");
          const s = await within(10_000, stopped.done, "the end after Ctrl-C");
          assertEquals(s.code, 130, s.stdout);
          assertMatch(
            s.stdout,
            /Interrupted by SIGINT while reading standard input: nothing was run\r\n$/,
          );
          assert(!s.stdout.includes(`n1: ${RUN}`), "nothing ran");
        },
      );
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

/** A tool stand-in that hangs and ignores TERM: only KILL ends it. */
async function hangingTool(dir: string, sleep: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/uhubctl`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\ntrap '' TERM HUP INT\nexec ${sleep}\n`,
  );
  await Deno.chmod(dir, 0o755);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test({
  name:
    "fiwi power --timeout 1s with a hung tool over ssh fails in one line naming it, and kills it",
  ignore: skipHere("power with a hung tool", "node-is-local"),
  async fn() {
    await using rig = await startLoopbackRig();
    const sleep = uniqueSleep();
    const tool = await hangingTool(`${rig.dir}/hang-${RUN}`, sleep);
    const file = `${rig.dir}/power.yaml`;
    await Deno.writeTextFile(
      file,
      rigYaml(
        rig,
        `      dut: { host: ${
          rig.hosts[1]
        }, power: { via: n1, tool: uhubctl, id: "1-1", port: 1, command: ${tool} } }\n`,
      ),
    );
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    const t0 = performance.now();
    const r = await within(
      30_000,
      fiwi(
        [
          "power",
          "off",
          "-w",
          "dut",
          "--timeout",
          "1s",
          "--rig",
          file,
          "--no-log",
        ],
        { cwd: rig.dir, env },
      ),
      "fiwi power's end",
    );
    const took = performance.now() - t0;
    assertEquals(
      [r.code, r.stdout],
      [
        1,
        'dut  FAILED (unknown): Switching off node "dut" with the uhubctl "1-1" port 1 on "n1" failed: uhubctl did not finish within 1s and was stopped\n',
      ],
      r.stderr,
    );
    assertEquals(r.stderr, "0/1 nodes ok\n");
    // Deno's start and the preflight included; without the bound it never ends.
    assert(took < 15_000, `took ${took} ms`);
    assertEquals(
      await settlesToZero(() => countRemote(rig, sleep, true), 10_000),
      0,
      "the hung tool was killed",
    );
    assertEquals(await countLocal(tool), 0, "no client left");
  },
});

Deno.test({
  name:
    "rig.power() with a hung tool on a local via node: a TimeoutError within the bound, nothing left",
  ignore: skipHere("local power with a hung tool", "node-is-local"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fiwi_trust_power_" });
    try {
      const sleep = uniqueSleep();
      const tool = await hangingTool(dir, sleep);
      const via = new SshNode({
        name: "pi",
        host: "localhost",
        transport: "local",
        silent: true,
      });
      const dut = new SshNode({ name: "dut", host: "192.0.2.1" });
      const rig = new Rig("lab", [via, dut], {
        powerSwitches: new Map([["dut", {
          via: "pi",
          tool: "ykushcmd",
          port: 2,
          command: tool,
        }]]),
      });
      const t0 = performance.now();
      const [result] = await within(
        10_000,
        rig.power("dut", "status", { timeout: 1000 }),
        "power's result",
      );
      assert(performance.now() - t0 < 5000, "bounded by the 1 s timeout");
      assertEquals([result.success, result.state], [false, "unknown"]);
      assertInstanceOf(result.error, TimeoutError);
      assertEquals(
        result.error?.message,
        'Reading node "dut" with the ykushcmd port 2 on "pi" failed: ykushcmd did not finish within 1s and was stopped',
      );
      assertEquals(
        await settlesToZero(() => countLocalExact(sleep), 10_000),
        0,
        "the hung tool was killed",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "ProcessManager.killAll() removes the log files it chose, and its directory when empty",
  ignore: skipHere("killAll and logs", "node-is-local"),
  async fn(t) {
    await t.step(
      "over ssh: no <id>.log left; a logFile the caller named stays",
      async () => {
        await using rig = await startLoopbackRig();
        await using node = rig.node({ silent: true });
        await using pm = new ProcessManager();
        const sleeps = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
        const own = `fiwi-trust-${RUN}/own.log`;
        const ids = [
          await pm.start(node, `exec ${sleeps[0]}`),
          await pm.start(node, `exec ${sleeps[1]}`, { role: "server" }),
          await pm.start(node, `exec ${sleeps[2]}`, { logFile: own }),
        ];
        const logs = ids.map((id) => pm.info(id).logFile);
        assertMatch(logs[0], /\/fiwi-proc-\d+\/proc-[0-9a-f]{8}\.log$/);
        const exists = async (path: string) =>
          (await rig.sh(`test -e '${path}'`)).code === 0;
        assertEquals(await Promise.all(logs.map(exists)), [true, true, true]);
        try {
          const stopped = await pm.killAll({
            order: ["server"],
            timeout: 1000,
          });
          assertEquals([...stopped.keys()].sort(), [...ids].sort());
          assertEquals(await Promise.all(logs.map(exists)), [
            false,
            false,
            true,
          ]);
          for (const s of sleeps) {
            assertEquals(await countRemote(rig, s, true), 0, `${s} stopped`);
          }
        } finally {
          await rig.sh(`rm -rf 'fiwi-trust-${RUN}'`);
        }
      },
    );

    await t.step("locally: the metadata directory goes too", async () => {
      const xdg = await Deno.makeTempDir({ prefix: "fiwi_trust_xdg_" });
      const before = Deno.env.get("XDG_RUNTIME_DIR");
      Deno.env.set("XDG_RUNTIME_DIR", xdg);
      try {
        const node = new SshNode({
          name: "here",
          host: "localhost",
          transport: "local",
          silent: true,
        });
        await using pm = new ProcessManager();
        const sleep = uniqueSleep();
        const id = await pm.start(node, `exec ${sleep}`);
        const dir = `${xdg}/fiwi-proc-${Deno.uid()}`;
        assertEquals(pm.info(id).logFile, `${dir}/${id}.log`);
        await Deno.stat(pm.info(id).logFile);
        await pm.killAll({ timeout: 1000 });
        const left = [];
        for await (const e of Deno.readDir(xdg)) left.push(e.name);
        assertEquals(left, [], "nothing of fiwi's left");
        assertEquals(await countLocalExact(sleep), 0);
      } finally {
        if (before === undefined) Deno.env.delete("XDG_RUNTIME_DIR");
        else Deno.env.set("XDG_RUNTIME_DIR", before);
        await Deno.remove(xdg, { recursive: true });
      }
    });
  },
});
