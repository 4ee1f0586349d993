// The rig-file fuzz list of issue 11: each hostile file is refused with one
// line naming file:line:col, in well under a second of CPU, and `fiwi` exits
// 2 with that line alone. Valid YAML the prescan might misread still loads.
import process from "node:process";
import { assert, assertEquals, assertInstanceOf } from "jsr:@std/assert@^1";
import { parse, stringify } from "jsr:@std/yaml@^1";
import { loadRig, RigFileError } from "../mod.ts";
import { MAX_RIG_FILE_BYTES } from "../src/rigfile/_rig_text.ts";
import { prescanYaml } from "../src/rigfile/_yaml_prescan.ts";
import { parseYamlWithPositions } from "../src/rigfile/_yaml_positions.ts";
import { startFiwi } from "./_cli_harness.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(
    parts.flatMap((p) => typeof p === "string" ? [...enc(p)] : p),
  );

/** CPU milliseconds an async step takes: steady on a loaded machine. */
async function cpuMs(fn: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** The error loadRig(file) rejects with. */
async function refusal(file: string): Promise<RigFileError> {
  const e = await loadRig(file).then(() => null, (e) => e);
  assertInstanceOf(e, RigFileError);
  return e;
}

const NODES = "rigs:\n  r:\n    nodes:\n";

Deno.test("loadRig() names the first byte that is not UTF-8 by line and column", async (t) => {
  const table: [string, Uint8Array, string][] = [
    [
      "0xFF in a value",
      bytes(NODES, "      a: {host: x", [0xff], "}\n"),
      "4:18: Invalid UTF-8: byte 0xFF starts no valid character: save the file as UTF-8",
    ],
    [
      "a lead byte cut short, after a two-byte character",
      bytes("# é", [0xe2, 0x41], "\n", NODES),
      "1:4: Invalid UTF-8: byte 0xE2 starts no valid character: save the file as UTF-8",
    ],
    [
      "a stray continuation byte after a complete character",
      bytes("# é", [0x80], "\n"),
      "1:4: Invalid UTF-8: byte 0x80 starts no valid character: save the file as UTF-8",
    ],
    [
      "an encoded surrogate",
      bytes(NODES, "# ", [0xed, 0xa0, 0x80], "\n"),
      "4:3: Invalid UTF-8: byte 0xED starts no valid character: save the file as UTF-8",
    ],
    [
      "a character cut short at the end of the file",
      bytes(NODES, "#x", [0xf0, 0x9f, 0x98]),
      "4:3: Invalid UTF-8: byte 0xF0 starts no valid character: save the file as UTF-8",
    ],
  ];
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_fuzz_" });
  try {
    for (const [name, content, want] of table) {
      await t.step(name, async () => {
        const file = `${dir}/bad.yaml`;
        await Deno.writeFile(file, content);
        const e = await refusal(file);
        assertEquals(e.message, `${file}:${want}`);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadRig() reads at most 1 MiB: /dev/zero and a 10 MB file are refused at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_fuzz_" });
  try {
    // An 80-byte head of 4 lines, then 40-byte lines.
    const head = NODES + "#".repeat(80 - NODES.length - 1) + "\n";
    const line = "      n0000000: {host: hh, groups: [a]}\n";
    assertEquals([head.length, line.length], [80, 40]);
    const big = `${dir}/big.yaml`;
    await Deno.writeTextFile(big, head + line.repeat(250_000));
    assert((await Deno.stat(big)).size > 10_000_000);
    let e: RigFileError | undefined;
    const ms = await cpuMs(async () => e = await refusal(big));
    const past = MAX_RIG_FILE_BYTES - head.length;
    assertEquals(
      e!.message,
      `${big}:${5 + Math.floor(past / 40)}:${
        (past % 40) + 1
      }: The rig file is larger than 1048576 bytes (1 MiB): give a smaller file`,
    );
    assert(ms < 1000, `10 MB file: ${ms} ms of CPU`);
    if (await Deno.stat("/dev/zero").then(() => true, () => false)) {
      const zeroMs = await cpuMs(async () => e = await refusal("/dev/zero"));
      assertEquals(
        e!.message,
        "/dev/zero:1:1048577: The rig file is larger than 1048576 bytes (1 MiB): give a smaller file",
      );
      assert(zeroMs < 1000, `/dev/zero: ${zeroMs} ms of CPU`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadRig() takes a node with 100 k groups in well under a second", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_fuzz_" });
  try {
    const groups = Array.from({ length: 100_000 }, (_, i) => `g${i}`);
    const file = `${dir}/groups.yaml`;
    await Deno.writeTextFile(
      file,
      `${NODES}      a: {host: x, groups: [${
        groups.join(", ")
      }]}\n      b: y\n`,
    );
    let rig: Awaited<ReturnType<typeof loadRig>> | undefined;
    const ms = await cpuMs(async () => rig = await loadRig(file));
    assertEquals(rig!.groups.size, 100_000);
    assertEquals(rig!.select("@g99999,b").map((n) => n.name), ["a", "b"]);
    assert(ms < 1000, `100 k groups: ${ms} ms of CPU`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the prescan lets valid YAML through that holds tabs, quotes and brackets", () => {
  const table: string[] = [
    "a: |\n  \tindented with a tab inside a block scalar\n\n  more\nb: 1\n",
    "- |\n  x\n  \ty\n- z\n",
    "a: \"multi\n\tline\"\nb: 'it''s\n\tfine'\n",
    "# a comment\twith a tab\n\t# and an indented one\na: 1\n",
    "a: it's [not] {a} collection\nb: x # ] } stray\n",
    "a: [1, [2, {b: 3}],\n\t4]\n",
    "a: &x {b: [1]}\nc: *x\n",
    "url: http://host:80/x#y\n",
    "l1:\n  l2:\n    l3:\n      - - - [[[{x: 1}]]]\n",
  ];
  for (const text of table) {
    assertEquals(prescanYaml(text), null, JSON.stringify(text));
    assertEquals(parseYamlWithPositions(text).data, parse(text), text);
  }
});

Deno.test("the prescan counts the real nesting of random documents in every style", () => {
  // Seeded: the same 1500 documents every run.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const bits = ["a", "\t", " ", "'", '"', "[", "]", "{", "}", "#", ":", "- "];
  bits.push("\n", "|", ">", "&x", "!t", ",", "é", "x y");
  const text = () =>
    Array.from(
      { length: Math.floor(random() * 6) },
      () => bits[Math.floor(random() * bits.length)],
    ).join("");
  const value = (d: number): unknown => {
    const r = random();
    if (d > 6 || r < 0.4) return random() < 0.7 ? text() : 42;
    const n = 1 + Math.floor(random() * 3);
    if (r < 0.7) {
      return Object.fromEntries(
        Array.from({ length: n }, () => [text() || "k", value(d + 1)]),
      );
    }
    return Array.from({ length: n }, () => value(d + 1));
  };
  const depth = (v: unknown): number =>
    typeof v === "object" && v !== null
      ? 1 + Math.max(0, ...Object.values(v).map(depth))
      : 0;
  for (let i = 0; i < 1500; i++) {
    const v = value(0);
    const d = depth(v);
    for (const flowLevel of [-1, 0, 2]) {
      const yaml = stringify(v, { flowLevel });
      assertEquals(prescanYaml(yaml, Math.max(d, 1)), null, yaml);
      if (d > 1) assert(prescanYaml(yaml, d - 1) !== null, yaml);
    }
  }
});

Deno.test("fiwi refuses each fuzzed rig file with one line naming file:line:col and exit 2", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_rig_fuzz_" });
  const cases: [string, Uint8Array | null, string][] = [
    [
      "5000 nested brackets",
      enc("rigs: " + "[".repeat(5000) + "\n"),
      "1:70: Invalid YAML: Collections nest more than 64 levels deep: a rig file needs only a few",
    ],
    [
      "a tab-indented line",
      enc(NODES + "\tdut1: x\n"),
      "4:1: Invalid YAML: Tabs are not allowed for indentation: indent with spaces only",
    ],
    [
      "host: 123",
      enc(NODES + "      a: {host: 123}\n"),
      "4:17: Invalid host 123: give a host name or IP address as text (quote it in YAML)",
    ],
    [
      "non-UTF-8 bytes",
      bytes(NODES, "      a: ", [0xc3, 0x28], "\n"),
      "4:10: Invalid UTF-8: byte 0xC3 starts no valid character: save the file as UTF-8",
    ],
    [
      "/dev/zero",
      null,
      "1:1048577: The rig file is larger than 1048576 bytes (1 MiB): give a smaller file",
    ],
  ];
  try {
    for (const [name, content, want] of cases) {
      await t.step(name, async () => {
        const file = content ? `${dir}/rig.yaml` : "/dev/zero";
        if (content) await Deno.writeFile(file, content);
        else if (!await Deno.stat(file).then(() => true, () => false)) return;
        const r = await startFiwi(["nodes", "--no-log", "--rig", file], {
          cwd: dir,
        }).done;
        assertEquals([r.code, r.stdout, r.stderr], [
          2,
          "",
          `nodes: ${file}:${want}\n`,
        ]);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
