// Node sets like clush: the pure parts (terms, ranges, ad-hoc hosts,
// left-to-right operators, folding) table by table; Rig.select() turning
// hosts outside the rig into nodes with the rig's defaults; linear cost on
// 100 k names and groups; and `fiwi nodes` as a user runs it.
import process from "node:process";
import { assert, assertEquals, assertThrows } from "jsr:@std/assert@^1";
import { ConfigurationError, parseRig, Rig } from "../mod.ts";
import {
  type AdHocHost,
  expandRanges,
  foldNames,
  type NodeSetTerm,
  type NodeSetUniverse,
  parseAdHocHost,
  parseNodeSet,
  selectNames,
} from "../src/nodeset/nodeset.ts";
import { optionsFirst } from "../scripts/nodes.ts";
import { startFiwi } from "./_cli_harness.ts";
import { skipHere, startLoopbackRig } from "./_loopback.ts";

Deno.test("parseNodeSet() splits at operators outside brackets, keeping their order", () => {
  const table: [string, NodeSetTerm[]][] = [
    ["a", [{ op: ",", item: "a" }]],
    ["a,b!c&d^e", [
      { op: ",", item: "a" },
      { op: ",", item: "b" },
      { op: "!", item: "c" },
      { op: "&", item: "d" },
      { op: "^", item: "e" },
    ]],
    ["n[1,3],m", [{ op: ",", item: "n[1,3]" }, { op: ",", item: "m" }]],
    ["!pdu", [{ op: ",", item: "all" }, { op: "!", item: "pdu" }]],
    [" ! pdu", [{ op: ",", item: "all" }, { op: "!", item: "pdu" }]],
    ["all,!dut3", [{ op: ",", item: "all" }, { op: "!", item: "dut3" }]],
    [" a , @g ", [{ op: ",", item: "a" }, { op: ",", item: "@g" }]],
    ["[::1]:22,b", [{ op: ",", item: "[::1]:22" }, { op: ",", item: "b" }]],
  ];
  for (const [pattern, want] of table) {
    assertEquals(parseNodeSet(pattern), want, pattern);
  }
  const bad: [string, string][] = [
    ["a,,b", "it has an empty item"],
    ["a,&b", "it has an empty item"],
    ["&a", '"&" needs a node set before it'],
    [",a", '"," needs a node set before it'],
    ["a!", 'nothing follows "!"'],
    ["a,", 'nothing follows ","'],
    ["!", 'nothing follows "!"'],
  ];
  for (const [pattern, why] of bad) {
    const e = assertThrows(() => parseNodeSet(pattern), ConfigurationError);
    assertEquals(e.message, `Invalid node pattern "${pattern}": ${why}`);
  }
});

Deno.test("expandRanges() pads as written, steps, multiplies brackets and leaves other brackets alone", () => {
  const table: [string, string[]][] = [
    ["dut[1-3,7]", ["dut1", "dut2", "dut3", "dut7"]],
    ["n[08-11]", ["n08", "n09", "n10", "n11"]],
    ["n[01-64/16]", ["n01", "n17", "n33", "n49"]],
    ["n[000-012/4]", ["n000", "n004", "n008", "n012"]],
    ["n[1-10/3,20]", ["n1", "n4", "n7", "n10", "n20"]],
    ["r[1-2]n[8-9]", ["r1n8", "r1n9", "r2n8", "r2n9"]],
    ["10.0.0.[1-3]", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]],
    ["rack?-[ab]", ["rack?-[ab]"]],
    ["[::1]:2222", ["[::1]:2222"]],
    ["plain", ["plain"]],
  ];
  for (const [item, want] of table) {
    assertEquals(expandRanges(item), want, item);
  }
  const fails: [string, string][] = [
    [
      "n[3-1]",
      'Invalid range "3-1" in node pattern "n[3-1]": the end is below the start',
    ],
    [
      "n[1-9/0]",
      'Invalid range "1-9/0" in node pattern "n[1-9/0]": the step must be 1 or more',
    ],
    [
      "n[1-200000]",
      'Range "1-200000" in node pattern "n[1-200000]" is too large: at most 100000 numbers',
    ],
    [
      "a[1-1000]b[1-1000]",
      'Node pattern "a[1-1000]b[1-1000]" expands to 1000000 names: at most 100000',
    ],
  ];
  for (const [item, message] of fails) {
    const e = assertThrows(() => expandRanges(item), ConfigurationError);
    assertEquals(e.message, message);
  }
});

