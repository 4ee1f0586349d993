// The state store (src/state/): each record kind written and read back,
// batching off the caller's path, two processes writing one file at once in
// WAL mode, a lock held by another process, a full disk, retention by age
// and size, the file's privacy (0600 in 0700, no links, no other owner), a
// corrupt or unwritable file in one line, and the sample value parser.
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
  defaultStatePath,
  parseRig,
  parseSampleValue,
  RigFileError,
  type SampleRecord,
  StateStore,
} from "../mod.ts";
import { BatchWriter } from "../src/state/_batch_writer.ts";
import { usedBytes } from "../src/state/_retention.ts";
import { Statements } from "../src/state/_sql.ts";

const FIXTURE = new URL("./fixtures/state_writer.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_state_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sample(
  n: number,
  more: Partial<SampleRecord> = {},
): Omit<SampleRecord, "rowId"> {
  return {
    invocationId: "inv1",
    node: `n${n % 4}`,
    command: "cat /proc/loadavg",
    tick: n,
    at: new Date(),
    output: `${n} load`,
    value: n,
    ...more,
  };
}

const start = (id: string, startedAt = new Date()) => ({
  id,
  subcommand: "run",
  command: "uptime",
  nodes: "n[1-3]",
  user: "me@host",
  startedAt,
});

/** One error line: a message without a line break, naming `path`. */
async function oneLine(open: Promise<unknown>, path: string, re: RegExp) {
  const e = await assertRejects(() => open, ConfigurationError);
  assert(!e.message.includes("\n"), e.message);
  assert(e.message.includes(`"${path}"`), e.message);
  assertMatch(e.message, re);
}

Deno.test("StateStore writes and reads back invocations, outcomes and samples", async () => {
  await withDir(async (dir) => {
    await using store = await StateStore.open(`${dir}/state.db`);
    const t0 = new Date(Date.now() - 60_000);
    store.startInvocation(start("inv1", t0));
    store.startInvocation(start("inv2"));
    const outcome = (node: string, outcome: string, code: number | null) => ({
      invocationId: "inv1",
      node,
      outcome,
      code,
      durationMs: 12.5,
      bytes: 42,
      at: new Date(),
    });
    store.recordOutcome(outcome("n1", "exit 0", 0));
    store.recordOutcome(outcome("n2", "exit 3", 3));
    store.recordOutcome(outcome("n3", "unreachable", 255));
    store.recordSample(sample(1, { node: "n1", value: null, output: "up" }));
    store.recordSample(sample(2, { node: "n2" }));
    store.endInvocation("inv1", 1, new Date(t0.getTime() + 5000));
    await store.flush();

    const [newest, older] = store.invocations();
    assertEquals(newest.id, "inv2", "newest first");
    assertEquals([newest.endedAt, newest.exitCode], [null, null]);
    const { rowId: _, ...inv1 } = older;
    assertEquals(inv1, {
      ...start("inv1", t0),
      endedAt: new Date(t0.getTime() + 5000),
      exitCode: 1,
      ok: 1,
      failed: 2,
    });
    const one = store.invocation("inv1")!;
    assertEquals(one.invocation, older);
    assertEquals(one.outcomes.map((o) => [o.node, o.outcome, o.code]), [
      ["n1", "exit 0", 0],
      ["n2", "exit 3", 3],
      ["n3", "unreachable", 255],
    ]);
    assertEquals([one.outcomes[0].durationMs, one.outcomes[0].bytes], [
      12.5,
      42,
    ]);
    assertEquals(store.invocation("nope"), null);

    const samples = store.samples();
    assertEquals(samples.map((s) => [s.node, s.output, s.value]), [
      ["n1", "up", null],
      ["n2", "2 load", 2],
    ]);
    assert(samples[0].rowId < samples[1].rowId);
    assertEquals(store.samples({ nodes: ["n2"] }).length, 1);
    assertEquals(store.samples({ command: "other" }), []);
    assertEquals(store.samples({ afterRowId: samples[0].rowId }), [
      samples[1],
    ]);
    assertEquals(store.samples({ limit: 1 }), [samples[0]]);
    assertEquals(store.samples({ until: new Date(0) }), []);
    assertEquals(store.lastOutcomes().map((o) => o.node), ["n1", "n2", "n3"]);
  });
});

