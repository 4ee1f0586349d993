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
  countCarrying,
  countExact,
  countLocal,
  loopRigYaml,
  marker,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

Deno.test({
  name:
    "fiwi stops in order on Ctrl-C, SIGTERM and SIGHUP, and a run in flight outlives close",
  ignore: skipHere("fiwi signals", "second-address", "node-is-local"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_signals_" });
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, loopRigYaml(rig));
    const masters = () => countLocal(`${rig.dir}/cm/`);
    // fiwi has ended: each node ends what is left within the lifeline's
    // bound, and no client of fiwi's outlives it.
    const nothingLeft = async (m: string) => {
      assertEquals(
        await settlesToZero(() => countCarrying(m, rig)),
        0,
        `remote sleep ${m} left`,
      );
      assertEquals(
        await settlesToZero(() => countCarrying(m)),
        0,
        `local client of sleep ${m} left`,
      );
    };
    /** Start `sleep <m>` on both nodes; resolves once both run remotely. */
    const startSleeps = async (
      m: string,
      o: { via?: Via; terminal?: boolean; trapTerm?: boolean } = {},
    ): Promise<Running> => {
      const sleep = `sleep ${m}`;
      const cmd = `${
        o.trapTerm ? "trap '' TERM; " : ""
      }echo started; exec ${sleep}`;
      const p = startFiwi(["run", cmd], { cwd, env, ...o });
      await p.waitFor(
        /n1: started[\s\S]*n2: started|n2: started[\s\S]*n1: started/,
      );
      await eventually(
        "both remote sleeps",
        async () => await countExact(sleep, rig) === 2,
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

      const ctrlC = async (via: Via) => {
        const m = marker();
        const p = await startSleeps(m, { via, terminal: true });
        await p.type("\x03");
        const r = await p.done;
        assertEquals(r.code, 130, r.stdout);
        // On a terminal both streams arrive on stdout.
        assertMatch(r.stdout, /aborted: n\[1-2\]\r\n/);
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
        await nothingLeft(m);
      };

      await t.step(
        "Ctrl-C on a terminal through deno task: summary, exit 130, nothing left",
        () => ctrlC({ kind: "task" }),
      );

      await t.step(
        "Ctrl-C on a terminal through the installed command",
        async () => {
          const path = await installFiwi(`${cwd}/install`);
          await ctrlC({ kind: "installed", path });
        },
      );

      for (
        const [signal, code] of [
          ["SIGTERM", 143],
          ["SIGHUP", 129],
        ] as const
      ) {
        await t.step(
          `${signal} stops every node in order and exits ${code}`,
          async () => {
            const m = marker();
            const p = await startSleeps(m);
            p.child.kill(signal);
            const r = await p.done;
            assertEquals(r.code, code, r.stderr);
            assertMatch(r.stderr, /^aborted: n\[1-2\]$/m);
            await nothingLeft(m);
          },
        );
      }

      await t.step(
        "a second Ctrl-C half a second later exits at once",
        async () => {
          // TERM is ignored remotely: stopping in order waits up to 2 s for KILL.
          const m = marker();
          const p = await startSleeps(m, { trapTerm: true });
          p.child.kill("SIGINT");
          p.child.kill("SIGINT"); // the burst deno task sends: one keypress
          // A second keypress: past the 500 ms in which repeats are the same
          // one (scripts/_signals.ts BURST_MS). Not a wait for an event; the
          // time is measured from the signal, not from before this gap, so
          // a late timer on a loaded machine does not count against fiwi.
          await new Promise((r) => setTimeout(r, 600));
          const again = performance.now();
          p.child.kill("SIGINT");
          const r = await p.done;
          const ms = Math.round(performance.now() - again);
          assertEquals(r.code, 130, r.stderr);
          assertMatch(r.stderr, /Interrupted again: exiting at once/);
          assert(ms < 1300, `exited ${ms} ms after the second Ctrl-C`);
          // The lifeline ends what the orderly stop had not.
          await nothingLeft(m);
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
