// Per-node values in commands: expandNodeValues() (quoting, `{{key}}` and the shell's braces,
// unknown keys), expandNodeValuesAll(), the `vars` option
// of a node and of the rig file (names, values, defaults merged key by key),
// and runAll() with a command per node, checked before any node starts.
import {
  assertEquals,
  assertMatch,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  expandNodeValues,
  expandNodeValuesAll,
  NODE_VALUE_KEYS,
  parseRig,
  RigFileError,
  runAll,
  SshNode,
  type ValuesNode,
} from "../mod.ts";
import { validateNodeOptions } from "../src/node/_node_options.ts";

const HOSTILE = [
  "a'b; rm -rf /",
  "$(x)",
  "`id`",
  "${HOME}",
  "a b\tc",
  "line1\nline2",
  "'",
  '"',
  "\\",
  "*",
  "~",
  "-n",
  "",
  "ünï",
];

const node: ValuesNode = {
  name: "dut1",
  host: "10.0.0.11",
  user: "pi",
  device: "board a",
  devip: "192.168.1.7",
  vars: { slot: "3", evil: "a'b; rm -rf /", sub: "$(x)", empty: "" },
};

Deno.test("expandNodeValues() fills in each key, shell-quoted, and leaves the shell's braces alone", () => {
  const table: [string, string][] = [
    ["echo {name}", "echo dut1"],
    ["{host} {user} {device} {devip}", "10.0.0.11 pi 'board a' 192.168.1.7"],
    ["flash --slot={slot}", "flash --slot=3"],
    ["echo {evil}", `echo 'a'\\''b; rm -rf /'`],
    ["echo {sub}", "echo '$(x)'"],
    ["echo x{empty}y", "echo x''y"],
    ["awk '{print $1}'", "awk '{print $1}'"],
    ["find . -exec ls {} +", "find . -exec ls {} +"],
    ["echo ${HOME} ${name}", "echo ${HOME} ${name}"],
    ["echo {a,b} {1..3} { name }", "echo {a,b} {1..3} { name }"],
    ["{ echo; } {name}", "{ echo; } dut1"],
    ["echo {", "echo {"],
    ["echo {{name}}", "echo {name}"],
    ["echo {{{name}}}", "echo {{name}}"],
    ["{name}{name}", "dut1dut1"],
  ];
  for (const [template, want] of table) {
    assertEquals(expandNodeValues(template, node), want, template);
  }
});

Deno.test("expandNodeValues() returns a command without { unchanged, even with }}", () => {
  for (const cmd of ["uptime", "echo }}", "echo }", ""]) {
    assertStrictEquals(expandNodeValues(cmd, node), cmd);
  }
  assertEquals(
    expandNodeValuesAll("uptime", [node, node]),
    ["uptime", "uptime"],
  );
});

Deno.test("a substituted hostile value reaches the shell as one word, byte for byte", async () => {
  const n: ValuesNode = {
    name: "n",
    host: "h",
    vars: Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v])),
  };
  for (let i = 0; i < HOSTILE.length; i++) {
    const cmd = expandNodeValues(`printf '%s|' {v${i}}`, n);
    const out = await new Deno.Command("sh", { args: ["-c", cmd] }).output();
    assertEquals(
      new TextDecoder().decode(out.stdout),
      `${HOSTILE[i]}|`,
      JSON.stringify(HOSTILE[i]),
    );
  }
});

Deno.test("expandNodeValues() names the key, the node and the known keys for an unknown key", () => {
  const e = assertThrows(
    () => expandNodeValues("echo {rack}", node),
    ConfigurationError,
  );
  assertEquals(
    e.message,
    'Unknown key "rack" in the command for node "dut1": known keys are name, host, user, device, devip, slot, evil, sub, empty (write "{{rack}}" for the literal text)',
  );
  // A brace pair around a name is a key, whatever the shell meant by it.
  assertThrows(
    () => expandNodeValues("awk '{print}'", node),
    ConfigurationError,
    'Unknown key "print" in the command for node "dut1": known keys are name, host, user, device, devip, slot, evil, sub, empty (write "{{print}}" for the literal text)',
  );
  // Only own keys count: an object's inherited names are no values.
  assertThrows(
    () => expandNodeValues("echo {constructor}", node),
    ConfigurationError,
    'Unknown key "constructor"',
  );
});

