// A command that backgrounds a child (src/transport/wrapper.ts, the end line
// and the verdict in src/process/session.ts): the run ends with the shell's
// own status even while the child holds the output; what still holds it after
// the linger is killed and counted; a child that holds nothing survives; a
// timeout, an abort or a SIGKILLed program leaves nothing of the group, also
// the orphans of a shell that already exited. Real sshd on loopback, with a
// ControlMaster, without one, through a nested relay, and on `local`.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { SshNode, type SshNodeOptions } from "../mod.ts";
import { controlPool } from "../src/connection/pool.ts";
import { eventually, fiwi, startFiwi } from "./_cli_harness.ts";
import {
  countRemote,
  type LoopbackRig,
  skipHere,
  skipReasonFor,
  startLoopbackRig,
} from "./_loopback.ts";
import { run } from "./_sh.ts";
import { killAfterReady, settlesToZero } from "./_wait.ts";

const ignore = skipReasonFor("background child tests", "node-is-local") !==
  null;
const CHILD = new URL("./fixtures/lifeline_child.ts", import.meta.url);

/** A sleep duration no other test (or run of this one) uses: its marker. */
function marker(): string {
  return `7${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`;
}

/**
 * Processes whose whole command line is `sleep <token>`: of the node user,
 * or of this user for the local transport.
 */
async function countSleeps(
  rig: LoopbackRig,
  token: string,
  local = false,
): Promise<number> {
  if (!local) return await countRemote(rig, `sleep ${token}`, true);
  const r = await run("pgrep", [
    "-c",
    "-x",
    "-f",
    "-u",
    String(Deno.uid()),
    `sleep ${token}`,
  ]);
  return Number(r.stdout.trim() || "0");
}

/** Kill what a test deliberately left running (by its exact marker). */
async function reap(rig: LoopbackRig, token: string): Promise<void> {
  await rig.sh(`pkill -x -f -u "$(id -u)" 'sleep ${token}' || true`);
  await run("pkill", ["-x", "-f", "-u", String(Deno.uid()), `sleep ${token}`]);
}

/** The ways a test reaches the node. */
function variants(rig: LoopbackRig): [string, Partial<SshNodeOptions>][] {
  const all: [string, Partial<SshNodeOptions>][] = [
    ["with a ControlMaster", {}],
    ["without a ControlMaster", { controlMaster: false }],
    ["with the local transport", { transport: "local" }],
  ];
  if (rig.relayReady) {
    all.push(["through a nested relay", {
      index: 1,
      relay: `${rig.user}@${rig.hosts[0]}:${rig.port}`,
    } as Partial<SshNodeOptions>]);
  }
  return all;
}

Deno.test({
  name:
    "rexec(): a background child holding the output is killed after the linger, the shell's status kept, and counted",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  for (const [name, extra] of variants(rig)) {
    await t.step(name, async () => {
      const token = marker();
      await using node = rig.node(extra);
      const r = await node.rexec(`sleep ${token} & echo started; exit 3`, {
        cmdTimeout: 20_000,
      });
      assertEquals(
        [r.code, r.stdout, r.timedOut, r.killed],
        [3, "started\n", null, 1],
      );
      assertMatch(r.notice ?? "", /^1 background process still held/);
      // Linger (0.5 s) plus the kill; the old wrapper waited for the child.
      assert(r.durationMs < 5000, `took ${Math.round(r.durationMs)} ms`);
      assertEquals(
        await settlesToZero(
          () => countSleeps(rig, token, extra.transport === "local"),
          2000,
        ),
        0,
      );
    });
  }
  await controlPool.closeAll();
});

Deno.test({
  name:
    "rexec(): a child that holds nothing of the run survives it, as under plain ssh",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  for (const [name, extra] of variants(rig)) {
    await t.step(name, async () => {
      const token = marker();
      await using node = rig.node(extra);
      try {
        const r = await node.rexec(
          `nohup sleep ${token} >/dev/null 2>&1 & echo started`,
          { cmdTimeout: 20_000 },
        );
        assertEquals([r.code, r.stdout, r.killed, r.notice], [
          0,
          "started\n",
          0,
          null,
        ]);
        assertEquals(
          await countSleeps(rig, token, extra.transport === "local"),
          1,
        );
      } finally {
        await reap(rig, token);
      }
    });
  }
  await controlPool.closeAll();
});

