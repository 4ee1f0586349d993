// Rig inventory: rig-file parsing and validation (with the exact line and
// column of each problem), YAML positions, durations, node-set selection.
// Pure units: nothing here spawns a process.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "jsr:@std/assert@^1";
import { parse } from "jsr:@std/yaml@^1";
import {
  BUILTIN_RIG_YAML,
  ConfigurationError,
  loadRig,
  parseRig,
  RigFileError,
} from "../mod.ts";
import { formatDuration, parseDuration } from "../src/rigfile/duration.ts";
import { expandRanges, parseNodeSet } from "../src/nodeset/nodeset.ts";
import {
  locate,
  parseYamlWithPositions,
} from "../src/rigfile/_yaml_positions.ts";

Deno.test("parseDuration() reads units, refuses bare numbers and says why", () => {
  const table: [unknown, number | RegExp][] = [
    ["500ms", 500],
    ["15s", 15_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1.5s", 1500],
    [" 3s ", 3000],
    [0, 0],
    ["0", 0],
    ["none", 0],
    ["off", 0],
    [15, /needs a unit: write "15s" or "15ms"/],
    ["15", /needs a unit: write "15s" or "15ms"/],
    ["5 sec", /use a number and a unit/],
    ["s", /use a number and a unit/],
    ["10x", /use a number and a unit/],
    ["", /use a number and a unit/],
    [true, /use a duration like/],
    [null, /use a duration like/],
  ];
  for (const [input, want] of table) {
    const got = parseDuration(input);
    if (typeof want === "number") assertEquals(got, want, String(input));
    else {
      assertEquals(typeof got, "string", String(input));
      assert(want.test(got as string), `${input}: ${got}`);
    }
  }
  assertEquals(
    [500, 15_000, 120_000, 3_600_000, 1500, 0].map(formatDuration),
    ["500ms", "15s", "2m", "1h", "1500ms", "0"],
  );
});

Deno.test("locate() finds keys and values in block, flow, quoted and sequence YAML", () => {
  const text = [
    "# comment: not a key", // 1
    "top:", // 2
    "  plain: 1 # trailing comment", // 3
    '  "quoted key": x', // 4
    "  flow: {a: 1, 'b c': [x, {d: 2}]}", // 5
    "  list:", // 6
    "  - first", // 7
    "  - name: second", // 8
    "    extra: true", // 9
    "  multi: {", // 10
    "      e: 3,", // 11
    "      f: 4 }", // 12
    "  block: |", // 13
    "    not: a key", // 14
    "  anchored: &x", // 15
    "    g: 5", // 16
    "  url: http://host:80/x#y", // 17
    "  after: end", // 18
  ].join("\n");
  const { find } = locate(text);
  const at = (path: (string | number)[]) => {
    const e = find(path);
    return e ? [e.key.line, e.key.column, e.value.line, e.value.column] : null;
  };
  assertEquals(at(["top"]), [2, 1, 2, 1]);
  assertEquals(at(["top", "plain"]), [3, 3, 3, 10]);
  assertEquals(at(["top", "quoted key"]), [4, 3, 4, 17]);
  assertEquals(at(["top", "flow"]), [5, 3, 5, 9]);
  assertEquals(at(["top", "flow", "a"]), [5, 10, 5, 13]);
  assertEquals(at(["top", "flow", "b c"]), [5, 16, 5, 23]);
  assertEquals(at(["top", "flow", "b c", 1, "d"]), [5, 28, 5, 31]);
  assertEquals(at(["top", "list", 0]), [7, 3, 7, 5]);
  assertEquals(at(["top", "list", 1, "name"]), [8, 5, 8, 11]);
  assertEquals(at(["top", "list", 1, "extra"]), [9, 5, 9, 12]);
  assertEquals(at(["top", "multi", "e"]), [11, 7, 11, 10]);
  assertEquals(at(["top", "multi", "f"]), [12, 7, 12, 10]);
  assertEquals(at(["top", "block"]), [13, 3, 13, 10]);
  assertEquals(at(["top", "block", "not"]), null, "inside a block scalar");
  assertEquals(at(["top", "anchored", "g"]), [16, 5, 16, 8]);
  assertEquals(at(["top", "url"]), [17, 3, 17, 8]);
  assertEquals(at(["top", "after"]), [18, 3, 18, 10]);
  // The locator reads what std parses: the same document, the same keys.
  const data = parse(text) as { top: Record<string, unknown> };
  assertEquals(Object.keys(data.top), [
    "plain",
    "quoted key",
    "flow",
    "list",
    "multi",
    "block",
    "anchored",
    "url",
    "after",
  ]);
});

Deno.test("parseYamlWithPositions() reports std's syntax errors at their line and column", () => {
  const err = assertThrows(
    () => parseYamlWithPositions("a: 1\nb:\n  - x\n c: 2\n"),
  ) as Error & { pos: { line: number; column: number } };
  assertEquals(err.pos, { line: 4, column: 2 });
  assert(/bad indentation/.test(err.message), err.message);
  assertEquals(err.message[0], err.message[0].toUpperCase());
  // A path without a position of its own falls back to its nearest ancestor.
  const doc = parseYamlWithPositions("x:\n  y: {z: 1}\n");
  assertEquals(doc.keyAt(["x", "y", "z", "deeper"]), { line: 2, column: 7 });
  assertEquals(doc.valueAt(["nowhere"]), { line: 1, column: 1 });
});

const GOOD = `# lab
default: lab
defaults:
  user: tester
  connectTimeout: 5s
rigs:
  lab:
    relay: jump@10.0.0.1:2222
    defaults:
      cmdTimeout: 2m
      sshOptions: { ServerAliveInterval: 10, Compression: true }
    nodes:
      dut1: { host: 10.0.0.11, groups: [duts, ap], console: true }
      dut2:
        host: 10.0.0.12
        groups: duts
        user: root
        ioTimeout: 500ms
      dut10: 10.0.0.20
      pdu:
        host: pdu.lab
        relay: null
        sshConfig: keys/ssh_config
        identityFile: ~/.ssh/id_lab
  other:
    nodes:
      me: { transport: local }
`;

Deno.test("parseRig() applies defaults, rig settings and node settings in that order", () => {
  const rig = parseRig(GOOD, { file: "/etc/fiwi/rigs.yaml", home: "/home/t" });
  assertEquals(rig.name, "lab");
  assertEquals(rig.rigNames, ["lab", "other"]);
  assertEquals(rig.nodes.map((n) => n.name), ["dut1", "dut2", "dut10", "pdu"]);
  const [dut1, dut2, dut10, pdu] = rig.nodes;
  assertEquals(
    [dut1.host, dut1.user, dut1.relay, dut1.connectTimeout, dut1.cmdTimeout],
    ["10.0.0.11", "tester", "jump@10.0.0.1:2222", 5000, 120_000],
  );
  assertEquals(dut1.sshOptions, {
    ServerAliveInterval: "10",
    Compression: "yes",
  });
  assertEquals(dut1.console, true);
  assertEquals([dut2.user, dut2.ioTimeout, dut2.console], ["root", 500, false]);
  assertEquals(dut10.host, "10.0.0.20");
  assertEquals(pdu.relay, undefined, "relay: null opts out of the rig's relay");
  assertEquals(pdu.sshConfig, "/etc/fiwi/keys/ssh_config");
  assertEquals(pdu.identityFile, "/home/t/.ssh/id_lab");
  assertEquals([...rig.groups], [["duts", ["dut1", "dut2"]], ["ap", ["dut1"]]]);
  const other = parseRig(GOOD, { file: "rigs.yaml", name: "other" });
  assertEquals(
    other.nodes.map((n) => [n.name, n.transport, n.host]),
    [["me", "local", "localhost"]],
  );
});

Deno.test("Rig.select() takes names, @groups, globs, ranges, all and exclusions", () => {
  const rig = parseRig(GOOD, { file: "rigs.yaml" });
  const names = (p: string) => rig.select(p).map((n) => n.name);
  assertEquals(names("all"), ["dut1", "dut2", "dut10", "pdu"]);
  assertEquals(
    names("pdu,dut1"),
    ["dut1", "pdu"],
    "rig order, not pattern order",
  );
  assertEquals(names("@duts"), ["dut1", "dut2"]);
  assertEquals(names("dut*"), ["dut1", "dut2", "dut10"]);
  assertEquals(names("dut?"), ["dut1", "dut2"]);
  assertEquals(names("dut[2-10]"), ["dut2", "dut10"]);
  assertEquals(names("dut[1,10]"), ["dut1", "dut10"]);
  assertEquals(names("all,!@duts"), ["dut10", "pdu"]);
  assertEquals(names("!pdu"), ["dut1", "dut2", "dut10"]);
  assertEquals(names(" dut1 , @ap "), ["dut1"]);
  const fails: [string, RegExp][] = [
    [
      "dut3",
      /^Node pattern "dut3" matches no node in rig "lab": did you mean "dut1"\?$/,
    ],
    ["dut1,nope*", /^Node pattern "nope\*" matches no node/],
    [
      "@aps",
      /^Group "aps" is not defined in rig "lab": did you mean "@ap"\?$/,
    ],
    ["dut1,,dut2", /has an empty item/],
    ["", /^Invalid node pattern ""/],
    ["all,!dut*,!pdu", /^Node pattern "all,!dut\*,!pdu" leaves no node/],
    ["dut[3-1]", /the end is below the start/],
    ["zzzzzz", /: nodes are "dut1", "dut2", "dut10", "pdu"$/],
    ["@zzzzzz", /: known groups are "@duts", "@ap"$/],
  ];
  for (const [pattern, want] of fails) {
    const e = assertThrows(() => rig.select(pattern), ConfigurationError);
    assert(want.test(e.message), `${pattern}: ${e.message}`);
  }
  assertEquals(parseNodeSet("a[1,2],b").map((t) => t.item), ["a[1,2]", "b"]);
  assertEquals(expandRanges("r[1-2]n[08-10]"), [
    "r1n08",
    "r1n09",
    "r1n10",
    "r2n08",
    "r2n09",
    "r2n10",
  ]);
});

/** Each bad file with the exact place and message it must be refused with. */
const BAD: [string, string, string][] = [
  [
    "unknown key with a suggestion",
    "rigs:\n  r:\n    nodes:\n      a:\n        host: x\n        prot: 22\n",
    '6:9: Unknown key "prot" in node "a": did you mean "port"?',
  ],
  [
    "unknown key in a flow mapping",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, consol: true}\n",
    '4:20: Unknown key "consol" in node "a": did you mean "console"?',
  ],
  [
    "unknown top-level key without a near match",
    "rigs:\n  r:\n    nodes: {a: x}\nzzzzzz: 1\n",
    '4:1: Unknown key "zzzzzz" in the file: known keys are "default", "defaults", "rigs"',
  ],
  [
    "unknown key in a rig",
    "rigs:\n  r:\n    realy: a@b\n    nodes: {a: x}\n",
    '3:5: Unknown key "realy" in rig "r": did you mean "relay"?',
  ],
  [
    "wrong type",
    "rigs:\n  r:\n    nodes:\n      a:\n        host: x\n        console: yes\n",
    '6:18: Invalid console "yes": use true or false',
  ],
  [
    "port as text",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, port: '22'}\n",
    '4:26: Invalid port "22": use a whole number from 1 to 65535',
  ],
  [
    "port out of range",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, port: 70000}\n",
    "4:26: Invalid port 70000: use a whole number from 1 to 65535",
  ],
  [
    "enum value",
    "defaults:\n  transport: telnet\nrigs:\n  r:\n    nodes: {a: x}\n",
    '2:14: Invalid transport "telnet": use "ssh", "ush", "local"',
  ],
  [
    "duplicate node name",
    "rigs:\n  r:\n    nodes:\n      a: x\n      b: y\n      a: z\n",
    '6:7: Duplicate node name "a" in rig "r": first defined at line 4',
  ],
  [
    "duplicate key inside a node",
    "rigs:\n  r:\n    nodes:\n      a:\n        host: x\n        host: y\n",
    '6:9: Duplicate key "host": first given at line 5',
  ],
  [
    "duration without a unit",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, cmdTimeout: 15}\n",
    '4:32: Invalid cmdTimeout 15: a duration needs a unit: write "15s" or "15ms"',
  ],
  [
    "duration with a bad unit",
    "defaults:\n  connectTimeout: 5 sec\nrigs:\n  r:\n    nodes: {a: x}\n",
    '2:19: Invalid connectTimeout "5 sec": use a number and a unit (ms, s, m, h) like "500ms", "15s" or "2m"',
  ],
  [
    "host that reads as an ssh option",
    "rigs:\n  r:\n    nodes:\n      a:\n        host: -oProxyCommand=touch\n",
    '5:15: Invalid host "-oProxyCommand=touch": use a host name or IP address (no leading "-", whitespace or shell metacharacters)',
  ],
  [
    "host with shell metacharacters in the short form",
    "rigs:\n  r:\n    nodes:\n      a: 'x;reboot'\n",
    '4:10: Invalid host "x;reboot": use a host name or IP address (no leading "-", whitespace or shell metacharacters)',
  ],
  [
    "unsafe relay at rig level",
    "rigs:\n  r:\n    relay: 'a b'\n    nodes: {a: x}\n",
    '3:12: Invalid relay "a b": use a host name or IP address (no leading "-", whitespace or shell metacharacters)',
  ],
  [
    "unsafe user from the defaults",
    "defaults:\n  user: -l\nrigs:\n  r:\n    nodes: {a: x}\n",
    '2:9: Invalid user "-l": use letters, digits, ".", "_" or "-" (no leading "-")',
  ],
  [
    "missing host",
    "rigs:\n  r:\n    nodes:\n      a:\n        user: x\n",
    '4:7: Node "a" has no host: add "host: <address>"',
  ],
  [
    "bad node name",
    "rigs:\n  r:\n    nodes:\n      'a,b': x\n",
    '4:7: Invalid node name "a,b": use letters, digits, ".", "_" and "-" (not first)',
  ],
  [
    "bad group name",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, groups: [ok, '@bad']}\n",
    '4:33: Invalid group name "@bad": use letters, digits, ".", "_" and "-" (not first)',
  ],
  [
    "jump relay with ush",
    "rigs:\n  r:\n    nodes:\n      a: {host: x, transport: ush, relay: r, relayMode: jump}\n",
    '4:57: Relay mode "jump" needs the ssh transport, node "a" uses "ush": use relayMode "nested"',
  ],
  [
    "default rig that does not exist",
    "default: lba\nrigs:\n  lab:\n    nodes: {a: x}\n",
    '1:10: Default rig "lba" is not defined under rigs: did you mean "lab"?',
  ],
  [
    "YAML syntax error",
    "rigs:\n  r:\n    nodes:\n      a: {host: x\n",
    "5:1: Invalid YAML: Cannot read flow collection: unexpected end of the stream within a flow collection",
  ],
  [
    "not a mapping",
    "- just\n- a list\n",
    "1:1: Invalid file content (a list): give a mapping of keys",
  ],
  [
    "empty file",
    "# nothing yet\n",
    '1:1: The file is empty: add a "rigs:" mapping',
  ],
  [
    "no nodes",
    "rigs:\n  r:\n    description: empty\n",
    '2:3: Rig "r" has no nodes: add a "nodes:" mapping',
  ],
  [
    "5000 nested flow brackets",
    "rigs: " + "[".repeat(5000) + "\n",
    "1:70: Invalid YAML: Collections nest more than 64 levels deep: a rig file needs only a few",
  ],
  [
    "100 nested block mappings",
    "rigs:\n" +
    Array.from({ length: 99 }, (_, i) => `${" ".repeat(i + 1)}k${i}:\n`).join(
      "",
    ),
    "65:65: Invalid YAML: Collections nest more than 64 levels deep: a rig file needs only a few",
  ],
  [
    "100 nested sequences on one line",
    "rigs: " + "- ".repeat(100) + "x\n",
    "1:133: Invalid YAML: Collections nest more than 64 levels deep: a rig file needs only a few",
  ],
  [
    "tab-indented line",
    "rigs:\n  r:\n    nodes:\n\tdut1: x\n",
    "4:1: Invalid YAML: Tabs are not allowed for indentation: indent with spaces only",
  ],
  [
    "tab after spaces in the indentation",
    "rigs:\n  r:\n    nodes:\n      a: x\n  \t    b: y\n",
    "5:3: Invalid YAML: Tabs are not allowed for indentation: indent with spaces only",
  ],
  [
    "host as a number",
    "rigs:\n  r:\n    nodes:\n      a: {host: 123}\n",
    "4:17: Invalid host 123: give a host name or IP address as text (quote it in YAML)",
  ],
  [
    "host as a number in the short form",
    "rigs:\n  r:\n    nodes:\n      a: 10.5\n",
    "4:10: Invalid host 10.5: give a host name or IP address as text (quote it in YAML)",
  ],
  [
    "text over the size limit",
    "# " + "x".repeat(1024 * 1024),
    "1:1048577: The rig file is larger than 1048576 bytes (1 MiB): give a smaller file",
  ],
  [
    "several rigs, no default",
    "rigs:\n  a:\n    nodes: {x: h}\n  b:\n    nodes: {y: h}\n",
    'The file defines 2 rigs and no default: add "default: <rig>" or choose one of "a", "b"',
  ],
];

