// Leases on the SQLite store: the shared semantics (tests/_lease_semantics.ts,
// also run on PostgreSQL by tests/lease_pg_test.ts), then what is SQLite's
// own (faults of the file, the schema version) and the rig integration.
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import { DatabaseSync } from "node:sqlite";
import {
  ConfigurationError,
  LeaseHeldError,
  openLeaseStore,
  parseRig,
  RigFileError,
} from "../mod.ts";
import { leaseSemantics } from "./_lease_semantics.ts";
import { WAITER_TTL } from "../src/lease/_store.ts";
import { delay } from "jsr:@std/async@^1/delay";

const MOD = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function tempDb(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_lease_" });
  return { dir, file: `${dir}/leases.db` };
}

Deno.test("lease semantics on SQLite", async (t) => {
  const { dir, file } = await tempDb();
  try {
    await leaseSemantics(t, () => openLeaseStore(file));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() creates a WAL-mode SQLite file with the schema version", async () => {
  const { dir, file } = await tempDb();
  try {
    await (await openLeaseStore(file)).close();
    const db = new DatabaseSync(file);
    try {
      assertEquals(
        db.prepare("PRAGMA journal_mode").get()?.journal_mode,
        "wal",
      );
      assertEquals(
        db.prepare("SELECT version FROM schema_version").all().length,
        1,
      );
    } finally {
      db.close();
    }
    // Opening again migrates nothing and keeps one version row.
    await (await openLeaseStore(file)).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() refuses a corrupt file in one line naming it", async () => {
  const { dir, file } = await tempDb();
  try {
    await Deno.writeTextFile(file, "not a database\n".repeat(200));
    const e = await assertRejects(
      () => openLeaseStore(file),
      ConfigurationError,
    );
    assertMatch(e.message, /^Lease store ".*leases\.db" is corrupt/);
    assert(!e.message.includes("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() refuses a schema newer than this fiwi", async () => {
  const { dir, file } = await tempDb();
  try {
    await (await openLeaseStore(file)).close();
    const db = new DatabaseSync(file);
    db.exec("UPDATE schema_version SET version = 99");
    db.close();
    await assertRejects(
      () => openLeaseStore(file),
      ConfigurationError,
      "has schema version 99, newer than this fiwi knows (1): upgrade fiwi",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() refuses a file in a missing directory", async () => {
  const { dir } = await tempDb();
  try {
    await assertRejects(
      () => openLeaseStore(`${dir}/missing/leases.db`),
      ConfigurationError,
      "Cannot open lease store",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() refuses an unwritable file in one line naming it", async () => {
  const { dir, file } = await tempDb();
  try {
    await (await openLeaseStore(file)).close();
    // Without write permission (root ignores file modes, so Deno's
    // permissions stand in for them there).
    const script = `import { openLeaseStore } from ${JSON.stringify(MOD)};
      try { await openLeaseStore(${
      JSON.stringify(file)
    }); console.log("opened"); }
      catch (e) { console.log(e.name + ": " + e.message); }`;
    const scriptFile = `${dir}/open.ts`;
    await Deno.writeTextFile(scriptFile, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        CONFIG,
        "--allow-read",
        "--allow-env",
        "--allow-sys",
        scriptFile,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assertMatch(
      text,
      /^ConfigurationError: Cannot use lease store ".*leases\.db": no permission: Requires write access/,
    );
    if (Deno.uid() !== 0) {
      await Deno.chmod(file, 0o444);
      await Deno.chmod(dir, 0o555);
      try {
        await assertRejects(
          () => openLeaseStore(file),
          ConfigurationError,
          "Cannot write lease store",
        );
      } finally {
        await Deno.chmod(dir, 0o755);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openLeaseStore() checks its arguments", async () => {
  await assertRejects(() => openLeaseStore(""), TypeError);
  await assertRejects(
    () => openLeaseStore("/tmp/x.db", { timeout: 0 }),
    RangeError,
  );
  await assertRejects(
    () => openLeaseStore("mysql://db/leases"),
    ConfigurationError,
    "give a file path or a postgres:// URL",
  );
});

Deno.test("two processes racing on one SQLite file never share a node", async () => {
  const { dir, file } = await tempDb();
  try {
    const script = `import { openLeaseStore } from ${JSON.stringify(MOD)};
      const store = await openLeaseStore(${JSON.stringify(file)});
      const log = [];
      for (let k = 0; k < 15; k++) {
        const lease = await store.take({ nodes: ["p1", "p2"], for: 10000, wait: 20000 });
        log.push(["in", performance.timeOrigin + performance.now()]);
        await new Promise((r) => setTimeout(r, 3));
        log.push(["out", performance.timeOrigin + performance.now()]);
        await lease.drop();
      }
      await store.close();
      console.log(JSON.stringify(log));`;
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--config", CONFIG, "-A", script],
        stdout: "piped",
      }).output();
    const outs = await Promise.all([run(), run(), run()]);
    const spans = outs.flatMap((o) => {
      const log = JSON.parse(new TextDecoder().decode(o.stdout)) as [
        string,
        number,
      ][];
      return log.filter((_, i) => i % 2 === 0).map((e, i) => [
        e[1],
        log[2 * i + 1][1],
      ]);
    }).sort((x, y) => x[0] - y[0]);
    assertEquals(spans.length, 45);
    for (let i = 1; i < spans.length; i++) {
      assert(spans[i][0] >= spans[i - 1][1], "two holders at once");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a killed waiter leaves the queue once its heartbeat lapses", async () => {
  const { dir, file } = await tempDb();
  try {
    await using store = await openLeaseStore(file);
    await using _held = await store.take({ nodes: ["q1"], for: 60_000 });
    const script = `${dir}/wait.ts`;
    await Deno.writeTextFile(
      script,
      `import { openLeaseStore } from ${JSON.stringify(MOD)};
      const store = await openLeaseStore(${JSON.stringify(file)});
      await store.take({ nodes: ["q1"], for: 60000, wait: 60000 });`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", CONFIG, "-A", script],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const waiting = async () => (await store.list()).waiting.length;
    try {
      for (let i = 0; i < 200 && await waiting() === 0; i++) await delay(50);
      assertEquals(await waiting(), 1);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
    const killedAt = Date.now();
    while (await waiting() > 0 && Date.now() - killedAt < 10_000) {
      await delay(100);
    }
    assertEquals(await waiting(), 0);
    const took = Date.now() - killedAt;
    assert(took <= WAITER_TTL + 1_000, `left the queue after ${took} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rig file: leases and requireLease per rig and in defaults", async (t) => {
  await t.step(
    "a relative path is relative to the rig file; a URL stays",
    () => {
      const rig = parseRig(
        "defaults:\n  leases: leases.db\nrigs:\n  lab:\n    nodes:\n      n1: { transport: local }\n",
        { file: "/etc/fiwi/rigs.yaml" },
      );
      assertEquals([rig.leases, rig.requireLease], [
        "/etc/fiwi/leases.db",
        false,
      ]);
      const pg = parseRig(
        "rigs:\n  lab:\n    leases: postgres://fiwi@db/fiwi\n    requireLease: true\n    nodes:\n      n1: { transport: local }\n",
      );
      assertEquals([pg.leases, pg.requireLease], [
        "postgres://fiwi@db/fiwi",
        true,
      ]);
    },
  );

  await t.step("a rig's own key wins over its defaults over the file's", () => {
    const rig = parseRig(
      "defaults:\n  leases: /a.db\n  requireLease: true\nrigs:\n  lab:\n    defaults:\n      leases: /b.db\n    leases: /c.db\n    nodes:\n      n1: { transport: local }\n  free:\n    leases: null\n    requireLease: false\n    nodes:\n      n2: { transport: local }\n",
      { name: "lab" },
    );
    assertEquals([rig.leases, rig.requireLease], ["/c.db", true]);
    const free = parseRig(
      "defaults:\n  leases: /a.db\nrigs:\n  free:\n    leases: null\n    nodes:\n      n2: { transport: local }\n",
    );
    assertEquals(free.leases, undefined);
  });

  await t.step("no leases key: no store, no lease", async () => {
    const rig = parseRig(
      "rigs:\n  lab:\n    nodes:\n      n1: { transport: local }\n",
    );
    assertEquals(await rig.leaseStore(), null);
    await assertRejects(
      () => rig.lease("n1", { for: 1_000 }),
      ConfigurationError,
      "has no lease store",
    );
  });

  await t.step("bad values are refused at their line", () => {
    const e = assertThrows(
      () =>
        parseRig(
          "rigs:\n  lab:\n    leases: mysql://db/x\n    nodes:\n      n1: { transport: local }\n",
          { file: "r.yaml" },
        ),
      RigFileError,
    );
    assertEquals([e.line, e.column], [3, 13]);
    assertThrows(
      () =>
        parseRig(
          "rigs:\n  lab:\n    requireLease: yes please\n    leases: /x.db\n    nodes:\n      n1: { transport: local }\n",
        ),
      RigFileError,
      "use true or false",
    );
    assertThrows(
      () =>
        parseRig(
          "rigs:\n  lab:\n    requireLease: true\n    nodes:\n      n1: { transport: local }\n",
        ),
      RigFileError,
      "names no lease store",
    );
    assertThrows(
      () =>
        parseRig(
          "rigs:\n  lab:\n    nodes:\n      n1: { transport: local, leases: /x.db }\n",
        ),
      RigFileError,
      'Unknown key "leases" in node "n1"',
    );
  });
});

Deno.test("rig.lease() takes nodes by pattern in the rig's store; rig.close() closes it", async () => {
  const { dir, file } = await tempDb();
  try {
    const yaml =
      `rigs:\n  lab:\n    leases: ${file}\n    nodes:\n      n1: { transport: local, groups: [duts] }\n      n2: { transport: local, groups: [duts] }\n`;
    const rig = parseRig(yaml);
    const other = parseRig(yaml);
    let store;
    try {
      const lease = await rig.lease("@duts", { for: 60_000, note: "flash" });
      assertEquals(lease.nodes, ["n1", "n2"]);
      store = await rig.leaseStore();
      assert(store !== null && store === await rig.leaseStore());
      const e: LeaseHeldError = await assertRejects(
        () => other.lease([rig.nodes[1]], { for: 1_000 }),
        LeaseHeldError,
      );
      assertEquals(e.holders[0].note, "flash");
      await lease.drop();
    } finally {
      await rig.close();
      await other.close();
    }
    await assertRejects(() => store!.list(), ConfigurationError, "is closed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rigTest() holds a lease on its nodes while it runs, and drops it", async () => {
  const { dir, file } = await tempDb();
  try {
    const rigFile = `${dir}/rigs.yaml`;
    await Deno.writeTextFile(
      rigFile,
      `rigs:\n  lab:\n    leases: leases.db\n    nodes:\n      n1: { transport: local }\n`,
    );
    const testFile = `${dir}/leased_test.ts`;
    await Deno.writeTextFile(
      testFile,
      `import { rigTest } from ${JSON.stringify(MOD)};
      rigTest({ name: "leased", timeout: 5000, fn: async ({ rig }) => {
        const store = (await rig.leaseStore())!;
        const { leases } = await store.list();
        if (leases.length !== 1 || leases[0].nodes[0] !== "n1" || !leases[0].mine) {
          throw new Error("no lease: " + JSON.stringify(leases));
        }
        console.log("NOTE " + leases[0].note);
      }});`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--config", CONFIG, "-A", testFile],
      env: { FIWI_RIG: rigFile },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert(out.success, text + new TextDecoder().decode(out.stderr));
    assert(text.includes('NOTE rigTest "leased"'), text);
    await using store = await openLeaseStore(file);
    assertEquals(
      (await store.history()).map((e) => e.kind),
      ["take", "drop"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