Deno.test("parseAdHocHost() reads [user@]host[:port] and IPv6, and leaves plain words to the rig", () => {
  const table: [string, AdHocHost | null][] = [
    ["10.0.0.5", { text: "10.0.0.5", host: "10.0.0.5" }],
    ["rig@10.0.0.5:2222", {
      text: "rig@10.0.0.5:2222",
      host: "10.0.0.5",
      user: "rig",
      port: 2222,
    }],
    ["lab.example.com", { text: "lab.example.com", host: "lab.example.com" }],
    ["root@box", { text: "root@box", host: "box", user: "root" }],
    ["box:22", { text: "box:22", host: "box", port: 22 }],
    ["[::1]:2222", { text: "[::1]:2222", host: "::1", port: 2222 }],
    ["[fe80::1]", { text: "[fe80::1]", host: "fe80::1" }],
    ["me@[::1]", { text: "me@[::1]", host: "::1", user: "me" }],
    ["::1", { text: "::1", host: "::1" }],
    ["dut1", null],
    ["@duts", null],
    ["dut*", null],
    ["rack-[ab]", null],
    ["[::1]x", null],
  ];
  for (const [text, want] of table) {
    assertEquals(parseAdHocHost(text), want, text);
  }
  for (
    const [text, port] of [["box:0", "0"], ["box:99999", "99999"], [
      "box:ssh",
      "ssh",
    ]]
  ) {
    const e = assertThrows(() => parseAdHocHost(text), ConfigurationError);
    assertEquals(
      e.message,
      `Invalid port "${port}" in host "${text}": use a whole number from 1 to 65535`,
    );
  }
});

const U: NodeSetUniverse = {
  rig: "lab",
  names: ["n01", "n02", "n03", "n04", "pdu"],
  groups: new Map([
    ["odd", ["n01", "n03"]],
    ["even", ["n02", "n04"]],
    ["rack1", ["n01", "n02"]],
    ["rack2", ["n03", "n04"]],
  ]),
};

Deno.test("selectNames() reads , ! & ^ strictly left to right, like ClusterShell", () => {
  const table: [string, string[]][] = [
    ["n01,n02", ["n01", "n02"]],
    ["pdu,n01", ["n01", "pdu"]], // rig order
    ["n[01-04/2]", ["n01", "n03"]],
    ["@odd&@rack1", ["n01"]],
    ["@odd^@rack1", ["n02", "n03"]],
    ["all!@odd", ["n02", "n04", "pdu"]],
    ["!pdu", ["n01", "n02", "n03", "n04"]],
    ["all,!n0[1-3]", ["n04", "pdu"]],
    // Left to right: (n01,n02)&@odd, not n01,(n02&@odd).
    ["n01,n02&@odd", ["n01"]],
    ["@odd&@rack1,pdu", ["n01", "pdu"]],
    ["@rack[1-2]!n04", ["n01", "n02", "n03"]],
    ["n0*&@even", ["n02", "n04"]],
    ["root@10.0.0.9,n02,10.0.0.[1-2]", [
      "n02",
      "root@10.0.0.9",
      "10.0.0.1",
      "10.0.0.2",
    ]],
    ["[::1]:2222!n01,n01", ["n01", "[::1]:2222"]],
  ];
  for (const [pattern, want] of table) {
    assertEquals(selectNames(pattern, U), want, pattern);
  }
});

