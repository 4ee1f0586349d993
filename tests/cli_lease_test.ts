// `fiwi lease` and the lease check of every subcommand that touches nodes,
// through the real command line on a SQLite store in a temp dir: take,
// list, renew, drop and history in text and --json; the owner token (the
// user's file, or FIWI_LEASE_TOKEN); `run`, `push` and `power` on a node
// another owner holds run nothing on any node and exit 2 with one line;
// --force runs and the history names both owners; the owner's own token
// passes; requireLease refuses a node without a lease; `poll --lease`
// keeps its lease past its duration and drops it at the end.
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
} from "jsr:@std/assert@^1";
import type { LeaseInfo, LeaseWaiter } from "../mod.ts";
import {
  clockText,
  describeHolders,
  printable,
  untilText,
  userToken,
} from "../scripts/_lease.ts";
import { type Finished, fiwi, startFiwi } from "./_cli_harness.ts";
import { type LoopbackRig, skipHere, startLoopbackRig } from "./_loopback.ts";
import { startPowerLab } from "./_power_lab.ts";

const HOST = Deno.hostname();
/** The two owners of these tests: each a user name and an owner token. */
const ALICE = { USER: "alice", FIWI_LEASE_TOKEN: "alice-token", NO_COLOR: "1" };
const BOB = { USER: "bob", FIWI_LEASE_TOKEN: "bob-token", NO_COLOR: "1" };
const UNTIL = String.raw`\d\d:\d\d`;

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_lease_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Exit 2, nothing on stdout, one line on stderr matching `want`. */
function refused(r: Finished, want: RegExp): void {
  assertEquals([r.code, r.stdout], [2, ""], r.stderr);
  assertEquals(r.stderr.split("\n").length, 2, r.stderr);
  assertMatch(r.stderr, want);
}

function records(r: Finished): Record<string, unknown>[] {
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l));
}

function lease(over: Partial<LeaseInfo>): LeaseInfo {
  return {
    id: "1",
    nodes: ["dut3"],
    holder: "alice@ctl1",
    note: "",
    takenAt: new Date(2025, 5, 1, 12, 0),
    expiresAt: new Date(2025, 5, 1, 14, 31, 20),
    mine: false,
    ...over,
  };
}

Deno.test("untilText() rounds up to the minute and names the day when it is not today", () => {
  const now = new Date(2025, 5, 1, 9, 0);
  const table: [Date, string][] = [
    [new Date(2025, 5, 1, 14, 32), "14:32"],
    [new Date(2025, 5, 1, 14, 31, 0, 1), "14:32"],
    [new Date(2025, 5, 1, 23, 59, 30), "2025-06-02 00:00"],
    [new Date(2025, 6, 4, 8, 5), "2025-07-04 08:05"],
  ];
  for (const [at, want] of table) assertEquals(untilText(at, now), want);
  assertEquals(clockText(new Date(2025, 5, 1, 8, 59, 59), now), "08:59");
});

Deno.test("describeHolders() names, on one line, each lease's nodes among those asked, its holder, expiry and note", () => {
  const now = new Date(2025, 5, 1, 9, 0);
  const table: [LeaseInfo[], string[], string][] = [
    [
      [lease({ note: "debugging wifi" })],
      ["dut3"],
      'Node "dut3" is leased by alice@ctl1 until 14:32 ("debugging wifi")',
    ],
    [
      [lease({ nodes: ["dut3", "dut4", "dut9"] })],
      ["dut1", "dut3", "dut4"],
      'Nodes "dut[3-4]" are leased by alice@ctl1 until 14:32',
    ],
    [
      [
        lease({}),
        lease({ nodes: ["dut5", "dut6"], holder: "bob@ctl2", note: "a\nb" }),
      ],
      ["dut3", "dut5", "dut6"],
      'Node "dut3" is leased by alice@ctl1 until 14:32, nodes "dut[5-6]" by bob@ctl2 until 14:32 ("a\\nb")',
    ],
    [
      [lease({ holder: "ev\x1b[2Jil", note: "\x9b" })],
      ["dut3"],
      'Node "dut3" is leased by ev\\u001b[2Jil until 14:32 ("\\u009b")',
    ],
  ];
  for (const [holders, names, want] of table) {
    assertEquals(describeHolders(holders, names, now), want);
  }
  const waiter: LeaseWaiter = {
    id: "w",
    nodes: ["dut3"],
    holder: "bob@ctl2",
    note: "",
    since: new Date(2025, 5, 1, 8, 58, 40),
  };
  assertEquals(
    describeHolders([], ["dut3"], now, [waiter]),
    'Node "dut3" is promised to bob@ctl2, waiting since 08:58',
  );
  assertEquals(printable("ok\ttab"), "ok\\u0009tab");
});

