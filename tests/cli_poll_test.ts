// `fiwi poll` on this machine (local transport, no ssh): nodes in node-set
// order within a tick, per-node values in the command, --table on and off a
// terminal, --csv, -u, and the usage errors that stop it before anything
// runs. The printers' pure pieces (CSV fields, cell fitting, the order of a
// tick) are unit-tested first.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { fiwi, startFiwi } from "./_cli_harness.ts";
import {
  cellWidth,
  csvField,
  fit,
  InOrder,
  MIN_CELL_WIDTH,
  tableRow,
} from "../scripts/_poll_output.ts";

const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d`;
const TIME = String.raw`\d\d:\d\d:\d\d`;

/** Three local nodes; `delay` makes the first end last and the last second. */
const RIG = `rigs:
  here:
    defaults: { transport: local, vars: { delay: "0" } }
    nodes:
      a: { vars: { delay: "0.6", word: "a'b; rm -rf /" } }
      b: { vars: { word: "$(x)" } }
      c: { vars: { delay: "0.3", word: "plain" } }
`;

async function inRigDir(fn: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_poll_" });
  try {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, RIG);
    await fn(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

const poll = (args: string[], cwd: string, terminal = false) =>
  fiwi(["poll", "--no-log", ...args], {
    cwd,
    terminal,
    env: { NO_COLOR: "1" },
  });

Deno.test("InOrder prints what arrives in any order in node order, the first unfinished node at once", () => {
  const printed: string[] = [];
  const order = new InOrder(["a", "b", "c"]);
  const say = (text: string) => () => printed.push(text);
  order.emit("b", say("b1"));
  order.emit("a", say("a1"));
  assertEquals(printed, ["a1"], "a streams, b waits");
  order.end("c", say("c end"));
  order.emit("b", say("b2"));
  assertEquals(printed, ["a1"]);
  order.end("a", say("a end"));
  assertEquals(printed, ["a1", "a end", "b1", "b2"], "b's held lines follow a");
  order.emit("b", say("b3"));
  order.end("b", say("b end"));
  assertEquals(printed, ["a1", "a end", "b1", "b2", "b3", "b end", "c end"]);
  assert(order.hasEnded("c"));
});

Deno.test("csvField() quotes as RFC 4180 says, and only when it must", () => {
  const table: [string, string][] = [
    ["plain", "plain"],
    ["", ""],
    ["a b", "a b"],
    ["1,2", '"1,2"'],
    ['say "hi"', '"say ""hi"""'],
    ["two\nlines", '"two\nlines"'],
    ["cr\r", '"cr\r"'],
  ];
  for (const [value, want] of table) assertEquals(csvField(value), want);
});

Deno.test("table cells are fitted to a width shared out of the line", () => {
  assertEquals(fit("abc", 5), "abc  ");
  assertEquals(fit("abcdef", 5), "abcd…");
  assertEquals(fit("abcdef", 1), "a");
  assertEquals(cellWidth(1, 80), 62);
  assertEquals(cellWidth(3, 80), 19);
  assertEquals(cellWidth(64, 80), MIN_CELL_WIDTH);
  assertEquals(cellWidth(3, 200), 59);
  assertEquals(
    tableRow("12", "04:30:24", ["0.52", "a long value", ""], 6),
    "12     04:30:24  0.52    a lon…",
  );
});

Deno.test("poll: within a tick nodes print in node-set order, each command with the node's own values", async () => {
  await inRigDir(async (cwd) => {
    const r = await poll([
      "-n",
      "2",
      "-i",
      "1s",
      "sleep {delay}; echo {name} {word}; echo {name} err >&2",
    ], cwd);
    assertEquals(r.code, 0, r.stderr);
    const tick = (n: number) => `--- tick ${n} ${ISO}\n`;
    const lines = "a: a a'b; rm -rf /\nb: b \\$\\(x\\)\nc: c plain\n";
    assertMatch(r.stdout, new RegExp(`^${tick(1)}${lines}${tick(2)}${lines}$`));
    assertMatch(
      r.stderr,
      /^(a: a err\nb: b err\nc: c err\n){2}Done: 2 ticks in [\d.]+ s, 6\/6 runs ok/,
    );
  });
});

Deno.test("poll: the first node's lines stream while a later node's wait for it", async () => {
  await inRigDir(async (cwd) => {
    const p = startFiwi([
      "poll",
      "--no-log",
      "-n",
      "1",
      // The shell's braces stay the shell's beside the values.
      '[ {name} = a ] && { echo early; sleep 2; }; echo "{name} done"',
    ], { cwd });
    await p.waitFor(/^a: early$/m);
    // b and c ended long ago; their lines wait for a.
    assert(!/^[bc]:/m.test(p.stdout()), p.stdout());
    const r = await p.done;
    assertEquals(r.code, 0, r.stderr);
    assertMatch(
      r.stdout,
      new RegExp(
        `^--- tick 1 ${ISO}\na: early\na: a done\nb: b done\nc: c done\n$`,
      ),
    );
  });
});

Deno.test("poll --table off a terminal: a header of nodes, a row per tick, cells cut to 80 columns", async () => {
  await inRigDir(async (cwd) => {
    const r = await poll([
      "-n",
      "2",
      "-i",
      "300ms",
      "--table",
      'case {name} in a) echo "{name} has a value far too long";; ' +
      "b) echo partial; exit 3;; c) printf 'x  y\\nz\\n';; esac",
    ], cwd);
    assertEquals(r.code, 1, r.stderr);
    // 80 columns: TICK, TIME, then three cells of 19.
    const w = 19;
    const header = `TICK   TIME      ${"a".padEnd(w)}  ${"b".padEnd(w)}  c`;
    const row = (n: number) =>
      `${n}      ${TIME}  a has a value far …  ${"exit 3".padEnd(w)}  x y z`;
    assertMatch(
      r.stdout,
      new RegExp(`^${header}\n${row(1)}\n${row(2)}\n$`),
    );
    // The cells say how runs ended: no failure lines under the table.
    assertMatch(r.stderr, /^Done: 2 ticks in [\d.]+ s, 4\/6 runs ok\n/);
  });
});

Deno.test("poll --table on a terminal lays out the same table, one row per tick", async () => {
  await inRigDir(async (cwd) => {
    const r = await poll(
      [
        "-n",
        "1",
        "--table",
        `echo {name}; [ {name} = b ] && echo ${"z".repeat(300)}; true`,
      ],
      cwd,
      true,
    );
    assertEquals(r.code, 0, r.stdout);
    // stdout carries the terminal: both streams, CRLF, the progress line
    // (drawn and cleared with CR and ESC [K), which the table outlives.
    const text = r.stdout.replaceAll("\r\n", "\n").split("\r\x1b[K")
      .filter((piece) => !/^\[\d+\/\d+ done\][^\n]*$/.test(piece)).join("");
    const header = /^TICK +TIME +a +b +c$/m.exec(text)?.[0] ?? "";
    assert(header, text);
    const row = new RegExp(`^1 +${TIME} +a +b z+… +c$`, "m").exec(text)?.[0] ??
      "";
    assert(row, text);
    // Columns line up: each node's value starts under its name.
    for (const name of ["b", "c"]) {
      assertEquals(row.indexOf(` ${name}`), header.indexOf(` ${name}`), name);
    }
    assert(row.length < 80, `${row.length} columns`);
  });
});

Deno.test("poll --csv: a header, one RFC 4180 record per run, CRLF line ends", async () => {
  await inRigDir(async (cwd) => {
    const r = await poll([
      "-n",
      "1",
      "-u",
      "500ms",
      "--csv",
      `case {name} in a) printf '1,"2"\\nx\\n';; b) echo early; sleep 5;; ` +
      "c) echo v; echo oops >&2; exit 4;; esac",
    ], cwd);
    assertEquals(r.code, 1, r.stderr);
    assertMatch(
      r.stdout,
      new RegExp(
        String.raw`^tick,time,node,code,value\r\n` +
          String.raw`1,${ISO},a,0,"1,""2""\nx"\r\n` +
          String.raw`1,${ISO},b,,early\r\n` +
          String.raw`1,${ISO},c,4,v\r\n$`,
      ),
    );
    assertMatch(
      r.stderr,
      /^b: command timeout \(.*\)\nc: oops\nc: exit 4\nDone: /,
    );
  });
});

Deno.test("poll: a bad key in the command stops it with exit 2 before anything runs", async () => {
  await inRigDir(async (cwd) => {
    const cases: [string, string][] = [
      [
        "touch ran-{name}; echo {rack}",
        'poll: Unknown key "rack" in the command for node "a": known keys are name, host, user, device, devip, delay, word (write "{{rack}}" for the literal text); 2 more nodes fail too: b,c',
      ],
      [
        "touch ran-{name}; echo {device}",
        'poll: Key "device" in the command has no value for node "a": give it "device:" in the rig file; 2 more nodes fail too: b,c',
      ],
      [
        "touch ran-{name}; awk '{print}' /dev/null",
        'poll: Unknown key "print" in the command for node "a": known keys are name, host, user, device, devip, delay, word (write "{{print}}" for the literal text); 2 more nodes fail too: b,c',
      ],
    ];
    for (const [cmd, want] of cases) {
      const r = await poll(["-n", "1", cmd], cwd);
      assertEquals([r.code, r.stdout, r.stderr], [2, "", want + "\n"], cmd);
    }
    const ran = [];
    for await (const e of Deno.readDir(cwd)) {
      if (e.name.startsWith("ran-")) ran.push(e.name);
    }
    assertEquals(ran, [], "nothing ran on any node");
    const both = await poll(["--csv", "--table", "true"], cwd);
    assertEquals(
      [both.code, both.stderr],
      [
        2,
        "poll: Give one of --json, --table and --csv, not --table and --csv\n",
      ],
    );
  });
});

Deno.test("poll --help lists -u, --table and --csv, with examples", async () => {
  await inRigDir(async (cwd) => {
    const r = await fiwi(["poll", "--help"], { cwd });
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /^ {2}-u, --timeout DURATION +stop a command/m);
    assertMatch(r.stdout, /^ {6}--table +a row per tick/m);
    assertMatch(r.stdout, /^ {6}--csv +CSV records tick,time,node,code,value/m);
    assertMatch(r.stdout, /^ {2}fiwi poll .*--table /m);
    assertMatch(r.stdout, /^ {2}fiwi poll .*--csv /m);
    assertMatch(r.stdout, /^ {2}fiwi poll .*\{devip\}/m);
  });
});