Deno.test("selectNames() refuses what selects nothing with one clear line and a did-you-mean", () => {
  const table: [string, string][] = [
    [
      "n05",
      'Node pattern "n05" matches no node in rig "lab": did you mean "n01"?',
    ],
    [
      "zzzzzz",
      'Node pattern "zzzzzz" matches no node in rig "lab": nodes are "n01", "n02", "n03", "n04", "pdu"',
    ],
    [
      "q*",
      'Node pattern "q*" matches no node in rig "lab": nodes are "n01", "n02", "n03", "n04", "pdu"',
    ],
    ["@od", 'Group "od" is not defined in rig "lab": did you mean "@odd"?'],
    [
      "@zzzzzz",
      'Group "zzzzzz" is not defined in rig "lab": known groups are "@odd", "@even", "@rack1", "@rack2"',
    ],
    ["@odd&@even", 'Node pattern "@odd&@even" leaves no node in rig "lab"'],
    [
      "",
      'Invalid node pattern "": give names, @groups, globs, ranges, hosts or "all"',
    ],
  ];
  for (const [pattern, message] of table) {
    const e = assertThrows(() => selectNames(pattern, U), ConfigurationError);
    assertEquals(e.message, message, pattern);
  }
});

Deno.test("foldNames() folds for display and expandRanges() gives the names back", () => {
  const table: [string[], string][] = [
    [["n01", "n02", "n03"], "n[01-03]"],
    [["n1", "n2", "n3", "n7", "pdu"], "n[1-3,7],pdu"],
    [["n08", "n09", "n10"], "n[08-10]"],
    [["10.0.0.1", "10.0.0.2"], "10.0.0.[1-2]"],
    [["n01", "[::1]:2222", "n02", "box:22"], "n[01-02],[::1]:2222,box:22"],
    [[], ""],
  ];
  for (const [names, want] of table) {
    const folded = foldNames(names);
    assertEquals(folded, want, names.join(","));
    const back = folded === ""
      ? []
      : parseNodeSet(folded).flatMap((t) => expandRanges(t.item));
    assertEquals(new Set(back), new Set(names), folded);
  }
});

const LAB = `default: lab
defaults: { user: admin, connectTimeout: 3s }
rigs:
  lab:
    relay: gw@10.0.0.1
    nodes:
      n01: { host: 192.168.1.1, groups: [odd] }
      n02: 192.168.1.2
  here:
    defaults: { transport: local }
    nodes:
      me: {}
`;

Deno.test("Rig.select() makes hosts outside the rig into nodes with the rig's defaults, once per text", () => {
  const rig = parseRig(LAB, { file: "lab.yaml", name: "lab" });
  const [n01, adHoc, v6] = rig.select("n01,rig@10.0.0.5:2222,[::1]");
  assertEquals(n01, rig.nodes[0]);
  const shape = (
    n: typeof adHoc,
  ) => [n.name, n.user, n.host, n.port, n.relay, n.connectTimeout, n.transport];
  assertEquals(shape(adHoc), [
    "rig@10.0.0.5:2222",
    "rig",
    "10.0.0.5",
    2222,
    "gw@10.0.0.1",
    3000,
    "ssh",
  ]);
  assertEquals(shape(v6), [
    "[::1]",
    "admin",
    "::1",
    undefined,
    "gw@10.0.0.1",
    3000,
    "ssh",
  ]);
  assertEquals(
    rig.select("rig@10.0.0.5:2222")[0],
    adHoc,
    "the same node for the same text",
  );
  assertEquals(rig.nodes.length, 2, "rig.nodes holds only the file's nodes");
  // A rig-wide local transport is not for a host given by address.
  const here = parseRig(LAB, { file: "lab.yaml", name: "here" });
  assertEquals(here.select("box.lan")[0].transport, "ssh");
  const e = assertThrows(
    () => rig.select("-oProxyCommand=x.y"),
    ConfigurationError,
  );
  assert(e.message.startsWith('Invalid host "-oProxyCommand=x.y"'), e.message);
});