Deno.test("userToken() makes one private token per user, the same for fiwis starting at once, and keeps it private", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/state/fiwi/lease-token`;
    const tokens = await Promise.all(
      Array.from({ length: 8 }, () => userToken(path)),
    );
    assertEquals(new Set(tokens).size, 1);
    assertMatch(tokens[0], /^[0-9a-f]{64}$/);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${dir}/state/fiwi`)).mode! & 0o777, 0o700);
    assertEquals([...Deno.readDirSync(`${dir}/state/fiwi`)].length, 1);
    await Deno.chmod(path, 0o644);
    assertEquals(await userToken(path), tokens[0]);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

const LOCAL_RIG = (extra = "") =>
  "rigs:\n  here:\n    leases: leases.db\n" + extra + "    nodes:\n" +
  "      a: { transport: local }\n      b: { transport: local }\n" +
  "      c: { transport: local }\n";

Deno.test("fiwi lease take, list, renew, drop and history, in text and --json, by owner token", async (t) => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, LOCAL_RIG());
    // Bob's token is his own file, made by his first take.
    const state = `${cwd}/state`;
    const bob = { USER: "bob", XDG_STATE_HOME: state, NO_COLOR: "1" };
    const asBob = (args: string[]) =>
      fiwi(["lease", ...args], { cwd, env: bob });
    const asAlice = (args: string[]) =>
      fiwi(["lease", ...args], { cwd, env: ALICE });
    let id = "";

    await t.step(
      "take prints the id and the expiry; the token file is 0600",
      async () => {
        const r = await asBob([
          "take",
          "-w",
          "a,b",
          "--for",
          "2h",
          "--note",
          "debugging wifi",
        ]);
        assertEquals(r.code, 0, r.stderr);
        const m =
          /^([0-9a-f]+) {2}a,b {2}until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\n$/
            .exec(r.stdout);
        if (!m) throw new Error(`take printed ${JSON.stringify(r.stdout)}`);
        id = m[1];
        const until = new Date(m[2].replace(" ", "T")).getTime();
        assert(Math.abs(until - (Date.now() + 2 * 3600_000)) < 60_000, m[2]);
        const file = await Deno.stat(`${state}/fiwi/lease-token`);
        assertEquals(file.mode! & 0o777, 0o600);
      },
    );

    await t.step(
      "list shows every owner's leases; mine only by token",
      async () => {
        const text = await asBob(["list"]);
        assertEquals(text.code, 0, text.stderr);
        assertMatch(
          text.stdout,
          new RegExp(
            `^ID +NODES +HOLDER +UNTIL +NOTE\n${id}  a,b +bob@${HOST} \\(you\\) +\\S+ \\S+ +debugging wifi\n$`,
          ),
        );
        const [held, summary] = records(await asAlice(["list", "--json"]));
        assertEquals(
          [held.state, held.id, held.nodes, held.holder, held.note, held.mine],
          ["held", id, ["a", "b"], `bob@${HOST}`, "debugging wifi", false],
        );
        assertEquals(summary, {
          summary: { store: `${cwd}/leases.db`, leases: 1, waiting: 0 },
        });
        const [own] = records(await asBob(["list", "--json", "-w", "b"]));
        assertEquals([own.id, own.mine], [id, true]);
        const [none] = records(await asBob(["list", "--json", "-w", "c"]));
        assertEquals(none, {
          summary: { store: `${cwd}/leases.db`, leases: 0, waiting: 0 },
        });
      },
    );

    await t.step(
      "another owner's take is refused in one line; a wait runs out",
      async () => {
        refused(
          await asAlice(["take", "-w", "b,c", "--for", "1m"]),
          new RegExp(
            `^lease: Node "b" is leased by bob@${HOST} until ${UNTIL} \\("debugging wifi"\\): give --wait DURATION to queue, or --force\n$`,
          ),
        );
        const waited = await asAlice([
          "take",
          "-w",
          "b",
          "--for",
          "1m",
          "--wait",
          "300ms",
        ]);
        assertEquals([waited.code, waited.stdout], [2, ""]);
        assertMatch(
          waited.stderr,
          /^Waiting up to 300ms: Node "b" is leased by bob@/,
        );
        assertMatch(waited.stderr, /: still held after --wait 300ms\n$/);
      },
    );

    await t.step(
      "renew extends from now: by --for, else by what it was last given",
      async () => {
        const [r] = records(
          await asBob(["renew", id, "--for", "3h", "--json"]),
        );
        const until = Date.parse(String(r.expiresAt));
        assert(Math.abs(until - (Date.now() + 3 * 3600_000)) < 60_000);
        const again = records(await asBob(["renew", "--json"]));
        assertEquals(again.length, 2);
        assertEquals(again[1], { summary: { renewed: 1 } });
        const later = Date.parse(String(again[0].expiresAt));
        assert(later >= until && later - until < 60_000, `${later} ${until}`);
        refused(
          await asAlice(["renew", id]),
          new RegExp(
            `^lease: Nodes "a,b" are leased by bob@${HOST} until .*: lease "${id}" is not yours\n$`,
          ),
        );
      },
    );

    await t.step("drop ends only the owner's leases", async () => {
      const nothing = await asAlice(["drop"]);
      assertEquals([nothing.code, nothing.stderr], [
        0,
        "No lease of yours to drop\n",
      ]);
      refused(
        await asAlice(["drop", id]),
        new RegExp(`lease "${id}" is not yours\n$`),
      );
      refused(
        await asBob(["drop", "feedface"]),
        /^lease: No lease "feedface" is held \(expired, dropped, or never taken\): see fiwi lease list\n$/,
      );
      const [dropped, summary] = records(
        await asBob(["drop", "-w", "a", "--json"]),
      );
      assertEquals([dropped.id, dropped.dropped], [id, true]);
      assertEquals(summary, { summary: { dropped: 1 } });
      const empty = await asBob(["list"]);
      assertEquals([empty.code, empty.stdout, empty.stderr], [
        0,
        "",
        `No leases in ${cwd}/leases.db\n`,
      ]);
    });

    await t.step("a waiter gets the nodes when the lease expires", async () => {
      const short = await asBob(["take", "-w", "c", "--for", "1s"]);
      assertEquals(short.code, 0, short.stderr);
      const t0 = Date.now();
      const [got] = records(
        await asAlice([
          "take",
          "-w",
          "c",
          "--for",
          "1m",
          "--wait",
          "20s",
          "--json",
        ]),
      );
      assertEquals([got.nodes, got.holder], [["c"], `alice@${HOST}`]);
      assert(Date.now() - t0 < 10_000);
      assertEquals((await asAlice(["drop"])).code, 0);
    });

    await t.step(
      "history keeps every take, renew, drop and expiry",
      async () => {
        const events = records(await asBob(["history", "--json", "-w", "a"]));
        assertEquals(events.map((e) => [e.kind, e.lease]), [
          ["take", id],
          ["renew", id],
          ["renew", id],
          ["drop", id],
          [undefined, undefined],
        ]);
        assertEquals(events.at(-1), { summary: { events: 4 } });
        const all = records(
          await asBob(["history", "--json", "--since", "1h"]),
        );
        assertEquals(
          all.slice(4, -1).map((e) => [e.kind, e.holder]),
          [
            ["take", `bob@${HOST}`],
            ["expire", `bob@${HOST}`],
            ["take", `alice@${HOST}`],
            ["drop", `alice@${HOST}`],
          ],
        );
        const text = await asBob(["history", "-w", "b"]);
        assertMatch(text.stdout, /^TIME +EVENT +ID +NODES +BY +NOTE\n/);
        assertMatch(text.stdout, new RegExp(`  take  +${id}  a,b  +bob@`));
      },
    );

    await t.step("usage errors are one line", async () => {
      refused(
        await asBob(["take", "-w", "a"]),
        /^lease: Give how long the lease lasts: fiwi lease take -w PATTERN --for DURATION \(e\.g\. "2h"\)\n$/,
      );
      refused(
        await asBob(["take", "--for", "1h"]),
        /^lease: Give the nodes to lease: fiwi lease take -w PATTERN --for DURATION\n$/,
      );
      refused(
        await asBob(["steal"]),
        /^lease: Unknown action "steal": use "take", "drop", "renew", "list" or "history"\n$/,
      );
      await Deno.writeTextFile(
        `${cwd}/bare.yaml`,
        "rigs:\n  bare:\n    nodes:\n      a: { transport: local }\n",
      );
      refused(
        await asBob(["list", "--rig", "bare.yaml"]),
        /^lease: Rig "bare" has no lease store: set "leases:" \(a SQLite file or a postgres:\/\/ URL\) in .*bare\.yaml\n$/,
      );
    });
  });
});

