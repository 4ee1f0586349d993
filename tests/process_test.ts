// ProcessManager on the loopback rig: detached processes, metadata on the
// node, exit reporting, QUIT/KILL escalation, role order, re-attach.
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  type ProcessExit,
  ProcessManager,
  SshNode,
  type StartOptions,
} from "../mod.ts";
import {
  checkStart,
  parseList,
  parseMeta,
  parseState,
  parseWatchLine,
} from "../src/process_manager/_process_meta.ts";
import { crash } from "../src/process_manager/_crash.ts";
import { killStages } from "../src/process_manager/_kill.ts";
import {
  countCarrying,
  countExact,
  LIVE,
  type LoopbackRig,
  marker,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

const ignore = skipReason() !== null;

Deno.test("parseMeta() reads the key=value metadata a node wrote", () => {
  const node = new SshNode({
    name: "n",
    host: "localhost",
    transport: "local",
  });
  const text = [
    "pid=120",
    "monitor=119",
    "group=1",
    "host=rig-a",
    "user=pi",
    "started=1700000000",
    "log=/tmp/x=y.log",
    `spec=${JSON.stringify({ name: "srv", role: "server", cmd: "a=1 b" })}`,
  ].join("\n");
  const info = parseMeta("srv-1", node, text);
  assertEquals(
    [info.pid, info.monitorPid, info.group, info.host, info.user],
    [120, 119, true, "rig-a", "pi"],
  );
  assertEquals([info.name, info.role, info.cmd, info.logFile], [
    "srv",
    "server",
    "a=1 b",
    "/tmp/x=y.log",
  ]);
  assertEquals(info.startedAt.toISOString(), "2023-11-14T22:13:20.000Z");
  assertEquals(parseMeta("bare", node, "pid=5\nspec=not json").name, "bare");
});

Deno.test("parseState() tells running from exited, lost and gone", () => {
  const cases: [string, unknown][] = [
    ["running \n", null],
    ["exited 0\n", { code: 0, source: "monitor" }],
    ["exited 137", { code: 137, source: "monitor" }],
    ["lost \n", { code: null, source: "lost" }],
    ["gone \n", { code: null, source: "lost" }],
  ];
  for (const [line, want] of cases) assertEquals(parseState(line), want, line);
});

Deno.test("checkStart() refuses names, roles, log paths and env it cannot pass on", () => {
  assertEquals(checkStart({}), { name: "proc", role: null, env: {} });
  const bad: [StartOptions, string][] = [
    [{ name: "a b" }, "Invalid process name"],
    [{ name: "" }, "Invalid process name"],
    [{ role: " " }, "Invalid role"],
    [{ logFile: "two\nlines" }, "Invalid logFile"],
    [{ env: { "A-B": "x" } }, "Invalid environment variable"],
    [{ env: { A: "nul\0" } }, "Invalid environment variable"],
  ];
  for (const [options, message] of bad) {
    assertThrows(() => checkStart(options), ConfigurationError, message);
  }
});

Deno.test("parseList() and parseWatchLine() read what the node scripts print", () => {
  const node = new SshNode({
    name: "n",
    host: "localhost",
    transport: "local",
  });
  const listed = parseList(
    node,
    "@@ a-1\npid=7\nstate=running \n@@ b-2\npid=8\nstate=exited 3\n" +
      "@@ c-3\npid=9\n",
  );
  assertEquals(listed.map((p) => [p.info.id, p.info.pid, p.exit]), [
    ["a-1", 7, null],
    ["b-2", 8, { code: 3, source: "monitor" }],
    ["c-3", 9, { code: null, source: "lost" }],
  ]);
  const lines: [string, unknown][] = [
    ["exit a-1 0", { id: "a-1", status: { code: 0, source: "monitor" } }],
    ["exit a-1 137", { id: "a-1", status: { code: 137, source: "monitor" } }],
    ["lost b-2", { id: "b-2", status: { code: null, source: "lost" } }],
    ["started x", null],
    ["", null],
  ];
  for (const [line, want] of lines) {
    assertEquals(parseWatchLine(line), want, line);
  }
});

Deno.test("killStages() orders roles as given, the rest last, and refuses a bad order", () => {
  const procs = ["db", "app", null, "db", "lb"].map((role, i) => ({
    id: `p${i}`,
    role,
  }));
  const ids = (order: string[] | undefined) =>
    killStages(procs, order).map((stage) => stage.map((p) => p.id));
  assertEquals(ids(["lb", "app", "db"]), [["p4"], ["p1"], ["p0", "p3"], [
    "p2",
  ]]);
  assertEquals(ids(undefined), [["p0", "p1", "p2", "p3", "p4"]]);
  assertEquals(ids(["web"]), [[], ["p0", "p1", "p2", "p3", "p4"]]);
  assertThrows(
    () => killStages(procs, "db" as unknown as string[]),
    ConfigurationError,
    "Invalid order",
  );
});

const META_DIR = '"${XDG_RUNTIME_DIR:-/tmp}/fiwi-proc-$(id -u)"';

/** Collects every exit a manager reports; `wait(id)` resolves with one. */
function exits(pm: ProcessManager) {
  const seen = new Map<string, ProcessExit>();
  const waiting = new Map<string, (e: ProcessExit) => void>();
  const all: ProcessExit[] = [];
  pm.onExit((e) => {
    all.push(e);
    seen.set(e.id, e);
    waiting.get(e.id)?.(e);
  });
  return {
    all,
    wait(id: string, ms = 10_000): Promise<ProcessExit> {
      const known = seen.get(id);
      if (known) return Promise.resolve(known);
      const { promise, resolve, reject } = Promise.withResolvers<
        ProcessExit
      >();
      const timer = setTimeout(
        () => reject(new Error(`no exit for ${id} in ${ms} ms`)),
        ms,
      );
      waiting.set(id, resolve);
      return promise.finally(() => {
        clearTimeout(timer);
        waiting.delete(id);
      });
    },
  };
}

/** Log files of ended processes, removed from the node at the end. */
const logs = new Set<string>();
function collectLogs(pm: ProcessManager): void {
  pm.onExit((e) => logs.add(pm.info(e.id).logFile));
}

async function metaFile(rig: LoopbackRig, id: string): Promise<string> {
  const r = await rig.sh(`cat ${META_DIR}/${id}.meta 2>/dev/null`);
  return r.stdout;
}

// A process that ignores QUIT: only KILL ends it.
const STUBBORN =
  "trap 'echo got QUIT' QUIT; echo up; while :; do sleep 0.1; done";

Deno.test({ name: "ProcessManager", ignore }, async (t) => {
  await using rig = await startLoopbackRig();
  await using node = rig.node({ silent: true });
  await using pm = new ProcessManager();
  const exited = exits(pm);
  collectLogs(pm);
  try {
    await t.step(
      "start() records pid, host, user, role and start time on the node",
      async () => {
        const before = Math.floor(Date.now() / 1000) - 1;
        const m = marker();
        const id = await pm.start(node, `sleep ${m}`, {
          name: "sleeper",
          role: "server",
        });
        assertMatch(id, /^sleeper-[0-9a-f]{8}$/);
        const info = pm.info(id);
        assertEquals(pm.remotePid(id), info.pid);
        assertEquals([info.role, info.user, info.group], [
          "server",
          rig.user,
          true,
        ]);
        assert(info.startedAt.getTime() / 1000 >= before);
        const meta = await metaFile(rig, id);
        assertMatch(meta, new RegExp(`^pid=${info.pid}$`, "m"));
        assertMatch(meta, new RegExp(`^user=${rig.user}$`, "m"));
        assertMatch(meta, /^host=\S+$/m);
        assertMatch(meta, /^started=\d+$/m);
        assertMatch(meta, /"role":"server"/);
        assertEquals(await pm.isAlive(id), true);
        const sleeping = () => countExact(`sleep ${m}`, rig);
        assertEquals(await settlesTo(sleeping, 1, GONE_WITHIN), 1);
      },
    );

    await t.step(
      "the process survives its ssh connection and sshd itself",
      async () => {
        const id = await pm.start(node, "sleep 3542");
        await node.close();
        if (!LIVE) {
          await rig.stop();
          await rig.start();
        }
        await using fresh = rig.node({ silent: true });
        const r = await fresh.rexec(
          `kill -0 ${pm.remotePid(id)} && echo alive`,
        );
        assertEquals(r.stdout, "alive\n");
        assertEquals(await pm.isAlive(id), true);
      },
    );

    await t.step(
      "env and logFile reach the command; readLog() tails the log",
      async () => {
        const logFile = `fiwi-test-${crypto.randomUUID().slice(0, 8)}/out.log`;
        const id = await pm.start(
          node,
          'for i in 1 2 3 4 5; do echo "$GREETING $i"; done; exit 4',
          { env: { GREETING: "hello there" }, logFile },
        );
        const exit = await exited.wait(id);
        assertEquals([exit.code, exit.source], [4, "monitor"]);
        assert(pm.info(id).logFile.endsWith(`/${logFile}`));
        assertEquals(await pm.readLog(id, 2), "hello there 4\nhello there 5\n");
        assertEquals((await pm.readLog(id)).split("\n").length, 6);
        assertEquals(await pm.isAlive(id), false);
        await pm.kill(id);
        await rig.sh(`rm -rf ${logFile.split("/")[0]}`);
      },
    );

    await t.step(
      "kill() ends a QUIT-trapping process with KILL and says so",
      async () => {
        const id = await pm.start(node, STUBBORN, { name: "stubborn" });
        const gone = exited.wait(id);
        const status = await pm.kill(id, { timeout: 300 });
        assertEquals(status, { code: 137, source: "kill" });
        assertEquals((await gone).source, "kill");
        // Safe twice, and the metadata is gone.
        assertEquals(await pm.kill(id, { timeout: 300 }), status);
        assertEquals(await metaFile(rig, id), "");
        assert((await pm.readLog(id)).includes("got QUIT"));
      },
    );

    await t.step("kill() ends a plain process with QUIT alone", async () => {
      const m = marker();
      const id = await pm.start(node, `sh -c 'sleep ${m}'; true`);
      assertEquals(await pm.kill(id, { timeout: 2000 }), {
        code: 131,
        source: "quit",
      });
      assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
    });

    await t.step(
      "crash() is learned as an unexpected exit; kill() then cleans up",
      async () => {
        const id = await pm.start(node, "sleep 3544", { name: "victim" });
        await crash(pm, id);
        const e = await exited.wait(id);
        assertEquals([e.code, e.source, e.name], [137, "monitor", "victim"]);
        assertNotEquals(await metaFile(rig, id), "");
        assertEquals(await pm.kill(id), { code: 137, source: "monitor" });
        assertEquals(await metaFile(rig, id), "");
      },
    );

    await t.step(
      "attach() from a fresh manager finds a running process",
      async () => {
        const id = await pm.start(node, "sleep 3545", {
          name: "adoptee",
          role: "worker",
        });
        await using other = new ProcessManager();
        collectLogs(other);
        const ids = await other.attach(rig.node({ silent: true }));
        assert(ids.includes(id), `${id} in ${ids}`);
        const info = other.info(id);
        assertEquals([info.pid, info.role, info.name, info.cmd], [
          pm.remotePid(id),
          "worker",
          "adoptee",
          "sleep 3545",
        ]);
        assertEquals(await other.isAlive(id), true);
        assertEquals(await other.kill(id, { timeout: 2000 }), {
          code: 131,
          source: "quit",
        });
        // The first manager learns it is gone: from its own watcher when that
        // saw the status before the metadata went, else as lost.
        assertEquals(await pm.isAlive(id), false);
        const seen = pm.info(id).exit;
        assert(
          seen?.code === 131 && seen.source === "monitor" ||
            seen?.code === null && seen.source === "lost",
          JSON.stringify(seen),
        );
      },
    );

    await t.step(
      "killAll() stops roles in order, parallel inside a role, then the rest",
      async () => {
        const order = `fiwi-order-${crypto.randomUUID().slice(0, 8)}`;
        const mk = (tag: string) =>
          `trap 'echo ${tag} >> ${order}; exit 0' QUIT; while :; do sleep 0.1; done`;
        await using mgr = new ProcessManager();
        collectLogs(mgr);
        const roles = ["db", "app", "db", "lb", "app"];
        for (const role of roles) {
          await mgr.start(node, mk(role), { role });
        }
        await mgr.start(node, mk("none"));
        const done = await mgr.killAll({
          order: ["lb", "app", "db"],
          timeout: 3000,
        });
        assertEquals(done.size, 6);
        assert(
          [...done.values()].every((s) => s.source === "quit" && s.code === 0),
        );
        const lines = (await rig.sh(`cat ${order}; rm -f ${order}`)).stdout;
        assertEquals(lines, "lb\napp\napp\ndb\ndb\nnone\n");
        assertEquals(mgr.list().length, 0);
      },
    );

    await t.step("a process whose monitor died is reported lost", async () => {
      await using mgr = new ProcessManager({ watch: false });
      collectLogs(mgr);
      const id = await mgr.start(node, "sleep 3546");
      const { monitorPid, pid } = mgr.info(id);
      await rig.sh(`kill -KILL ${monitorPid}; kill -KILL -${pid}`);
      assertEquals(await mgr.isAlive(id), false);
      assertEquals(mgr.info(id).exit, { code: null, source: "lost" });
      assertEquals(await mgr.kill(id), { code: null, source: "lost" });
      assertEquals(await metaFile(rig, id), "");
    });

    await t.step("bad input is refused before anything runs", async () => {
      await assertRejects(
        () => pm.start(node, "true", { name: "two words" }),
        ConfigurationError,
        "Invalid process name",
      );
      await assertRejects(
        () => pm.start(node, "true", { env: { "1BAD": "x" } }),
        ConfigurationError,
        "Invalid environment variable",
      );
      await assertRejects(
        () => pm.kill("nope"),
        ConfigurationError,
        'Unknown process id "nope"',
      );
      await assertRejects(() => pm.start(node, "  "), ConfigurationError);
    });

    await t.step("onExit saw every exit once, with its source", () => {
      const seen = new Map<string, number>();
      for (const e of exited.all) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
      assert([...seen.values()].every((n) => n === 1));
      const sources = new Set(exited.all.map((e) => e.source));
      for (const s of ["monitor", "kill", "quit"] as const) {
        assert(sources.has(s), `${s} in ${[...sources]}`);
      }
    });
  } finally {
    await pm.killAll({ timeout: 1000 }).catch(() => {});
    const files = [...logs].filter((f) => f.startsWith("/"));
    await rig.sh(`rm -f ${files.join(" ")}`);
    logs.clear();
    // A live node keeps nothing of the run: the metadata dir goes too, when
    // empty (on loopback other rigs may share the node user's).
    if (rig.live) await rig.sh(`rmdir ${META_DIR} 2>/dev/null; true`);
  }
});

Deno.test("ProcessManager on the local transport", async () => {
  const node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  await using pm = new ProcessManager();
  const exited = exits(pm);
  const id = await pm.start(node, "echo local; exit 3");
  const logFile = pm.info(id).logFile;
  const exit = await exited.wait(id);
  assertEquals([exit.code, exit.source], [3, "monitor"]);
  assertEquals(await pm.readLog(id), "local\n");
  await pm.kill(id);
  await Deno.remove(logFile);
});