Deno.test("StateStore: afterRowId returns invocations started or changed since, in the order of their changes", async () => {
  await withDir(async (dir) => {
    await using store = await StateStore.open(`${dir}/state.db`);
    store.startInvocation(start("a"));
    store.startInvocation(start("b"));
    await store.flush();
    const seen = Math.max(...store.invocations().map((i) => i.rowId));
    assertEquals(store.invocations({ afterRowId: seen }), []);
    store.endInvocation("a", 0);
    store.startInvocation(start("c"));
    await store.flush();
    const changed = store.invocations({ afterRowId: seen });
    assertEquals(changed.map((i) => [i.id, i.exitCode]), [["a", 0], [
      "c",
      null,
    ]]);
    assertEquals(store.invocations({ limit: 1 }).length, 1);
  });
});

Deno.test("StateStore: lastOutcomes is the latest per node, or every outcome since a time", async () => {
  await withDir(async (dir) => {
    await using store = await StateStore.open(`${dir}/state.db`);
    const hourAgo = new Date(Date.now() - 3_600_000);
    const at = (ms: number) => new Date(hourAgo.getTime() + ms);
    const rec = (node: string, outcome: string, when: Date) =>
      store.recordOutcome({
        invocationId: "i",
        node,
        outcome,
        code: null,
        durationMs: 1,
        bytes: 0,
        at: when,
      });
    rec("n1", "unreachable", at(-60_000));
    rec("n1", "exit 0", at(1000));
    rec("n2", "exit 1", at(2000));
    await store.flush();
    assertEquals(store.lastOutcomes().map((o) => [o.node, o.outcome]), [
      ["n1", "exit 0"],
      ["n2", "exit 1"],
    ]);
    assertEquals(
      store.lastOutcomes({ since: hourAgo }).map((o) => [o.node, o.outcome]),
      [["n1", "exit 0"], ["n2", "exit 1"]],
    );
  });
});

Deno.test("StateStore batches: nothing is written on the caller's path, all of it in a few transactions by flush() or the timer", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = await StateStore.open(path, { flushInterval: 50 });
    const reader = new DatabaseSync(path, { readOnly: true });
    const count = () =>
      Number(
        (reader.prepare("SELECT count(*) AS n FROM samples").get() as {
          n: number;
        }).n,
      );
    try {
      const t = performance.now();
      for (let i = 0; i < 10_000; i++) store.recordSample(sample(i));
      const queued = performance.now() - t;
      assertEquals(count(), 0, "recording returns before any write");
      assert(queued < 500, `10k records queued in ${queued} ms`);
      await store.flush();
      assertEquals(count(), 10_000);
      store.recordSample(sample(1));
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(count(), 10_001, "the timer writes without flush()");
    } finally {
      reader.close();
    }
  });
});

Deno.test("BatchWriter writes what is queued as one batch, a full batch at once, in order", async () => {
  const batches: number[][] = [];
  const writer = new BatchWriter<number>({
    write: (b) => void batches.push([...b]),
    flushInterval: 10_000,
    batchSize: 100,
    lockTimeout: 1000,
    maxQueued: 1000,
    onDrop: () => {},
    onResume: () => {},
  });
  for (let i = 0; i < 250; i++) writer.push(i);
  await writer.flush();
  assertEquals(batches.map((b) => b.length), [100, 100, 50]);
  assertEquals(batches.flat(), [...Array(250).keys()]);
  writer.push(1);
  writer.push(2);
  await writer.close();
  assertEquals(batches.at(-1), [1, 2], "one transaction for what queued");
});

Deno.test("BatchWriter on a full disk: drops with a count, warns once, writes again when there is room", async () => {
  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t (x TEXT)");
  const pages = Number(
    (db.prepare("PRAGMA page_count").get() as { page_count: number })
      .page_count,
  );
  db.exec(`PRAGMA max_page_count = ${pages + 2}`);
  const warned: string[] = [];
  const resumed: number[] = [];
  const writer = new BatchWriter<string>({
    write: (batch) => {
      db.exec("BEGIN");
      try {
        for (const x of batch) db.prepare("INSERT INTO t VALUES (?)").run(x);
        db.exec("COMMIT");
      } catch (e) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw e;
      }
    },
    flushInterval: 5,
    batchSize: 10,
    lockTimeout: 1000,
    maxQueued: 1000,
    onDrop: (reason) => warned.push(reason),
    onResume: (n) => resumed.push(n),
  });
  const big = "x".repeat(4000);
  for (let i = 0; i < 30; i++) writer.push(big); // 3 batches of 40 kB: full
  await writer.flush();
  assertEquals(writer.dropped, 30);
  assertEquals(warned, ["the disk is full"], "told once");
  db.exec("PRAGMA max_page_count = 100000");
  writer.push("small");
  await writer.close();
  assertEquals(resumed, [30]);
  assertEquals(
    (db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n,
    1,
  );
  db.close();
});