Deno.test("a built-in key the node has no value for is an error, not an empty word", () => {
  const bare: ValuesNode = { name: "n2", host: "h" };
  assertThrows(
    () => expandNodeValues("ping {devip}", bare),
    ConfigurationError,
    'Key "devip" in the command has no value for node "n2": give it "devip:" in the rig file',
  );
  assertThrows(
    () => expandNodeValues("echo {user}", { ...bare, user: null }),
    ConfigurationError,
    "its user is left to ssh's config",
  );
  // An SshNode without `user` is root's.
  assertEquals(
    expandNodeValues("{user}", new SshNode({ name: "r", host: "h" })),
    "root",
  );
});

Deno.test("expandNodeValuesAll() gives one command per node and names every node that fails", () => {
  const nodes: ValuesNode[] = ["n1", "n2", "n3", "n4"].map((name, i) => ({
    name,
    host: `10.0.0.${i + 1}`,
    vars: i % 2 === 0 ? { slot: String(i) } : {} as Record<string, string>,
  }));
  assertEquals(
    expandNodeValuesAll("ping {host}", nodes),
    ["ping 10.0.0.1", "ping 10.0.0.2", "ping 10.0.0.3", "ping 10.0.0.4"],
  );
  const e = assertThrows(
    () => expandNodeValuesAll("flash {slot}", nodes),
    ConfigurationError,
  );
  assertMatch(
    e.message,
    /^Unknown key "slot" in the command for node "n2": .*; 1 more node fails too: n4$/,
  );
  assertThrows(
    () => expandNodeValuesAll("{rack}", nodes),
    ConfigurationError,
    "; 3 more nodes fail too: n[2-4]",
  );
  // Braces that name no key are the shell's.
  assertEquals(expandNodeValuesAll("{", nodes), nodes.map(() => "{"));
  assertEquals(expandNodeValuesAll("{name}", []), []);
});

Deno.test("the vars option: names like shell variables, no built-in key, text values", () => {
  validateNodeOptions({ name: "n", host: "h", vars: { a_1: "x", _b: "" } });
  const table: [unknown, string][] = [
    [
      { "1x": "a" },
      'Invalid vars key "1x" for node "n": use letters, digits and "_", not a digit first',
    ],
    [{ "a-b": "a" }, 'Invalid vars key "a-b" for node "n"'],
    [{ "": "a" }, 'Invalid vars key "" for node "n"'],
    [
      { host: "a" },
      'Invalid vars key "host" for node "n": {host} is a built-in value, choose another name',
    ],
    [
      { a: 1 },
      'Invalid value of vars key "a" for node "n": give text, not number',
    ],
    [["a"], 'Invalid vars for node "n": give a mapping of names to text'],
    ["a=b", 'Invalid vars for node "n": give a mapping of names to text'],
  ];
  for (const [vars, want] of table) {
    assertThrows(
      () =>
        validateNodeOptions({
          name: "n",
          host: "h",
          vars: vars as Record<string, string>,
        }),
      ConfigurationError,
      want,
      JSON.stringify(vars),
    );
  }
  assertEquals(NODE_VALUE_KEYS, ["name", "host", "user", "device", "devip"]);
});

Deno.test("a node holds a copy of its vars, and node.with() keeps them", () => {
  const vars = { slot: "1" };
  const n = new SshNode({ name: "n", host: "h", vars });
  vars.slot = "2";
  assertEquals(n.vars, { slot: "1" });
  assertEquals(n.with({ user: "pi" }).vars, { slot: "1" });
  assertEquals(new SshNode({ name: "m", host: "h" }).vars, undefined);
});

const VARS_RIG = `
defaults:
  vars: { site: lab, rack: r0 }
rigs:
  lab:
    defaults:
      vars: { rack: r1, slot: 0 }
    nodes:
      a: { host: 10.0.0.1, vars: { slot: 3, fw: "build 42" } }
      b: { host: 10.0.0.2 }
      c: { host: 10.0.0.3, vars: { site: "" } }
`;