/** CPU milliseconds `fn` takes: steady on a loaded machine, unlike wall time. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

Deno.test("selection is linear: 100 k groups and 100 k names in well under a second", () => {
  const names = Array.from({ length: 100_000 }, (_, i) => `n${i}`);
  const groups = new Map(names.map((n, i) => [`g${i}`, [n]]));
  const big: NodeSetUniverse = { rig: "big", names, groups };
  let picked: string[] = [];
  const ms = cpuMs(() => {
    picked = selectNames("@g[0-99999/2]&n*!@g0,@g99999^n1", big);
  });
  assertEquals(picked.length, 50_001);
  assertEquals(picked.slice(0, 3), ["n1", "n2", "n4"]);
  assertEquals(picked.at(-1), "n99999");
  assert(ms < 1000, `took ${ms} ms of CPU`);
});

Deno.test("optionsFirst() moves options after the pattern in front of it", () => {
  const table: [string[], string[]][] = [
    [["@duts", "--fold"], ["--fold", "--", "@duts"]],
    [["@duts", "-x", "dut2", "--pick", "1"], [
      "-x",
      "dut2",
      "--pick",
      "1",
      "--",
      "@duts",
    ]],
    [["--rig", "x.yaml", "a", "b", "--json"], [
      "--rig",
      "x.yaml",
      "--json",
      "--",
      "a",
      "b",
    ]],
    [["--fold"], ["--fold"]],
    [["--", "-odd"], ["--", "-odd"]],
  ];
  for (const [args, want] of table) {
    assertEquals(optionsFirst(args), want, args.join(" "));
  }
});

Deno.test("fiwi nodes expands, folds and prints NDJSON; a bad pattern is one line and exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_nodes_test_" });
  try {
    await Deno.writeTextFile(`${dir}/lab.yaml`, LAB);
    const run = (...args: string[]) =>
      startFiwi(["nodes", "--no-log", "--rig", "lab.yaml", ...args], {
        cwd: dir,
      }).done;
    const plain = await run("n0[1-2]", "root@[::1]:22");
    assertEquals([plain.code, plain.stdout, plain.stderr], [
      0,
      "n01\nn02\nroot@[::1]:22\n",
      "",
    ]);
    const folded = await run("all", "--fold");
    assertEquals([folded.code, folded.stdout], [0, "n[01-02]\n"]);
    const json = await run("--json", "@odd,box:2222");
    assertEquals(json.code, 0);
    assertEquals(json.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
      {
        node: "n01",
        host: "192.168.1.1",
        user: "admin",
        port: null,
        transport: "ssh",
        relay: "gw@10.0.0.1",
        groups: ["odd"],
        adHoc: false,
      },
      {
        node: "box:2222",
        host: "box",
        user: "admin",
        port: 2222,
        transport: "ssh",
        relay: "gw@10.0.0.1",
        groups: [],
        adHoc: true,
      },
      { summary: { rig: "lab", count: 2, folded: "n01,box:2222" } },
    ]);
    const bad = await run("n09");
    assertEquals([bad.code, bad.stdout, bad.stderr], [
      2,
      "",
      'nodes: Node pattern "n09" matches no node in rig "lab": did you mean "n01"?\n',
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "a host outside the rig runs a command over ssh with the rig's defaults",
  ignore: skipHere("ad-hoc host over ssh", "second-address"),
}, async () => {
  await using loop = await startLoopbackRig();
  const rig = new Rig("loop", [loop.node({ index: 0 })], {
    adHocDefaults: {
      user: loop.user,
      ...(loop.port === undefined ? {} : { port: loop.port }),
      sshConfig: loop.sshConfig,
      controlDir: `${loop.dir}/cm`,
    },
  });
  try {
    const host = loop.hosts[1].includes(":")
      ? `[${loop.hosts[1]}]`
      : loop.hosts[1];
    const [inRig, adHoc] = rig.select(`node0,${loop.user}@${host}`);
    assertEquals([inRig.name, adHoc.name], ["node0", `${loop.user}@${host}`]);
    const results = await Promise.all(
      [inRig, adHoc].map((n) => n.rexec("echo $USER", { cmdTimeout: 20_000 })),
    );
    assertEquals(
      results.map((r) => [r.code, r.stdout]),
      [[0, `${loop.user}\n`], [0, `${loop.user}\n`]],
    );
  } finally {
    await rig.close();
  }
});