Deno.test("requireLease refuses a node without a lease of the owner; nodes checks nothing", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      LOCAL_RIG("    requireLease: true\n"),
    );
    const o = { cwd, env: ALICE };
    const touch = ["run", "--no-log", "-w", "a,b", `touch ${cwd}/ran.{name}`];
    refused(
      await fiwi(touch, o),
      /^run: Nodes "a,b" have no lease of yours and rig "here" requires one: fiwi lease take -w 'a,b' --for DURATION, or pass --force\n$/,
    );
    assertEquals(
      (await fiwi(["lease", "take", "-w", "a", "--for", "1m"], o)).code,
      0,
    );
    refused(await fiwi(touch, o), /^run: Node "b" has no lease of yours/);
    assertEquals(
      [...Deno.readDirSync(cwd)].filter((e) => e.name.startsWith("ran.")),
      [],
    );
    const nodes = await fiwi(["nodes", "-w", "a,b"], { cwd, env: BOB });
    assertEquals([nodes.code, nodes.stdout], [0, "a\nb\n"], nodes.stderr);
    const ran = await fiwi([
      "run",
      "--no-log",
      "-w",
      "a",
      `touch ${cwd}/ran.{name}`,
    ], o);
    assertEquals(ran.code, 0, ran.stderr);
    assert(await Deno.stat(`${cwd}/ran.a`));
    const forced = await fiwi([
      ...touch.slice(0, 2),
      "--force",
      ...touch.slice(2),
    ], o);
    assertEquals(forced.code, 0, forced.stderr);
    assertMatch(
      forced.stderr,
      /^run: Forced: "b" without a lease \(recorded\)\n/,
    );
    const history = records(await fiwi(["lease", "history", "--json"], o));
    assertEquals(
      history.filter((e) => e.kind === "force").map((
        e,
      ) => [e.nodes, e.holder, e.overridden]),
      [[["b"], `alice@${HOST}`, []]],
    );
  });
});

