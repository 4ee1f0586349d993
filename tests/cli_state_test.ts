// What the `fiwi` command records in the state store, as a user runs it on
// the loopback rig: `run` its invocation and each node's outcome, `poll`
// every sample with the value --value picks, `--db` and the rig's `state:`
// choosing the file, `--no-db`, `nodes` and `--help` recording nothing, a
// corrupt store stopping the command in one line, and the output the same
// with the store as without it.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { StateStore } from "../mod.ts";
import { type Finished, fiwi, STATE_HOME } from "./_cli_harness.ts";
import {
  type LoopbackRig,
  loopRigYaml,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";

/** n1 and n2 of the loopback rig. */
function rigYaml(rig: LoopbackRig, extra = ""): string {
  return loopRigYaml(rig).replace(
    "rigs:\n  loop:\n",
    `rigs:\n  loop:\n${extra}`,
  );
}

/** Read the store at `path` (records of other processes are committed). */
async function read<T>(path: string, fn: (s: StateStore) => T): Promise<T> {
  await using store = await StateStore.open(path);
  return fn(store);
}

/** stderr without the parts that vary from run to run (durations). */
const steady = (text: string) =>
  text.replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, "T").replace(/\(exit 0, T\)/g, "");

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test({
  name:
    "fiwi records its invocations, outcomes and poll samples in the state store",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_cli_state_" });
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, rigYaml(rig));
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    const cli = (args: string[]): Promise<Finished> =>
      fiwi([args[0], "--no-log", ...args.slice(1)], { cwd, env });
    const db = `${cwd}/state.db`;
    try {
      await t.step(
        "run: the invocation with its end, and each node's outcome",
        async () => {
          const cmd =
            'echo "$SSH_CONNECTION" | grep -q " 127.0.0.1 " && exit 3; echo ok';
          const r = await cli(["run", "--db", "state.db", "-w", "n[1-2]", cmd]);
          assertEquals(r.code, 1, r.stderr);
          const [inv, one] = await read(db, (s) => {
            const all = s.invocations();
            return [all, s.invocation(all[0].id)];
          });
          assertEquals(inv.length, 1);
          const i = inv[0];
          assertEquals(
            [i.subcommand, i.command, i.nodes, i.exitCode, i.ok, i.failed],
            ["run", cmd, "n[1-2]", 1, 1, 1],
          );
          assert(i.endedAt! >= i.startedAt);
          assertMatch(i.user, /^.+@.+$/);
          assertEquals(
            one!.outcomes.map((o) => [o.node, o.outcome, o.code]).sort(),
            [["n1", "exit 3", 3], ["n2", "exit 0", 0]],
          );
          const n2 = one!.outcomes.find((o) => o.node === "n2")!;
          assertEquals(n2.bytes, "ok\n".length);
          assert(n2.durationMs > 0);
        },
      );

      await t.step(
        "poll -n 3 --value: three samples per node, each with its value",
        async () => {
          const cmd = "echo uptime 9 load=40";
          const r = await cli([
            "poll",
            "--db",
            "state.db",
            "-n",
            "3",
            "-i",
            "200ms",
            "--value",
            "load=(\\d+)",
            cmd,
          ]);
          assertEquals(r.code, 0, r.stderr);
          const samples = await read(db, (s) => s.samples({ command: cmd }));
          assertEquals(samples.length, 6);
          for (const node of ["n1", "n2"]) {
            const mine = samples.filter((s) => s.node === node);
            assertEquals(mine.map((s) => s.tick), [1, 2, 3], node);
            assertEquals(mine.map((s) => s.value), [40, 40, 40], node);
            assertEquals(mine[0].output, "uptime 9 load=40");
          }
          const poll = await read(db, (s) => s.invocations()[0]);
          assertEquals([poll.subcommand, poll.exitCode], ["poll", 0]);
          assertEquals(
            new Set(samples.map((s) => s.invocationId)),
            new Set([poll.id]),
          );
        },
      );

      await t.step(
        "poll without --value: the first number of the output",
        async () => {
          const r = await cli([
            "poll",
            "--db",
            "state.db",
            "-n",
            "1",
            "-w",
            "n1",
            "echo temp 21.5 C",
          ]);
          assertEquals(r.code, 0, r.stderr);
          const [s] = await read(
            db,
            (s) => s.samples({ command: "echo temp 21.5 C" }),
          );
          assertEquals([s.node, s.value], ["n1", 21.5]);
        },
      );

      await t.step(
        "the output is the same with the store and without it",
        async () => {
          const args = ["-w", "n[1-2]", "echo one; echo two >&2"];
          const on = await cli(["run", "--db", "state.db", ...args]);
          const off = await cli(["run", "--no-db", ...args]);
          assertEquals(on.code, off.code);
          assertEquals(
            on.stdout.split("\n").sort(),
            off.stdout.split("\n").sort(),
          );
          assertEquals(
            steady(on.stderr).split("\n").sort(),
            steady(off.stderr).split("\n").sort(),
          );
          const p = [
            "poll",
            "-n",
            "2",
            "-i",
            "100ms",
            "--csv",
            "-w",
            "n1",
            "echo 5",
          ];
          const pOn = await cli([
            ...p.slice(0, 1),
            "--db",
            "state.db",
            ...p.slice(1),
          ]);
          const pOff = await cli([...p.slice(0, 1), "--no-db", ...p.slice(1)]);
          const noTimes = (s: string) => s.replace(/\d{4}-[\d:T.+-]+/g, "TIME");
          assertEquals(noTimes(pOn.stdout), noTimes(pOff.stdout));
        },
      );

      await t.step(
        "the default file, --db, the rig's state: and --no-db",
        async () => {
          const fallback = `${STATE_HOME}/fiwi/state.db`;
          const before = await exists(fallback)
            ? await read(fallback, (s) => s.invocations().length)
            : 0;
          const r = await cli(["run", "-w", "n1", "true"]);
          assertEquals(r.code, 0, r.stderr);
          assertEquals(
            await read(fallback, (s) => s.invocations().length),
            before + 1,
          );

          await Deno.mkdir(`${cwd}/sub`);
          const given = await cli([
            "run",
            "--db",
            "sub/given.db",
            "-w",
            "n1",
            "true",
          ]);
          assertEquals(given.code, 0, given.stderr);
          assertEquals(
            await read(`${cwd}/sub/given.db`, (s) => s.invocations().length),
            1,
          );

          await Deno.mkdir(`${cwd}/rigdir`);
          await Deno.writeTextFile(
            `${cwd}/rigdir/rigs.yaml`,
            rigYaml(rig, "    state: rig-state.db\n"),
          );
          const byRig = await cli([
            "run",
            "--rig",
            "rigdir/rigs.yaml",
            "-w",
            "n1",
            "true",
          ]);
          assertEquals(byRig.code, 0, byRig.stderr);
          assertEquals(
            await read(
              `${cwd}/rigdir/rig-state.db`,
              (s) => s.invocations().length,
            ),
            1,
            "relative to the rig file",
          );

          const none = await cli(["run", "--no-db", "-w", "n1", "true"]);
          assertEquals(none.code, 0, none.stderr);
          const both = await cli(["run", "--no-db", "--db", "x.db", "true"]);
          assertEquals(both.code, 2);
          assertEquals(
            both.stderr,
            'run: Give either "--db FILE" or "--no-db", not both\n',
          );
          assertEquals(await exists(`${cwd}/x.db`), false);
          assertEquals(
            await read(fallback, (s) => s.invocations().length),
            before + 1,
          );
        },
      );

      await t.step("nodes and --help record nothing", async () => {
        for (
          const args of [["nodes", "--log", "/dev/null"], ["run", "--help"]]
        ) {
          const r = await fiwi(args, { cwd, env });
          assertEquals(r.code, 0, r.stderr);
        }
        const fresh = `${cwd}/fresh`;
        await Deno.mkdir(fresh, { mode: 0o700 });
        const r = await fiwi(["nodes"], {
          cwd,
          env: { ...env, XDG_STATE_HOME: fresh },
        });
        assertEquals(r.code, 0, r.stderr);
        assertEquals(await exists(`${fresh}/fiwi/state.db`), false);
      });

      await t.step(
        "a corrupt store or a bad --value stops the command in one line, exit 2",
        async () => {
          await Deno.writeTextFile(`${cwd}/bad.db`, "garbage\n".repeat(1000), {
            mode: 0o600,
          });
          const bad = await cli([
            "run",
            "--db",
            "bad.db",
            "-w",
            "n1",
            "echo ran",
          ]);
          assertEquals([bad.code, bad.stdout], [2, ""]);
          assertMatch(
            bad.stderr,
            /^run: State store ".*\/bad\.db" is corrupt or not a SQLite database: move it away, or give --db another file \(.*\)\n$/,
          );
          const value = await cli([
            "poll",
            "--db",
            "state.db",
            "-n",
            "1",
            "--value",
            "(",
            "true",
          ]);
          assertEquals(value.code, 2);
          assertMatch(value.stderr, /^poll: Invalid --value "\(": .*\n$/);
        },
      );
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