Deno.test("StateStore: two processes write one file at once (WAL), nothing lost", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = await StateStore.open(path, { flushInterval: 5 });
    const other = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        CONFIG,
        FIXTURE,
        "write",
        path,
        "2000",
        "other",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    for (let i = 1; i <= 2000; i++) {
      store.recordSample(sample(i, { node: "self", invocationId: "self" }));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    const out = await other.output();
    assertEquals(
      new TextDecoder().decode(out.stdout).trim(),
      "wrote 2000",
      new TextDecoder().decode(out.stderr),
    );
    await store.flush();
    assertEquals(store.samples({ nodes: ["self"] }).length, 2000);
    assertEquals(store.samples({ nodes: ["other"] }).length, 2000);
    const ids = store.samples().map((s) => s.rowId);
    assertEquals(new Set(ids).size, 4000);
    const db = new DatabaseSync(path, { readOnly: true });
    const mode = db.prepare("PRAGMA journal_mode").get() as {
      journal_mode: string;
    };
    db.close();
    assertEquals(mode.journal_mode, "wal");
  });
});

/** Start a process holding the write lock of `path` for `ms`; resolves once it holds it. */
async function holdLock(path: string, ms: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, FIXTURE, "lock", path, String(ms)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assertEquals(value?.trim(), "locked");
  return {
    async [Symbol.asyncDispose]() {
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test("StateStore: a file another process holds locked is waited for without blocking the event loop", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = await StateStore.open(path, { flushInterval: 5 });
    await using _lock = await holdLock(path, 1500);
    let longest = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 10);
    try {
      const t = performance.now();
      store.recordSample(sample(1));
      await store.flush();
      const waited = performance.now() - t;
      assert(waited >= 500, `flush waited for the lock: ${waited} ms`);
      // Blocked inside SQLite, it would stall for the whole 1.5 s.
      assert(longest < 500, `event loop stalled ${longest} ms`);
    } finally {
      clearInterval(ticker);
    }
    assertEquals(store.samples().length, 1);
    assertEquals(store.dropped, 0);
  });
});

Deno.test("StateStore: an existing store opens at once while another process holds it locked", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await (await StateStore.open(path)).close();
    await using _lock = await holdLock(path, 3000);
    const t = performance.now();
    await using store = await StateStore.open(path, { lockTimeout: 2000 });
    const took = performance.now() - t;
    assert(took < 1000, `open took ${took} ms`);
    assertEquals(store.invocations(), []);
  });
});

Deno.test("StateStore: a lock held past lockTimeout drops the batch with a count and one warning", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const warnings: string[] = [];
    await using store = await StateStore.open(path, {
      flushInterval: 5,
      lockTimeout: 200,
      onWarning: (line) => warnings.push(line),
    });
    {
      await using _lock = await holdLock(path, 1000);
      store.recordSample(sample(1));
      store.recordSample(sample(2));
      await store.flush();
      store.recordSample(sample(3));
      await store.flush();
    }
    assertEquals(store.dropped, 3);
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertMatch(warnings[0], /stayed locked for over 200 ms/);
    store.recordSample(sample(4));
    await store.flush();
    assertEquals(store.samples().map((s) => s.tick), [4], "writes again");
  });
});