Deno.test("poll --lease 1s keeps its lease past 1 s, drops it at the end, and loses it within 1 s once killed", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, LOCAL_RIG());
    const poll = (count: string[]) =>
      startFiwi(
        [
          "poll",
          "--no-log",
          "--lease",
          "1s",
          "-w",
          "c",
          "-i",
          "200ms",
          ...count,
          "--json",
          "true",
        ],
        { cwd, env: ALICE },
      );
    const list = async () =>
      records(await fiwi(["lease", "list", "--json"], { cwd, env: BOB }));
    const p = poll(["-n", "25"]);
    await p.waitFor(/(.*\n){3}/);
    await new Promise((r) => setTimeout(r, 1000));
    const [held] = await list();
    assertEquals([held.nodes, held.holder, held.mine], [
      ["c"],
      `alice@${HOST}`,
      false,
    ]);
    assertGreater(
      Date.parse(String(held.expiresAt)) - Date.parse(String(held.takenAt)),
      1000,
    );
    refused(
      await fiwi(["run", "--no-log", "-w", "c", "true"], { cwd, env: BOB }),
      new RegExp(
        `^run: Node "c" is leased by alice@${HOST} until ${UNTIL}: wait, or pass --force\n$`,
      ),
    );
    const done = await p.done;
    assertEquals(done.code, 0, done.stderr);
    assertEquals((await list()).length, 1);
    const kinds = records(
      await fiwi(["lease", "history", "--json"], { cwd, env: BOB }),
    )
      .map((e) => e.kind).filter((k) => k !== undefined);
    assertEquals([kinds[0], kinds.at(-1)], ["take", "drop"]);
    assertGreater(kinds.filter((k) => k === "renew").length, 2);

    const forever = poll([]);
    await forever.waitFor(/\n/);
    await new Promise((r) => setTimeout(r, 1200));
    forever.child.kill("SIGKILL");
    const killed = Date.now();
    await forever.done;
    const [got] = records(
      await fiwi([
        "lease",
        "take",
        "-w",
        "c",
        "--for",
        "1m",
        "--wait",
        "10s",
        "--json",
      ], { cwd, env: BOB }),
    );
    assertEquals(got.holder, `bob@${HOST}`);
    // Its last renewal was at most 1 s before the kill; the waiter polls
    // every 250 ms at most.
    const after = Date.parse(String(got.takenAt)) - killed;
    assert(after < 1000 + 750, `taken ${after} ms after the kill`);
  });
});