Deno.test("rig file vars: defaults merged key by key, the node's own win, numbers as text", () => {
  const rig = parseRig(VARS_RIG);
  assertEquals(rig.nodes.map((n) => [n.name, n.vars]), [
    ["a", { site: "lab", rack: "r1", slot: "3", fw: "build 42" }],
    ["b", { site: "lab", rack: "r1", slot: "0" }],
    ["c", { site: "", rack: "r1", slot: "0" }],
  ]);
  assertEquals(
    expandNodeValuesAll("echo {name} {site} {rack} {slot}", rig.nodes),
    ["echo a lab r1 3", "echo b lab r1 0", "echo c '' r1 0"],
  );
  // Hosts outside the rig take the rig's defaults, vars included.
  const [adHoc] = rig.select("10.9.9.9");
  assertEquals(adHoc.vars, { site: "lab", rack: "r1", slot: "0" });
});

Deno.test("rig file vars: each bad name or value is refused at its line and column", () => {
  const table: [string, string][] = [
    ["vars: { 1x: a }", '4:29: Invalid vars key "1x": use letters'],
    [
      "vars: { devip: a }",
      '4:29: Invalid vars key "devip": {devip} is a built-in value',
    ],
    [
      "vars: { a: [1] }",
      '4:32: Invalid value (a list) of var "a": give text or a number',
    ],
    [
      "vars: { a: true }",
      '4:32: Invalid value true of var "a": give text or a number',
    ],
    ["vars: { a: null }", '4:32: Invalid value (empty) of var "a"'],
    ["vars: 3", "4:27: Invalid vars 3: give a mapping of keys"],
    ["varz: {}", '4:21: Unknown key "varz" in node "a": did you mean "vars"?'],
  ];
  for (const [entry, want] of table) {
    const text = `rigs:\n  r:\n    nodes:\n      a: { host: h, ${entry} }\n`;
    const e = assertThrows(() => parseRig(text), RigFileError);
    assertMatch(e.message, new RegExp(`^<inline>:${escape(want)}`), entry);
  }
  const inDefaults = "defaults:\n  vars:\n    bad-name: x\nrigs:\n  r:\n" +
    "    nodes:\n      a: h\n";
  assertThrows(
    () => parseRig(inDefaults),
    RigFileError,
    '<inline>:3:5: Invalid vars key "bad-name"',
  );
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const locals = (names: string[]) =>
  names.map((name, i) =>
    new SshNode({
      name,
      host: "localhost",
      transport: "local",
      silent: true,
      vars: { slot: String(i + 1) },
    })
  );

Deno.test("runAll() with a function gives each node its own command", async () => {
  const nodes = locals(["a", "b", "c"]);
  const results = await runAll(
    nodes,
    (n) => expandNodeValues("echo {name} in {slot}", n),
  );
  assertEquals(results.map((r) => [r.node, r.cmd, r.stdout]), [
    ["a", "echo a in 1", "a in 1\n"],
    ["b", "echo b in 2", "b in 2\n"],
    ["c", "echo c in 3", "c in 3\n"],
  ]);
  // A string is the same command everywhere, used as given.
  const literal = await runAll(nodes.slice(0, 1), "echo '{name}'");
  assertEquals(literal[0].stdout, "{name}\n");
});

Deno.test("runAll() makes every node's command before it starts the first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_values_" });
  try {
    const nodes = locals(["a", "b", "c"]);
    const asked: string[] = [];
    await assertRejects(
      () =>
        runAll(nodes, (n) => {
          asked.push(n.name);
          return expandNodeValues(
            n.name === "c" ? "touch {rack}" : `touch ${dir}/{name}`,
            n,
          );
        }),
      ConfigurationError,
      'Unknown key "rack" in the command for node "c"',
    );
    assertEquals(asked, ["a", "b", "c"]);
    const [empty] = await runAll(nodes, (n) => n.name === "b" ? " " : "true")
      .then(() => [null], (e) => [e]);
    assertMatch(
      (empty as Error).message,
      /^The command for node "b" is refused: Invalid command " ": give a non-empty command$/,
    );
    const made = [];
    for await (const e of Deno.readDir(dir)) made.push(e.name);
    assertEquals(made, [], "nothing ran anywhere");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
