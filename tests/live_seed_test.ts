/**
 * The original design's own remote cases, as a lab engineer runs them on a
 * node: a dmesg tail, `ls ~`, a CommandManager that cleans up after itself,
 * `uname -r` every second ten times, `pwd` and `ls` every second five
 * times, and a forever command that stops when asked. They run on the
 * loopback rig, and on a live node with `deno task test:live`; nothing is
 * installed there and what they create is removed.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { Command, CommandManager, type Line } from "../mod.ts";
import {
  countCarrying,
  countExact,
  marker,
  skipReason,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

/** Per-run limits: a node that stops answering fails the case in seconds. */
const LIMITS = { connectTimeout: 10_000, cmdTimeout: 15_000 };

const lines = (text: string) => text.split("\n").filter((l) => l !== "");

Deno.test({
  name: "seed cases on the rig node",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    await using node = rig.node({ silent: true });
    const home = (await node.rexec("cd && pwd", LIMITS)).stdout.trim();
    assertMatch(home, /^\//, "the node user's home");

    await t.step("dmesg tail: the last 5 kernel messages", async () => {
      const r = await node.rexec("dmesg | tail -n 5", LIMITS);
      assertEquals([r.started, r.timedOut, r.code], [true, null, 0]);
      const tail = lines(r.stdout);
      assert(tail.length <= 5, r.stdout);
      if (tail.length === 0) {
        // kernel.dmesg_restrict=1 keeps the log from a user without root.
        assertMatch(r.stderr, /not permitted|denied/i);
        console.warn(`dmesg is restricted for ${rig.user}: ${r.stderr.trim()}`);
      }
    });

    await t.step(
      "ls ~: the home directory lists a file put there",
      async () => {
        const made = await node.rexec("mktemp ~/.fiwi-ls-XXXXXX", LIMITS);
        const file = made.stdout.trim();
        assertMatch(file, /\/\.fiwi-ls-\w{6}$/, made.stderr);
        try {
          const r = await node.rexec("ls -a ~", LIMITS);
          assertEquals(r.code, 0, r.stderr);
          assert(lines(r.stdout).includes(file.split("/").pop()!), r.stdout);
        } finally {
          await node.rexec(`rm -f '${file}'`, LIMITS);
        }
        const after = await node.rexec("ls -a ~", LIMITS);
        assert(!after.stdout.includes(".fiwi-ls-"), after.stdout);
      },
    );

    await t.step(
      "CommandManager: uname -r and pwd every 0.5 s, 4 times each; finished ones leave by themselves",
      async () => {
        await using mgr = new CommandManager();
        const uname = await mgr.addCommand({
          node,
          cmd: "uname -r",
          interval: 500,
          count: 4,
          ...LIMITS,
        });
        const pwd = await mgr.addCommand({
          node,
          cmd: "pwd",
          interval: 500,
          count: 4,
          ...LIMITS,
        });
        assertEquals(mgr.listActive().map((c) => [c.id, c.cmd]), [
          [uname, "uname -r"],
          [pwd, "pwd"],
        ]);
        const commands = [mgr.getCommand(uname)!, mgr.getCommand(pwd)!];
        await within(20_000, Promise.all(commands.map((c) => c.done)), "end");
        assertEquals(mgr.listActive(), []);
        assertEquals(mgr.listAbnormalHistory(), []);
        assertEquals(commands.map((c) => [c.state, c.runCount]), [
          ["finished", 4],
          ["finished", 4],
        ]);
        const [release] = lines(commands[0].runs[0].result.stdout);
        assertEquals(
          commands.map((c) => c.runs.map((r) => r.result.stdout)),
          [Array(4).fill(`${release}\n`), Array(4).fill(`${home}\n`)],
        );
      },
    );

    await t.step("repeat: uname -r every 1 s, 10 times", async () => {
      const cmd = new Command(node, "uname -r", {
        interval: 1000,
        count: 10,
        ...LIMITS,
      });
      await cmd.start();
      await within(20_000, cmd.done, "tenth run");
      assertEquals([cmd.state, cmd.runCount], ["finished", 10]);
      assertEquals(new Set(cmd.runs.map((r) => r.result.stdout)).size, 1);
      // Fire k is due at t0 + k s: the period does not drift by run time.
      const t0 = cmd.runs[0].scheduledAt;
      assertEquals(
        cmd.runs.map((r) => Math.round((r.scheduledAt - t0) / 1000)),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    });

    await t.step("repeat: pwd and ls every 1 s, 5 times", async () => {
      const cmd = new Command(node, "pwd && ls -a", {
        interval: 1000,
        count: 5,
        ...LIMITS,
      });
      await cmd.start();
      await within(15_000, cmd.done, "fifth run");
      assertEquals([cmd.state, cmd.runCount], ["finished", 5]);
      for (const run of cmd.runs) {
        assertEquals(run.result.code, 0, run.result.stderr);
        const [where, ...listing] = lines(run.result.stdout);
        assertEquals(where, home);
        assert(listing.includes(".."), run.result.stdout);
      }
    });

    await t.step(
      "repeat forever: date every 1 s until stopped",
      async () => {
        let ticks = 0;
        let third!: () => void;
        const thirdTick = new Promise<void>((r) => third = r);
        const cmd = new Command(node, "date +%s", {
          interval: 1000,
          count: Command.COUNT_FOREVER,
          onLine: () => ++ticks === 3 && third(),
          ...LIMITS,
        });
        await cmd.start();
        try {
          await within(10_000, thirdTick, "third tick");
        } finally {
          await cmd.stop();
        }
        await within(5_000, cmd.done, "end after stop()");
        const runs = cmd.runCount;
        assertEquals(cmd.state, "stopped");
        assert(runs >= 3, `${runs} runs`);
        assertEquals(cmd.runs.length, runs);
      },
    );

    await t.step(
      "a forever command stopped in the middle of a run leaves nothing on the node",
      async () => {
        let begun!: () => void;
        const begin = new Promise<void>((r) => begun = r);
        const m = marker();
        const cmd = new Command(node, `echo begin; sleep ${m}`, {
          interval: 1000,
          count: Command.COUNT_FOREVER,
          onLine: (line: Line) => line.text === "begin" && begun(),
          connectTimeout: LIMITS.connectTimeout,
        });
        await cmd.start();
        try {
          await within(10_000, begin, '"begin" from the first run');
          // The sleep starts just after "begin" is printed.
          const sleeping = () => countExact(`sleep ${m}`, rig);
          assertEquals(await settlesTo(sleeping, 1, GONE_WITHIN), 1);
        } finally {
          await cmd.stop();
        }
        assertEquals([cmd.state, cmd.runCount], ["stopped", 1]);
        assertEquals(cmd.runs[0].result.aborted, true);
        assertEquals(
          await settlesToZero(() => countCarrying(m, rig)),
          0,
          "remote left",
        );
        assertEquals(await countCarrying(m), 0, "ssh client left");
      },
    );
  },
});