Deno.test({
  name:
    "rexec(): a timeout or an abort kills the whole group, orphans of an exited shell included",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  for (const [name, extra] of variants(rig)) {
    await t.step(`timeout ${name}`, async () => {
      const token = marker();
      await using node = rig.node(extra);
      // The inner shell exits at once; its sleep is an orphan in the group.
      const r = await node.rexec(
        `sh -c 'sleep ${token} &'; sleep ${token}`,
        { cmdTimeout: 1500 },
      );
      assertEquals([r.timedOut, r.success], ["command", false]);
      assertEquals(
        await settlesToZero(
          () => countSleeps(rig, token, extra.transport === "local"),
          2500,
        ),
        0,
      );
    });
    await t.step(`abort ${name}`, async () => {
      const token = marker();
      await using node = rig.node(extra);
      const ac = new AbortController();
      let seen = 0;
      const r = await node.rexec(
        `sh -c 'sleep ${token} &'; echo up; sleep ${token}`,
        {
          signal: ac.signal,
          cmdTimeout: 20_000,
          onLine: (l) => {
            if (l.text === "up") {
              void countSleeps(rig, token, extra.transport === "local").then(
                (n) => {
                  seen = n;
                  ac.abort();
                },
              );
            }
          },
        },
      );
      assertEquals([r.aborted, r.success], [true, false]);
      assert(seen >= 1, "the orphan ran before the abort");
      assertEquals(
        await settlesToZero(
          () => countSleeps(rig, token, extra.transport === "local"),
          2500,
        ),
        0,
      );
    });
  }
  await controlPool.closeAll();
});

Deno.test({
  name:
    "lifeline: a SIGKILLed program leaves no background child, also of a shell that already exited",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  for (const [name, extra] of variants(rig)) {
    await t.step(name, async () => {
      const token = marker();
      const { index, ...spec } = extra as Partial<SshNodeOptions> & {
        index?: number;
      };
      const nodes = Array.from({ length: 4 }, (_, i) => ({
        name: `n${i}`,
        host: rig.hosts[index ?? 0],
        port: rig.port,
        user: rig.user,
        sshConfig: rig.sshConfig,
        controlDir: `${rig.dir}/cm`,
        ...spec,
      }));
      const specFile = `${rig.dir}/bg-${token}.json`;
      await Deno.writeTextFile(specFile, JSON.stringify(nodes));
      // "up" comes before the sleeps; wait until all 8 run, then kill.
      const command = `sh -c 'sleep ${token} &'; sleep ${token}`;
      await killAfterReady(CHILD, [specFile, command], 20_000, async () => {
        const missing = () =>
          countSleeps(rig, token, extra.transport === "local").then((n) =>
            8 - n
          );
        assertEquals(await settlesToZero(missing, 5000), 0, "all 8 ran");
      });
      assertEquals(
        await settlesToZero(
          () => countSleeps(rig, token, extra.transport === "local"),
          3000,
        ),
        0,
      );
      const clients = await run("pgrep", ["-c", "-f", `[s]leep ${token}`]);
      assertEquals(clients.stdout.trim(), "0", "no ssh client left here");
    });
  }
  await controlPool.closeAll();
});

Deno.test("SshNode: the status of an exited shell comes back also through exit, exec and a bare wait", async () => {
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  const cases: [string, number, string][] = [
    ["echo a; exit 7", 7, "a\n"],
    ["exec sh -c 'echo b; exit 5'", 5, "b\n"],
    ["sleep 0.1 & wait; echo c", 0, "c\n"],
    ["trap 'echo d' EXIT; exit 4", 4, "d\n"],
  ];
  for (const [cmd, code, out] of cases) {
    const r = await node.rexec(cmd, { cmdTimeout: 5000 });
    assertEquals([r.code, r.stdout, r.killed, r.timedOut], [
      code,
      out,
      0,
      null,
    ], cmd);
  }
  const partial = await node.rexec("printf 'no newline' >&2");
  assertEquals(partial.stderr, "no newline");
});

Deno.test({
  name:
    "fiwi run: a background child ends with Ctrl-C on a real terminal, and after a normal exit the summary says what was killed",
  ignore: skipHere(
    "fiwi background children",
    "second-address",
    "node-is-local",
  ),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_bg_" });
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      `defaults:\n  user: ${rig.user}\n  port: ${rig.port}\n  sshConfig: ${rig.sshConfig}\nrigs:\n  loop:\n    nodes:\n      n1: ${
        rig.hosts[0]
      }\n      n2: ${rig.hosts[1]}\n`,
    );
    try {
      await t.step("Ctrl-C", async () => {
        const token = marker();
        const p = startFiwi(
          ["run", `sleep ${token} & echo started; sleep ${token}`],
          { cwd, env, terminal: true },
        );
        await p.waitFor(
          /n1: started[\s\S]*n2: started|n2: started[\s\S]*n1: started/,
        );
        await eventually(
          "4 remote sleeps",
          async () => await countSleeps(rig, token) === 4,
        );
        await p.type("\x03");
        const r = await p.done;
        assertEquals(r.code, 130, r.stdout);
        await eventually(
          "no remote sleep",
          async () => await countSleeps(rig, token) === 0,
        );
      });
      await t.step("normal exit", async () => {
        const token = marker();
        const r = await fiwi(
          ["run", "-w", "n1", `sleep ${token} & echo started`],
          { cwd, env },
        );
        assertEquals([r.code, r.stdout], [0, "n1: started\n"], r.stderr);
        assertMatch(r.stderr, /n1: 1 background process still held/);
        assertEquals(await countSleeps(rig, token), 0);
      });
    } finally {
      await fiwi(["close"], { cwd, env }).catch(() => {});
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
