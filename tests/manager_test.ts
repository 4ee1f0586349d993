// CommandManager: ids and bad input on the local transport; self-cleaning,
// abnormal history and stopAll on the loopback rig.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertNotEquals,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  type Command,
  CommandManager,
  ConfigurationError,
  SshNode,
} from "../mod.ts";
import {
  countCarrying,
  countExact,
  marker,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

const local = () =>
  new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
    silent: true,
  });

function command(mgr: CommandManager, id: string): Command {
  const c = mgr.getCommand(id);
  if (!c) throw new Error(`command ${id} is not active`);
  return c;
}

Deno.test("CommandManager gives unique string ids, also across managers", async () => {
  await using a = new CommandManager();
  await using b = new CommandManager();
  const node = local();
  const ids = [
    await a.addCommand({ node, cmd: "true", interval: 60_000 }),
    await a.addCommand({ node, cmd: "true", interval: 60_000 }),
    await b.addCommand({ node, cmd: "true", interval: 60_000 }),
  ];
  assert(ids.every((id) => typeof id === "string" && id !== ""));
  assertEquals(new Set(ids).size, 3);
  assertEquals(a.listActive().map((c) => c.id), ids.slice(0, 2));
  assertEquals(b.listActive().map((c) => c.id), ids.slice(2));
});

Deno.test("CommandManager.stopCommand() of an unknown id is a clear error", async () => {
  await using mgr = new CommandManager();
  await assertRejects(
    () => mgr.stopCommand("nope"),
    ConfigurationError,
    'Unknown command id "nope"',
  );
});

Deno.test("CommandManager.stopCommand() of a command that already ended is a no-op", async () => {
  await using mgr = new CommandManager();
  const id = await mgr.addCommand({ node: local(), cmd: "echo once" });
  await command(mgr, id).done;
  assertEquals(mgr.listActive(), []);
  await mgr.stopCommand(id);
  assertEquals(mgr.listAbnormalHistory(), []);
});

Deno.test("CommandManager.addCommand() with bad options adds nothing", async () => {
  await using mgr = new CommandManager();
  await assertRejects(
    () => mgr.addCommand({ node: local(), cmd: "true", count: 0 }),
    ConfigurationError,
    "Invalid count",
  );
  await assertRejects(
    () =>
      mgr.addCommand({
        node: local(),
        cmd: "true",
        logFile: "/nonexistent-dir/x.log",
      }),
    ConfigurationError,
    "cannot be opened",
  );
  assertEquals(mgr.listActive(), []);
  assertEquals(mgr.listAbnormalHistory(), []);
});

Deno.test({
  name: "CommandManager on the loopback rig",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    const node0 = rig.node({ index: 0, silent: true });
    const node1 = rig.node({ index: 1, silent: true });
    await using mgr = new CommandManager();

    await t.step(
      "finished commands leave listActive() by themselves",
      async () => {
        const a = await mgr.addCommand({
          node: node0,
          cmd: "uname -s",
          interval: 100,
          count: 3,
        });
        const b = await mgr.addCommand({
          node: node1,
          cmd: "pwd",
          interval: 100,
          count: 2,
        });
        const active = mgr.listActive();
        assertEquals(
          active.map((c) => [c.id, c.node, c.cmd, c.state]),
          [[a, "node0", "uname -s", "running"], [b, "node1", "pwd", "running"]],
        );
        const ca = command(mgr, a);
        const cb = command(mgr, b);
        await Promise.all([ca.done, cb.done]);
        assertEquals(mgr.listActive(), []);
        assertEquals([ca.state, ca.runCount, cb.state, cb.runCount], [
          "finished",
          3,
          "finished",
          2,
        ]);
        assertEquals(ca.runs.map((r) => r.result.stdout), [
          "Linux\n",
          "Linux\n",
          "Linux\n",
        ]);
        assertEquals(mgr.listAbnormalHistory(), []);
      },
    );

    await t.step(
      "a command whose run hits its io timeout lands in the abnormal history",
      async () => {
        const m = marker();
        const id = await mgr.addCommand({
          node: node0,
          cmd: `echo begin; sleep ${m}`,
          interval: 1000,
          ioTimeout: 300,
        });
        const c = command(mgr, id);
        await c.done;
        assertEquals(c.state, "failed");
        assertEquals(mgr.listActive(), []);
        const history = mgr.listAbnormalHistory();
        assertEquals(history.length, 1);
        const [entry] = history;
        assertEquals(
          [entry.id, entry.node, entry.cmd, entry.reason],
          [id, "node0", `echo begin; sleep ${m}`, "timeout"],
        );
        assertMatch(entry.detail, /io timeout of 300 ms/);
        assertInstanceOf(entry.at, Date);
        assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
      },
    );

    await t.step(
      "a command that cannot reach its node is an exception",
      async () => {
        const closed = rig.node({ index: 1, name: "closed", port: 1 });
        const id = await mgr.addCommand({ node: closed, cmd: "true" });
        await command(mgr, id).done;
        const entry = mgr.listAbnormalHistory().at(-1);
        assertEquals([entry?.id, entry?.node, entry?.reason], [
          id,
          "closed",
          "exception",
        ]);
        assertMatch(entry?.detail ?? "", /Cannot reach node "closed"/);
      },
    );

    await t.step(
      "stopAll() stops every command and leaves nothing running",
      async () => {
        const begun: Promise<void>[] = [];
        const ids: string[] = [];
        const m = marker();
        for (const node of [node0, node1, node0]) {
          let began!: () => void;
          begun.push(new Promise<void>((r) => began = r));
          ids.push(
            await mgr.addCommand({
              node,
              cmd: `echo begin; sleep ${m}`,
              interval: 500,
              onLine: (line) => line.text === "begin" && began(),
            }),
          );
        }
        const commands = ids.map((id) => command(mgr, id));
        try {
          await Promise.all(begun);
          // Each sleep starts just after its "begin" is printed.
          const sleeping = () => countExact(`sleep ${m}`, rig);
          assertEquals(await settlesTo(sleeping, 3, GONE_WITHIN), 3);
        } finally {
          await mgr.stopAll();
        }
        assertEquals(mgr.listActive(), []);
        assertEquals(commands.map((c) => c.state), [
          "stopped",
          "stopped",
          "stopped",
        ]);
        assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
        assertEquals(await countCarrying(m), 0, "the ssh clients are gone");
        // Stopping is not abnormal: the history holds only the two failures.
        assertEquals(mgr.listAbnormalHistory().length, 2);
        assertNotEquals(mgr.listAbnormalHistory()[1].id, ids[0]);
      },
    );

    await Promise.all([node0.close(), node1.close()]);
  },
});
