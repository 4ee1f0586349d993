// The `fiwi` command against the loopback rig when it is stopped or shares
// its masters: Ctrl-C typed on a real terminal through `deno task` and
// through the command `deno install -g` writes, SIGTERM and SIGHUP, a
// second Ctrl-C later, and `fiwi close` or another run ending while a run
// is in flight. Each ends with nothing left running on either side.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  eventually,
  fiwi,
  installFiwi,
  type Running,
  startFiwi,
  type Via,
} from "./_cli_harness.ts";
import {
  countLocal,
  countRemote,
  type LoopbackRig,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";

function rigYaml(rig: LoopbackRig): string {
  return `defaults:
  user: ${rig.user}
  port: ${rig.port}
  sshConfig: ${rig.sshConfig}
rigs:
  loop:
    nodes:
      n1: ${rig.hosts[0]}
      n2: ${rig.hosts[1]}
`;
}

Deno.test({
  name:
    "fiwi stops in order on Ctrl-C, SIGTERM and SIGHUP, and a run in flight outlives close",
  ignore: skipHere("fiwi signals", "second-address", "node-is-local"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_signals_" });
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, rigYaml(rig));
    await Deno.mkdir(`${cwd}/logs`);
    const masters = () => countLocal(`${rig.dir}/cm/`);
    const nothingLeft = async (sleep: string) => {
      await eventually(
        `no remote ${sleep}`,
        async () => await countRemote(rig, sleep) === 0,
      );
      await eventually(
        `no local client of ${sleep}`,
        async () => await countLocal(sleep) === 0,
      );
    };
    /** Start `sleep` on both nodes; resolves once both run remotely. */
    const startSleeps = async (
      sleep: string,
      o: { via?: Via; terminal?: boolean; trapTerm?: boolean } = {},
    ): Promise<Running> => {
      const cmd = `${
        o.trapTerm ? "trap '' TERM; " : ""
      }echo started; exec ${sleep}`;
      const p = startFiwi(["run", cmd], { cwd, env, ...o });
      await p.waitFor(
        /n1: started[\s\S]*n2: started|n2: started[\s\S]*n1: started/,
      );
      await eventually(
        "both remote sleeps",
        async () => await countRemote(rig, sleep) === 2,
      );
      return p;
    };
    try {
      await t.step(
        "a run in flight finishes while fiwi close and another run end",
        async () => {
          const p = startFiwi(
            ["run", "-w", "n1", "echo began; sleep 3; echo survived"],
            { cwd, env },
          );
          await p.waitFor(/^n1: began$/m);
          const other = await fiwi(["run", "-w", "n1", "true"], { cwd, env });
          assertEquals(other.code, 0, other.stderr);
          const closed = await fiwi(["close", "-w", "n1"], { cwd, env });
          assertEquals(closed.code, 0, closed.stderr);
          assertMatch(closed.stderr, /^Closed 1 ControlMaster: n1/);
          const r = await p.done;
          assertEquals(
            [r.code, r.stdout],
            [0, "n1: began\nn1: survived\n"],
            r.stderr,
          );
          await eventually(
            "the stopped master gone",
            async () => await masters() === 0,
          );
        },
      );

      const ctrlC = async (via: Via, sleep: string) => {
        const p = await startSleeps(sleep, { via, terminal: true });
        await p.type("\x03");
        const r = await p.done;
        assertEquals(r.code, 130, r.stdout);
        // On a terminal both streams arrive on stdout.
        assertMatch(r.stdout, /interrupted: n\[1-2\]\r\n/);
        assertMatch(
          r.stdout,
          /Interrupted: every client was stopped; each node ends what is left of its command within 2 s\r\n$/,
        );
        // The progress line was drawn, and cleared before the summary.
        const lastDraw = r.stdout.lastIndexOf(" done]");
        assert(lastDraw > 0, "a progress line was drawn");
        assert(
          r.stdout.indexOf("\r\x1b[K", lastDraw) > lastDraw,
          "the progress line is cleared",
        );
        await nothingLeft(sleep);
      };

      await t.step(
        "Ctrl-C on a terminal through deno task: summary, exit 130, nothing left",
        () => ctrlC({ kind: "task" }, "sleep 7321"),
      );

      await t.step(
        "Ctrl-C on a terminal through the installed command",
        async () => {
          const path = await installFiwi(`${cwd}/install`);
          await ctrlC({ kind: "installed", path }, "sleep 7322");
        },
      );

      for (
        const [signal, code, sleep] of [
          ["SIGTERM", 143, "sleep 7323"],
          ["SIGHUP", 129, "sleep 7324"],
        ] as const
      ) {
        await t.step(
          `${signal} stops every node in order and exits ${code}`,
          async () => {
            const p = await startSleeps(sleep);
            p.child.kill(signal);
            const r = await p.done;
            assertEquals(r.code, code, r.stderr);
            assertMatch(r.stderr, /^interrupted: n\[1-2\]$/m);
            await nothingLeft(sleep);
          },
        );
      }

      await t.step(
        "a second Ctrl-C half a second later exits at once",
        async () => {
          // TERM is ignored remotely: stopping in order waits up to 2 s for KILL.
          const p = await startSleeps("sleep 7325", { trapTerm: true });
          const t0 = performance.now();
          p.child.kill("SIGINT");
          p.child.kill("SIGINT"); // the burst deno task sends: one keypress
          await new Promise((r) => setTimeout(r, 600));
          p.child.kill("SIGINT");
          const r = await p.done;
          assertEquals(r.code, 130, r.stderr);
          assertMatch(r.stderr, /Interrupted again: exiting at once/);
          assert(
            performance.now() - t0 < 1900,
            "exited before the orderly stop ended",
          );
          // The lifeline ends what the orderly stop had not.
          await nothingLeft("sleep 7325");
        },
      );
    } finally {
      await fiwi(["close"], { cwd, env }).catch(() => {});
      await eventually("masters gone", async () => await masters() === 0)
        .catch(() => {});
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
