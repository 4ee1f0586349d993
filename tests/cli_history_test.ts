// `fiwi history` on a state store the test fills itself: the list of
// invocations, one invocation node by node, --json, the sample export as
// CSV and NDJSON filtered by node set, command and time range, and the
// usage errors. The time bounds (`--since 2h`, an ISO time) are
// table-tested first.
import {
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "jsr:@std/assert@^1";
import { ConfigurationError, StateStore } from "../mod.ts";
import { parseTimeBound, sampleCsv } from "../scripts/_history.ts";
import { unfold } from "../scripts/history.ts";
import { fiwi } from "./_cli_harness.ts";

Deno.test("parseTimeBound() reads a duration ago or an ISO time", () => {
  const now = Date.parse("2025-03-01T12:00:00Z");
  const table: [string, number][] = [
    ["90s", now - 90_000],
    ["2h", now - 7_200_000],
    ["1h30m", now - 5_400_000],
    ["7d", now - 7 * 86_400_000],
    ["0", now],
    ["2025-02-28T10:00:00Z", Date.parse("2025-02-28T10:00:00Z")],
    ["2025-02-28T10:00:00+02:00", Date.parse("2025-02-28T08:00:00Z")],
    ["2025-02-28T10:00", new Date(2025, 1, 28, 10, 0).getTime()],
    ["2025-02-28 10:00:30", new Date(2025, 1, 28, 10, 0, 30).getTime()],
    ["2025-02-28", new Date(2025, 1, 28).getTime()],
  ];
  for (const [text, want] of table) {
    assertEquals(parseTimeBound("since", text, now).getTime(), want, text);
  }
  for (const bad of ["yesterday", "-2h", "2", "2025-13-45", ""]) {
    assertThrows(
      () => parseTimeBound("since", bad, now),
      ConfigurationError,
      "Invalid --since",
    );
  }
});

Deno.test("unfold() expands a folded node set", () => {
  assertEquals(unfold("n[1-3],pdu"), ["n1", "n2", "n3", "pdu"]);
  assertEquals(unfold("root@h:22"), ["root@h:22"]);
});

Deno.test("sampleCsv() quotes outputs as RFC 4180 says", () => {
  const line = sampleCsv({
    invocationId: "i1",
    node: "a",
    command: "echo 1,2",
    tick: 3,
    at: new Date(0),
    output: 'say "hi"\nthere',
    value: null,
    rowId: 1,
  });
  assertMatch(line, /^[^,]+,a,"echo 1,2",3,,"say ""hi""\nthere",i1$/);
});

const RIG = `rigs:
  here:
    defaults: { transport: local }
    nodes:
      a: { groups: [duts] }
      b: { groups: [duts] }
      c: {}
`;

/** A rig dir with a store holding two invocations and their samples. */
async function withHistory(
  fn: (cwd: string, db: string) => Promise<void>,
): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_history_" });
  try {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, RIG);
    const db = `${cwd}/state.db`;
    await using store = await StateStore.open(db);
    const hourAgo = new Date(Date.now() - 3_600_000);
    store.startInvocation({
      id: "aaaa1111",
      subcommand: "run",
      command: "uname -r",
      nodes: "a,b,c",
      user: "ann@lab",
      startedAt: hourAgo,
    });
    for (
      const [node, outcome, code] of [["a", "exit 0", 0], ["b", "exit 0", 0], [
        "c",
        "unreachable",
        null,
      ]] as const
    ) {
      store.recordOutcome({
        invocationId: "aaaa1111",
        node,
        outcome,
        code,
        durationMs: 1500,
        bytes: 12,
        at: new Date(hourAgo.getTime() + 1500),
      });
    }
    store.endInvocation("aaaa1111", 1, new Date(hourAgo.getTime() + 2000));
    const now = new Date();
    store.startInvocation({
      id: "bbbb2222",
      subcommand: "poll",
      command: "cat /proc/loadavg",
      nodes: "a,b",
      user: "bob@ci",
      startedAt: now,
    });
    for (let tick = 1; tick <= 2; tick++) {
      for (const node of ["a", "b"]) {
        store.recordSample({
          invocationId: "bbbb2222",
          node,
          command: "cat /proc/loadavg",
          tick,
          at: new Date(now.getTime() + tick * 1000),
          output: `0.${tick}${node === "a" ? 1 : 2} 0.1 0.1`,
          value: Number(`0.${tick}${node === "a" ? 1 : 2}`),
        });
      }
    }
    store.recordSample({
      invocationId: "bbbb2222",
      node: "a",
      command: "hostname",
      tick: 1,
      at: new Date(hourAgo.getTime() - 60_000),
      output: 'old, "quoted"',
      value: null,
    });
    await store.flush();
    await fn(cwd, db);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

const history = (args: string[], cwd: string, db: string) =>
  fiwi(["history", "--db", db, ...args], { cwd, env: { NO_COLOR: "1" } });

Deno.test("fiwi history lists invocations newest first: time, who, what, where, counts", async () => {
  await withHistory(async (cwd, db) => {
    const r = await history([], cwd, db);
    assertEquals(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assertMatch(
      lines[0],
      /^TIME\s+ID\s+WHO\s+WHAT\s+WHERE\s+OK\s+FAILED\s+EXIT$/,
    );
    assertMatch(
      lines[1],
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+bbbb2222\s+bob@ci\s+poll cat \/proc\/loadavg\s+a,b\s+0\s+0\s+running$/,
    );
    assertMatch(
      lines[2],
      /aaaa1111\s+ann@lab\s+run uname -r\s+a,b,c\s+2\s+1\s+1$/,
    );
    assertEquals(lines.length, 3);

    const json = await history(["--json"], cwd, db);
    const records = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.map((x) => x.id), ["bbbb2222", "aaaa1111"]);
    assertEquals(records[1].exitCode, 1);
    assertEquals([records[1].ok, records[1].failed], [2, 1]);

    const limited = await history(["-n", "1"], cwd, db);
    assertEquals(limited.stdout.trimEnd().split("\n").length, 2);
    const recent = await history(["--since", "30m", "--json"], cwd, db);
    assertEquals(recent.stdout.trimEnd().split("\n").length, 1);
    const onC = await history(["-w", "c", "--json"], cwd, db);
    assertEquals(JSON.parse(onC.stdout).id, "aaaa1111");
  });
});

Deno.test("fiwi history ID shows one invocation node by node; a prefix will do", async () => {
  await withHistory(async (cwd, db) => {
    const r = await history(["aaaa"], cwd, db);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(
      r.stdout,
      'Invocation aaaa1111: run "uname -r" on a,b,c',
    );
    assertStringIncludes(r.stdout, "By ann@lab");
    assertStringIncludes(r.stdout, "exit 1 (2.00 s); 2 ok, 1 failed");
    assertMatch(r.stdout, /^NODE\s+OUTCOME\s+CODE\s+TIME\s+BYTES\s+ENDED$/m);
    assertMatch(r.stdout, /^c\s+unreachable\s+-\s+1\.50 s\s+12\s+/m);
    const json = await history(["--json", "aaaa1111"], cwd, db);
    const one = JSON.parse(json.stdout);
    assertEquals(one.outcomes.map((o: { node: string }) => o.node), [
      "a",
      "b",
      "c",
    ]);
    assertEquals(one.outcomes[2].code, null);

    const missing = await history(["zzzz"], cwd, db);
    assertEquals(missing.code, 2);
    assertMatch(
      missing.stderr,
      /^history: No invocation "zzzz" in the state store/,
    );
  });
});

Deno.test("fiwi history --samples exports CSV or NDJSON, by node set, command and time", async () => {
  await withHistory(async (cwd, db) => {
    const csv = await history(["--samples"], cwd, db);
    assertEquals(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trimEnd().split("\n");
    assertEquals(lines[0], "time,node,command,tick,value,output,invocation");
    assertEquals(lines.length, 6);
    assertStringIncludes(
      csv.stdout,
      ',a,hostname,1,,"old, ""quoted""",bbbb2222',
    );

    const onB = await history(
      ["--samples", "--csv", "-w", "b", "--command", "cat /proc/loadavg"],
      cwd,
      db,
    );
    assertEquals(
      onB.stdout.trimEnd().split("\n").slice(1).map((l) =>
        l.split(",").slice(1, 5).join(",")
      ),
      ["b,cat /proc/loadavg,1,0.12", "b,cat /proc/loadavg,2,0.22"],
    );

    const json = await history(
      ["--samples", "--json", "-w", "@duts", "--since", "10m"],
      cwd,
      db,
    );
    const samples = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(
      samples.length,
      4,
      "the old hostname sample is before --since",
    );
    assertEquals(Object.keys(samples[0]), [
      "time",
      "node",
      "command",
      "tick",
      "value",
      "output",
      "invocation",
    ]);

    const until = await history(["--samples", "--until", "30m"], cwd, db);
    assertEquals(
      until.stdout.trimEnd().split("\n").length,
      2,
      "only the old one",
    );
  });
});

Deno.test("fiwi history: usage errors are one line, exit 2", async () => {
  await withHistory(async (cwd, db) => {
    for (
      const [args, re] of [
        [["--csv"], /"--csv" goes with "--samples"/],
        [["--samples", "--csv", "--json"], /either "--csv" or "--json"/],
        [["--since", "yesterday"], /Invalid --since "yesterday"/],
        [["--samples", "aaaa1111"], /either "--samples" or an invocation id/],
        [["-n", "0"], /Invalid --limit "0"/],
        [["a", "b"], /Unexpected argument "b"/],
      ] as const
    ) {
      const r = await history([...args], cwd, db);
      assertEquals(r.code, 2, `${args}: ${r.stderr}`);
      assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assertMatch(r.stderr, re);
    }
    const help = await history(["--help"], cwd, db);
    assertEquals(help.code, 0);
    assertStringIncludes(help.stdout, "Usage: fiwi history [options] [ID]");
    assertStringIncludes(help.stdout, "--samples");
  });
});