Deno.test("StateStore retention: rows older than retentionDays go at open", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const old = new Date(Date.now() - 40 * 86_400_000);
    {
      await using store = await StateStore.open(path);
      store.startInvocation(start("old", old));
      store.recordOutcome({
        invocationId: "old",
        node: "n1",
        outcome: "exit 0",
        code: 0,
        durationMs: 1,
        bytes: 0,
        at: old,
      });
      store.recordSample(sample(1, { at: old }));
      store.startInvocation(start("new"));
      store.recordSample(sample(2));
      await store.flush();
      assertEquals(store.samples().length, 2);
    }
    await using store = await StateStore.open(path, { retentionDays: 30 });
    assertEquals(store.invocations().map((i) => i.id), ["new"]);
    assertEquals(store.samples().map((s) => s.tick), [2]);
    assertEquals(store.lastOutcomes(), []);
  });
});

Deno.test("StateStore retention: past maxBytes the oldest samples go, and the file shrinks", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const output = "x".repeat(500);
    {
      await using store = await StateStore.open(path);
      for (let i = 1; i <= 4000; i++) {
        store.recordSample(sample(i, { output }));
      }
      await store.flush();
    }
    const before = (await Deno.stat(path)).size;
    assert(before > 2_000_000, `${before}`);
    const maxBytes = 512 * 1024;
    await using store = await StateStore.open(path, { maxBytes });
    const left = store.samples();
    assert(left.length > 100 && left.length < 4000, `${left.length} left`);
    assertEquals(left.at(-1)!.tick, 4000, "the newest stay");
    assertEquals(left[0].tick, 4001 - left.length, "the oldest went");
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      assert(usedBytes(new Statements(db)) <= maxBytes);
    } finally {
      db.close();
    }
    await store.close();
    const after = (await Deno.stat(path)).size;
    assert(after <= maxBytes * 1.1, `file ${after} bytes`);
  });
});