Deno.test("parseRig() refuses each bad file with its file, line, column and problem", async (t) => {
  for (const [name, text, want] of BAD) {
    await t.step(name, () => {
      const e = assertThrows(
        () => parseRig(text, { file: "lab.yaml" }),
        RigFileError,
      );
      const m = /^(\d+):(\d+): /.exec(want);
      assertEquals(e.message, `lab.yaml:${m ? "" : " "}${want}`);
      assertEquals(
        [e.line, e.column],
        m ? [Number(m[1]), Number(m[2])] : [0, 0],
      );
      assertEquals(e.file, "lab.yaml");
      assertEquals(e.exitCode, 2);
    });
  }
});

Deno.test("parseRig() names the rigs of the file when asked for one it lacks", () => {
  const e = assertThrows(
    () => parseRig(GOOD, { file: "rigs.yaml", name: "lba" }),
    ConfigurationError,
  );
  assertEquals(
    e.message,
    'Rig "lba" is not defined in "rigs.yaml": choose one of "lab", "other"',
  );
});

Deno.test("loadRig() reads a file, and refuses a missing one by name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_test_" });
  try {
    await Deno.writeTextFile(`${dir}/rigs.yaml`, GOOD);
    const rig = await loadRig(`${dir}/rigs.yaml`, "other");
    assertEquals(rig.file, `${dir}/rigs.yaml`);
    assertEquals(rig.nodes.map((n) => n.name), ["me"]);
    const e = await loadRig(`${dir}/missing.yaml`).then(
      () => null,
      (e) => e,
    );
    assertInstanceOf(e, RigFileError);
    assertEquals(
      e.message,
      `${dir}/missing.yaml: Cannot read the rig file: No such file`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the built-in rig and the repository's rigs.yaml both give the local rig", async () => {
  const builtin = parseRig(BUILTIN_RIG_YAML, { file: "<built-in>" });
  const repo = await loadRig(new URL("../rigs.yaml", import.meta.url).pathname);
  for (const rig of [builtin, repo]) {
    assertEquals(rig.name, "local");
    assertEquals(
      rig.nodes.map((n) => [n.name, n.transport, n.console]),
      [["local", "local", true]],
    );
    assertEquals(rig.nodes[0].consoleCommand, builtin.nodes[0].consoleCommand);
  }
});