function loopRig(
  rig: LoopbackRig,
  lab: { dutPort: number; tool: (n: "uhubctl") => string },
): string {
  return [
    "rigs:",
    "  lab:",
    "    leases: leases.db",
    `    defaults: { user: ${rig.user}, sshConfig: ${rig.sshConfig} }`,
    "    nodes:",
    `      n1: { host: ${rig.hosts[0]}, port: ${rig.port} }`,
    `      n2: { host: ${rig.hosts[1]}, port: ${rig.port} }`,
    `      dut: { host: 127.0.0.1, port: ${lab.dutPort}, power: { via: n1, tool: uhubctl, id: "1-1", port: 1, command: ${
      lab.tool("uhubctl")
    } } }`,
    "",
  ].join("\n");
}

Deno.test({
  name:
    "run, push and power on a node another owner holds run nothing on any node; --force runs and is recorded with both names",
  ignore: skipHere("fiwi lease enforcement", "node-is-local"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  await using lab = await startPowerLab(rig, {
    dut: { tool: "uhubctl", id: "1-1", port: 1 },
  });
  await lab.setState("uhubctl", ["1-1 1 off"]);
  await Deno.writeTextFile(`${rig.dir}/rigs.yaml`, loopRig(rig, lab));
  const dir = `/tmp/fiwi_lease_${crypto.randomUUID()}`;
  const cm = { FIWI_CONTROL_DIR: `${rig.dir}/cm` };
  const as = (who: Record<string, string>, args: string[]) =>
    fiwi(args, { cwd: rig.dir, env: { ...who, ...cm } });
  const ran = async () =>
    (await rig.sh(`ls ${dir}.* 2>/dev/null`)).stdout.trim().split("\n")
      .filter((l) => l !== "").map((l) => l.slice(dir.length + 1));
  const touch = ["run", "--no-log", "-w", "n1,n2", `touch ${dir}.{name}`];
  const taken = await as(ALICE, [
    "lease",
    "take",
    "-w",
    "n2,dut",
    "--for",
    "10m",
    "--note",
    "debugging wifi",
  ]);
  assertEquals(taken.code, 0, taken.stderr);
  const held = new RegExp(
    `^(run|push|power): Nodes? "(n2|dut)" (is|are) leased by alice@${HOST} until ${UNTIL} \\("debugging wifi"\\): wait, or pass --force\n$`,
  );
  try {
    await t.step("run refuses, before any node runs", async () => {
      refused(await as(BOB, touch), held);
      refused(
        await as(BOB, [...touch.slice(0, 2), "--json", ...touch.slice(2)]),
        held,
      );
      assertEquals(await ran(), []);
    });
    await t.step("push refuses, before any node gets a byte", async () => {
      const src = `${rig.dir}/payload.txt`;
      await Deno.writeTextFile(src, "payload\n");
      refused(
        await as(BOB, ["push", "--no-log", "-w", "n1,n2", src, `${dir}.push`]),
        held,
      );
      assertEquals(await ran(), []);
    });
    await t.step("power refuses, and no switch is touched", async () => {
      refused(await as(BOB, ["power", "on", "-w", "dut", "--no-log"]), held);
      assertEquals(await lab.events(), []);
      assertEquals(await lab.dutRunning(), false);
    });
    await t.step("the holder's own token passes", async () => {
      const own = await as(ALICE, [
        "run",
        "--no-log",
        "-w",
        "n2",
        `touch ${dir}.{name}`,
      ]);
      assertEquals(own.code, 0, own.stderr);
      assertEquals(await ran(), ["n2"]);
      const status = await as(ALICE, [
        "power",
        "status",
        "-w",
        "dut",
        "--no-log",
      ]);
      assertEquals(
        [status.code, status.stdout],
        [0, "dut  off\n"],
        status.stderr,
      );
    });
    await t.step(
      "--force runs on every node and the history names both owners",
      async () => {
        const forced = await as(BOB, [
          ...touch.slice(0, 2),
          "--force",
          ...touch.slice(2),
        ]);
        assertEquals(forced.code, 0, forced.stderr);
        assertMatch(
          forced.stderr,
          new RegExp(
            `^run: Forced: Node "n2" is leased by alice@${HOST} until ${UNTIL} \\("debugging wifi"\\) \\(recorded\\)\n`,
          ),
        );
        assertEquals((await ran()).sort(), ["n1", "n2"]);
        const events = records(
          await as(BOB, ["lease", "history", "--json", "-w", "n2"]),
        );
        const force = events.filter((e) => e.kind === "force");
        assertEquals(
          force.map((e) => [e.nodes, e.holder, e.overridden]),
          [[["n2"], `bob@${HOST}`, [`alice@${HOST}`]]],
        );
        const text = await as(BOB, ["lease", "history", "-w", "n2"]);
        assertEquals(text.code, 0, text.stderr);
        assertMatch(
          text.stdout,
          new RegExp(`  force  .*  n2  +bob@${HOST} over alice@${HOST}\n`),
          text.stderr,
        );
        // close touches no node: another owner's lease does not stop it.
        const closed = await as(BOB, ["close", "--no-log", "-w", "n2"]);
        assertEquals(closed.code, 0, closed.stderr);
      },
    );
  } finally {
    await rig.sh(`rm -rf ${dir}.*`);
    await as(ALICE, ["close", "--no-log"]);
  }
});