Deno.test("StateStore files are private: created 0600 in a 0700 directory", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/new/fiwi/state.db`;
    await using store = await StateStore.open(path);
    store.recordSample(sample(1));
    await store.flush();
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${path}-wal`)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${dir}/new/fiwi`)).mode! & 0o777, 0o700);
  });
});

Deno.test("StateStore refuses a file another user could read or redirect, in one line", async (t) => {
  await withDir(async (dir) => {
    await t.step("a symbolic link planted at the path", async () => {
      const target = `${dir}/elsewhere.db`;
      await Deno.writeTextFile(target, "");
      await Deno.chmod(target, 0o600);
      await Deno.symlink(target, `${dir}/link.db`);
      await oneLine(
        StateStore.open(`${dir}/link.db`),
        `${dir}/link.db`,
        /is a symbolic link, which fiwi does not follow/,
      );
      assertEquals(await Deno.readTextFile(target), "", "nothing followed");
    });
    await t.step("a file group or others may read", async () => {
      const path = `${dir}/open.db`;
      await Deno.writeTextFile(path, "");
      await Deno.chmod(path, 0o644);
      await oneLine(
        StateStore.open(path),
        path,
        /open to group or others \(mode 0644\): run chmod 600/,
      );
    });
    await t.step({
      name: "a file of another user",
      ignore: Deno.uid() !== 0, // only root can give a file away
      fn: async () => {
        const path = `${dir}/theirs.db`;
        await Deno.writeTextFile(path, "", { mode: 0o600 });
        await Deno.chown(path, 65534, 65534);
        await oneLine(StateStore.open(path), path, /belongs to uid 65534/);
      },
    });
    await t.step("a directory others may write to", async () => {
      const shared = `${dir}/shared`;
      await Deno.mkdir(shared);
      await Deno.chmod(shared, 0o777);
      await oneLine(
        StateStore.open(`${shared}/state.db`),
        `${shared}/state.db`,
        /which group or others may write to \(mode 0777\)/,
      );
    });
  });
});

Deno.test("StateStore: a corrupt, unwritable or newer file is one line", async (t) => {
  await withDir(async (dir) => {
    await t.step("corrupt", async () => {
      const path = `${dir}/corrupt.db`;
      await Deno.writeTextFile(path, "not sqlite at all\n".repeat(500), {
        mode: 0o600,
      });
      await oneLine(
        StateStore.open(path),
        path,
        /is corrupt or not a SQLite database: move it away, or give --db another file/,
      );
    });
    await t.step("unwritable: its directory cannot be made", async () => {
      await Deno.writeTextFile(`${dir}/plain`, "");
      const path = `${dir}/plain/fiwi/state.db`;
      await oneLine(
        StateStore.open(path),
        path,
        /^Cannot (use|create) the directory ".*\/plain\/fiwi" for state store/,
      );
    });
    await t.step("unwritable: the path is a directory", async () => {
      await Deno.mkdir(`${dir}/adir.db`, { mode: 0o700 });
      await oneLine(
        StateStore.open(`${dir}/adir.db`),
        `${dir}/adir.db`,
        /is not a regular file/,
      );
    });
    await t.step("written by a newer fiwi", async () => {
      const path = `${dir}/newer.db`;
      await (await StateStore.open(path)).close();
      const db = new DatabaseSync(path);
      db.exec("PRAGMA user_version = 99");
      db.close();
      await oneLine(StateStore.open(path), path, /schema version 99, newer/);
    });
  });
});

Deno.test("StateStore options are checked up front", async () => {
  await assertRejects(
    () => StateStore.open("/nonexistent/x.db", { retentionDays: 0 }),
    RangeError,
    "retentionDays",
  );
  await assertRejects(
    () => StateStore.open("/nonexistent/x.db", { maxBytes: -1 }),
    RangeError,
    "maxBytes",
  );
});

Deno.test("defaultStatePath: XDG_STATE_HOME, else ~/.local/state, else an error", () => {
  const saved = ["XDG_STATE_HOME", "HOME"].map((k) => [k, Deno.env.get(k)]);
  try {
    Deno.env.set("XDG_STATE_HOME", "/x/state");
    assertEquals(defaultStatePath(), "/x/state/fiwi/state.db");
    Deno.env.set("XDG_STATE_HOME", "relative");
    Deno.env.set("HOME", "/home/me");
    assertEquals(defaultStatePath(), "/home/me/.local/state/fiwi/state.db");
    Deno.env.delete("XDG_STATE_HOME");
    Deno.env.delete("HOME");
    assertThrows(() => defaultStatePath(), ConfigurationError, "--db FILE");
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) Deno.env.delete(k!);
      else Deno.env.set(k!, v);
    }
  }
});

Deno.test("parseSampleValue: the first number, or what --value picks", () => {
  const table: [string, RegExp | undefined, number | null][] = [
    ["42", undefined, 42],
    ["load average: 0.52, 0.58, 0.59", undefined, 0.52],
    ["temp=-3.5C", undefined, -3.5],
    ["cpu-7 idle", undefined, 7],
    ["  +12 dB", undefined, 12],
    ["1.5e3 ops", undefined, 1500],
    [".25", undefined, 0.25],
    ["temp45", undefined, 45],
    ["link up", undefined, null],
    ["", undefined, null],
    ["cpu 3 load=17", /load=(\d+)/, 17],
    ["load=17", /load=\d+/, 17],
    ["x=1 y=2", /y=(?<value>\d)|x=(\d)/, 1],
    ["y=2", /y=(?<value>\d)/, 2],
    ["state: on", /state: (\w+)/, null],
    ["used 42%", /used (\S+)/, 42],
    ["nothing", /load=(\d+)/, null],
    ["a=1 a=2", /a=(\d)/g, 1],
  ];
  for (const [output, pattern, want] of table) {
    assertEquals(
      parseSampleValue(output, pattern),
      want,
      `${output} ${pattern}`,
    );
  }
  const g = /a=(\d)/g;
  assertEquals([parseSampleValue("a=5", g), parseSampleValue("a=5", g)], [
    5,
    5,
  ]);
});

Deno.test("the rig file's state: key: a rig's over the defaults', relative to the rig file", () => {
  const rig = (own: string, defaults = "user: me") =>
    parseRig(
      `defaults:\n  ${defaults}\nrigs:\n  a:\n${own}    nodes:\n      n1: { transport: local }\n`,
      { file: "/lab/rigs.yaml" },
    ).state;
  assertEquals(rig("    state: run/state.db\n"), "/lab/run/state.db");
  assertEquals(rig("", "state: /var/fiwi.db"), "/var/fiwi.db");
  assertEquals(
    rig("    state: mine.db\n", "state: /var/fiwi.db"),
    "/lab/mine.db",
  );
  assertEquals(rig("    state: null\n", "state: /var/fiwi.db"), undefined);
  assertEquals(rig(""), undefined);
  assertThrows(
    () => rig("    stat: x.db\n"),
    RigFileError,
    'did you mean "state"?',
  );
});
