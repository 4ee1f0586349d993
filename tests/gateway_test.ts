// A tree through gateways (src/gateway/): a 2-gateway tree, g2 behind g1,
// over the loopback rig. Runs through it give the results of flat mode; a
// hung node times out; fiwi SIGKILLed mid-run, or a gateway's session
// killed, leaves nothing on the gateways or the nodes; hostile strings
// reach the node as data. The gateways ssh to the nodes with the node
// account's own keys (the harness's relay setup), so it needs root.
// FIWI_GATEWAY_NODES sets how many nodes sit behind the gateways (default
// 8), on the rig's two addresses.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
} from "jsr:@std/assert@^1";
import {
  closeGateways,
  ConnectionError,
  parseRig,
  pullAll,
  pushAll,
  RigFileError,
  runAll,
  type RunResult,
  SshNode,
  type SshNodeOptions,
} from "../mod.ts";
import { GATEWAY_NAME } from "../src/gateway/program.ts";
import { gatewayBytesSent } from "../src/gateway/channel.ts";
import { shellQuote } from "../src/transport/quote.ts";
import {
  countCarrying,
  countExact,
  type LoopbackRig,
  marker,
  skipReasonFor,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import {
  GONE_WITHIN,
  killAfterReady,
  settlesTo,
  settlesToZero,
} from "./_wait.ts";
import { startFiwi } from "./_cli_harness.ts";

const ignore = skipReasonFor(
  "gateway tests",
  "relay",
  "second-address",
  "node-is-local",
) !== null;
const NODES = Number(Deno.env.get("FIWI_GATEWAY_NODES") ?? "8");
const CHILD = new URL("./fixtures/gateway_child.ts", import.meta.url);

/** Strings a node name, a value or a command may hold (the hardening list). */
const HOSTILE = [
  "a'b; rm -rf /",
  "$(touch gw-pwned)",
  "`touch gw-pwned`",
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
  "x; exit 99",
  "S 1 5",
];

/** The tree: g1 on hosts[0], g2 on hosts[1] behind g1, nodes split between them. */
interface Tree {
  g1: SshNode;
  g2: SshNode;
  /** Behind a gateway, in host order: even ones behind g1, odd ones behind g2. */
  nodes: SshNode[];
  /** The same hosts, reached directly. */
  flat: SshNode[];
}

function treeSpecs(
  rig: LoopbackRig,
  extra: Partial<SshNodeOptions> = {},
): (SshNodeOptions & { gatewayName?: string })[] {
  const base = { port: rig.port, user: rig.user, sshConfig: rig.sshConfig };
  const cm = { controlDir: `${rig.dir}/cm` };
  return [
    { name: "g1", host: rig.hosts[0], ...base, ...cm },
    { name: "g2", host: rig.hosts[1], ...base, gatewayName: "g1" },
    ...Array.from({ length: NODES }, (_, i) => ({
      name: `n${i}`,
      // The dev permissions reach two addresses: nodes alternate on them.
      host: rig.hosts[i % 2],
      ...base,
      ...extra,
      gatewayName: i % 2 ? "g2" : "g1",
    })),
  ];
}

function makeTree(rig: LoopbackRig, extra: Partial<SshNodeOptions> = {}): Tree {
  const made = new Map<string, SshNode>();
  for (const { gatewayName, ...spec } of treeSpecs(rig, extra)) {
    const gateway = gatewayName ? made.get(gatewayName) : undefined;
    made.set(spec.name, new SshNode({ ...spec, gateway }));
  }
  const nodes = [...made.values()].slice(2);
  return {
    g1: made.get("g1")!,
    g2: made.get("g2")!,
    nodes,
    flat: nodes.map((n) =>
      n.with({ gateway: undefined, controlDir: `${rig.dir}/cm` })
    ),
  };
}

/**
 * Pids of gateway programs and their subshells (stdin holders and
 * supervisors included) of the node user. Another run's leftovers must not count here: each test takes
 * this set first and counts only what is new.
 */
/** GATEWAY_NAME as a pattern that does not match the pgrep's own shell. */
const SELF_PROOF_NAME = `[${GATEWAY_NAME[0]}]${GATEWAY_NAME.slice(1)}`;

async function gatewayPids(rig: LoopbackRig): Promise<Set<number>> {
  const r = await rig.sh(
    `pgrep -u "$(id -u)" -f '${SELF_PROOF_NAME} [0-9a-f]+$' || true`,
  );
  return new Set(r.stdout.split(/\s+/).filter(Boolean).map(Number));
}

/** Gateway processes of this test: those not in `before`. */
async function gatewayLeftovers(
  rig: LoopbackRig,
  before: Set<number>,
): Promise<number> {
  return [...await gatewayPids(rig)].filter((p) => !before.has(p)).length;
}

/** What a result says, without what differs between two equal runs. */
function comparable(r: RunResult) {
  return {
    node: r.node,
    code: r.code,
    signal: r.signal,
    success: r.success,
    started: r.started,
    stdout: r.stdout,
    stderr: r.stderr,
    error: r.error?.message ?? null,
  };
}

Deno.test({
  name: "gateway tree",
  ignore,
  sanitizeOps: true,
  sanitizeResources: true,
}, async (t) => {
  await using rig = await startLoopbackRig();
  if (!rig.relayReady) {
    console.warn("gateway steps skipped: the gateways need the relay account");
    return;
  }
  const before = await gatewayPids(rig);
  const tree = makeTree(rig);
  try {
    await t.step(
      "runAll through the tree gives flat mode's results",
      async () => {
        const cmd = "echo on $(hostname); printf 'a\\n\\nb'; " +
          "echo warn >&2; head -c 3000 /dev/zero | tr '\\0' y; echo; " +
          'read x; echo "got $x"; exit 7';
        const opts = { stdin: "hello there\n", retry: false as const };
        const lines: string[] = [];
        const viaTree = await runAll(tree.nodes, cmd, {
          ...opts,
          onLine: (l) =>
            lines.push(`${l.node} ${l.stream} ${l.partial} ${l.text}`),
        });
        const flat = await runAll(tree.flat, cmd, opts);
        assertEquals(viaTree.map(comparable), flat.map(comparable));
        for (const r of viaTree) {
          assertEquals(r.code, 7);
          assert(r.remotePid !== null && r.remotePid > 0);
          assertStringIncludes(r.stdout, "got hello there\n");
          assertStringIncludes(r.stdout, "\nb" + "y".repeat(3000) + "\n");
        }
        // A line cut into records arrives whole, and "b" without its newline
        // stays a partial line only at the end of a stream.
        // A line cut into records arrives whole, "b" without its newline is
        // no line of its own, and each line is streamed once.
        assert(lines.includes(`n0 stdout false b${"y".repeat(3000)}`));
        assertEquals(lines.filter((l) => l.startsWith("n0 stdout")).length, 5);
      },
    );

    await t.step(
      "lines before and after the framer's switch to awk stream as flat",
      async () => {
        // The program's shell frames a stream's first 8 lines, awk the rest:
        // long lines and a last line without newline on both sides.
        const long = (c: string) => `head -c 5000 /dev/zero | tr '\\0' ${c}`;
        const cmd = `${long("e")} >&2; echo >&2; echo err2 >&2; ` +
          "i=0; while [ $i -lt 12 ]; do i=$((i+1)); echo line$i; done; " +
          `${long("z")}; echo; printf tail; printf short >&2`;
        const seen = async (nodes: readonly SshNode[]) => {
          const lines: string[] = [];
          const rs = await runAll(nodes.slice(0, 2), cmd, {
            retry: false,
            onLine: (l) =>
              lines.push(`${l.node} ${l.stream} ${l.partial} ${l.text}`),
          });
          return { rs: rs.map(comparable), lines: lines.sort() };
        };
        const [viaTree, flat] = [await seen(tree.nodes), await seen(tree.flat)];
        assertEquals(viaTree, flat);
        assertEquals(viaTree.rs[0].stdout.split("\n").length, 14);
        assert(viaTree.lines.includes(`n0 stdout false ${"z".repeat(5000)}`));
        assert(viaTree.lines.includes(`n0 stderr false ${"e".repeat(5000)}`));
        assert(viaTree.lines.includes("n0 stdout true tail"));
      },
    );

    await t.step(
      "stdin, a partial last line and binary-ish bytes",
      async () => {
        const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256 || 1);
        const [text, binary] = await Promise.all([
          tree.nodes[1].rexec("cat", { stdin: "one\ntwo", retry: false }),
          tree.nodes[0].rexec(
            "od -An -v -tu1 | tr -s ' \\n' '\\n\\n' | grep -c .",
            {
              stdin: bytes,
              retry: false,
            },
          ),
        ]);
        assertEquals([text.stdout, text.code], ["one\ntwo", 0]);
        assertEquals(binary.stdout.trim(), String(bytes.byteLength));
      },
    );

    await t.step(
      "a client that ends before its input was sent holds up no other",
      async () => {
        // The gateway's holder drains what comes after the client's end:
        // else the program's loop blocks on a full fifo, and every later
        // record of the gateway with it.
        const input = new Uint8Array(4 << 20);
        const [early, other] = await within(
          20_000,
          Promise.all([
            tree.nodes[0].rexec("exit 3", { stdin: input, retry: false }),
            tree.nodes[2].rexec("sleep 1; echo fine", { retry: false }),
          ]),
          "both runs",
        );
        assertEquals([early.code, other.stdout], [3, "fine\n"]);
        const next = await within(
          10_000,
          tree.nodes[0].rexec("echo next", { retry: false }),
          "a run after it on the same gateway",
        );
        assertEquals(next.stdout, "next\n");
      },
    );

    await t.step(
      "the command timeout holds behind a nested gateway",
      async () => {
        const token = marker();
        const t0 = performance.now();
        const r = await tree.nodes[1].rexec(`sleep ${token}`, {
          cmdTimeout: 1000,
          retry: false,
        });
        assertEquals(r.timedOut, "command");
        assert(performance.now() - t0 < 1000 + GONE_WITHIN);
        assertEquals(
          await settlesToZero(() => countExact(`sleep ${token}`, rig)),
          0,
        );
      },
    );

    await t.step("a node that never answers times out at connect", async () => {
      // Accepts TCP, never says a word: ssh on the gateway waits for a banner.
      const silent = Deno.listen({ hostname: rig.hosts[0], port: 0 });
      const held: Deno.Conn[] = [];
      const accepting = (async () => {
        for await (const c of silent) held.push(c);
      })();
      try {
        const node = new SshNode({
          name: "mute",
          host: rig.hosts[0],
          port: (silent.addr as Deno.NetAddr).port,
          user: rig.user,
          gateway: tree.g2,
        });
        const t0 = performance.now();
        const r = await node.rexec("true", {
          connectTimeout: 1500,
          retry: false,
        });
        assertEquals(r.timedOut, "connect");
        assert(performance.now() - t0 < 1500 + GONE_WITHIN);
      } finally {
        silent.close();
        await accepting.catch(() => {});
        for (const c of held) c.close();
      }
    });

    await t.step(
      "hostile strings reach the node as data, not through a gateway's shell",
      async () => {
        const cmd = HOSTILE.map((v) => `printf '%s|' ${shellQuote(v)}`).join(
          "; ",
        );
        const r = await tree.nodes[1].rexec(`cd /tmp && ${cmd}`, {
          retry: false,
        });
        assertEquals(r.stdout, HOSTILE.map((v) => `${v}|`).join(""));
        const named = new SshNode({
          name: HOSTILE[0],
          host: rig.hosts[1],
          port: rig.port,
          user: rig.user,
          gateway: tree.g2,
        });
        const s = await named.rexec("echo '$(touch /tmp/gw-pwned)'", {
          retry: false,
        });
        assertEquals([s.node, s.stdout], [
          HOSTILE[0],
          "$(touch /tmp/gw-pwned)\n",
        ]);
        const found = await rig.sh(
          "ls /tmp/gw-pwned ~/gw-pwned 2>/dev/null | wc -l",
        );
        assertEquals(found.stdout.trim(), "0");
      },
    );

    await t.step(
      "pushAll uploads one copy per gateway, and a failing node blocks no other",
      async () => {
        const local = await Deno.makeTempDir({ prefix: "fiwi_gw_push_" });
        const dest = `/tmp/fiwi_gw_push_${rig.port}`;
        // Every byte value, newlines and NULs included, in no line structure.
        const payload = new Uint8Array(3 * 1024 * 1024 + 77).map((_, i) =>
          (i * 131 + (i >> 9)) & 0xff
        );
        await Deno.writeFile(`${local}/fw.bin`, payload);
        // Refused at once behind g1: its ssh dies while its copy is fed.
        const refused = new SshNode({
          name: "refused",
          host: rig.hosts[0],
          port: 1,
          user: rig.user,
          retry: false,
          gateway: tree.g1,
        });
        // Connects forever behind g2: its copy's feeder blocks on a full
        // fifo until the connect timeout kills its ssh.
        const stalled = new SshNode({
          name: "stalled",
          host: rig.hosts[1],
          port: rig.port,
          user: rig.user,
          retry: false,
          connectTimeout: 15_000,
          sshOptions: { ProxyCommand: "sleep 60" },
          gateway: tree.g2,
        });
        const nodes = [...tree.nodes, refused, stalled];
        const order: string[] = [];
        try {
          const before = gatewayBytesSent(tree.g1);
          const rs = await pushAll(nodes, `${local}/fw.bin`, dest, {
            verify: true,
            onResult: (r) => order.push(r.node),
          });
          const upload = gatewayBytesSent(tree.g1) - before;
          const copies = upload / payload.byteLength;
          console.log(
            `push of ${payload.byteLength} bytes to ${nodes.length} nodes ` +
              `behind 2 gateways: controller upload ${upload} bytes ` +
              `(${copies.toFixed(3)} copies)`,
          );
          for (const r of rs.slice(0, -2)) {
            assertEquals([r.node, r.success, r.error], [r.node, true, null]);
            assertEquals([r.files, r.bytes], [1, payload.byteLength]);
          }
          const [bad, stuck] = rs.slice(-2);
          assertEquals([bad.node, bad.success], ["refused", false]);
          assertInstanceOf(bad.error, ConnectionError);
          assertEquals([stuck.node, stuck.success, stuck.timedOut], [
            "stalled",
            false,
            "connect",
          ]);
          // The stalled node held up no other node behind its gateway.
          assertEquals(order.at(-1), "stalled");
          // One copy staged on g1, one on g2 (through g1): not one a node.
          assert(copies >= 2 && copies < 2.1, `${copies} copies`);
          assertEquals(await Deno.readFile(`${dest}/fw.bin`), payload);
          // Each node read its own copy whole: verify checked its SHA-256.
          const sums = await runAll(tree.nodes, `sha256sum ${dest}/fw.bin`);
          assertEquals(
            new Set(sums.map((r) => r.stdout.split(" ")[0])).size,
            1,
          );
        } finally {
          await Deno.remove(local, { recursive: true });
          await Deno.remove(dest, { recursive: true }).catch(() => {});
        }
      },
    );

    await t.step(
      "pullAll through the tree brings back exact bytes, a file and a tree",
      async () => {
        const src = await Deno.makeTempDir({ prefix: "fiwi_gw_pull_src_" });
        const into = await Deno.makeTempDir({ prefix: "fiwi_gw_pull_" });
        // NULs, long runs without a newline, and no newline at the end.
        const bin = new Uint8Array(1024 * 1024 + 3).map((_, i) =>
          i % 5000 < 4000 ? (i * 7) & 0xff : (i % 3 ? 0 : 10)
        );
        try {
          await Deno.mkdir(`${src}/tree/sub`, { recursive: true });
          await Deno.writeFile(`${src}/fw.bin`, bin);
          await Deno.writeFile(`${src}/tree/sub/fw.bin`, bin);
          await Deno.writeTextFile(`${src}/tree/a.txt`, "a\n");
          await Deno.chmod(src, 0o755);
          const rs = await pullAll(
            tree.nodes,
            [`${src}/fw.bin`, `${src}/tree`],
            into,
            { verify: true },
          );
          for (const r of rs) {
            assertEquals([r.node, r.success, r.error], [r.node, true, null]);
            assertEquals(r.files, 3);
            const got = `${into}/${r.node}`;
            assertEquals(await Deno.readFile(`${got}/fw.bin`), bin);
            assertEquals(await Deno.readFile(`${got}/tree/sub/fw.bin`), bin);
            assertEquals(await Deno.readTextFile(`${got}/tree/a.txt`), "a\n");
          }
        } finally {
          await Deno.remove(src, { recursive: true });
          await Deno.remove(into, { recursive: true });
        }
      },
    );

    await t.step(
      "a gateway removes the files of closed clients in batches, not never",
      async () => {
        // 10 rounds: at least 5 * NODES clients a gateway, more than the
        // 32 closed clients a batch waits for.
        for (let round = 0; round < 10; round++) {
          const results = await runAll(tree.nodes, "true", { retry: false });
          assert(results.every((r) => r.success), "every run succeeded");
        }
        // A done marker (.d) a client: closed clients whose files wait.
        const r = await rig.sh(
          "for d in /tmp/fiwi-gw.*; do ls \"$d\" | grep -c '[.]d$'; done",
        );
        const waiting = r.stdout.split(/\s+/).filter(Boolean).map(Number);
        assert(waiting.length > 0, "the gateway program's directory is there");
        for (const n of waiting) assert(n < 32, `${n} closed clients' files`);
      },
    );

    await t.step("a closed tree leaves no gateway program behind", async () => {
      await closeGateways();
      assertEquals(await settlesToZero(() => gatewayLeftovers(rig, before)), 0);
    });
  } finally {
    await closeGateways();
    await Promise.all([tree.g1.close(), tree.g2.close()]);
  }
});

Deno.test({
  name:
    "a gateway's session killed mid-run ends its nodes' runs as \"gateway lost\"",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  if (!rig.relayReady) return;
  const before = await gatewayPids(rig);
  const tree = makeTree(rig);
  const token = marker();
  try {
    let up = 0;
    let allUp: () => void;
    const ready = new Promise<void>((r) => allUp = r);
    const runs = runAll(tree.nodes, `echo up; sleep ${token}`, {
      retry: false,
      onLine: (l) => {
        if (l.text === "up" && ++up === tree.nodes.length) allUp();
      },
    });
    await within(20_000 + 500 * NODES, ready, "start of every run");
    // The sshd process serving g1's session: the parent of its program,
    // the oldest of this test's (g2's and the subshells start later).
    const ours = [...await gatewayPids(rig)].filter((p) => !before.has(p));
    const program = Math.min(...ours);
    assert(program > 0, "g1's gateway program runs");
    const ps = await new Deno.Command("ps", {
      args: ["-o", "ppid=", "-p", String(program)],
    }).output();
    const sshd = Number(new TextDecoder().decode(ps.stdout).trim());
    Deno.kill(sshd, "SIGKILL");
    const results = await within(GONE_WITHIN + 2000, runs, "end of the runs");
    for (const r of results) {
      assertInstanceOf(r.error, ConnectionError, `${r.node}: ${r.error}`);
      const message = r.error?.message ?? "";
      assert(message.startsWith("gateway lost: "), `${r.node}: ${message}`);
      assertEquals(r.success, false);
    }
    assertEquals(await settlesToZero(() => countCarrying(token, rig)), 0);
    assertEquals(await settlesToZero(() => gatewayLeftovers(rig, before)), 0);
  } finally {
    await closeGateways();
    await Promise.all([tree.g1.close(), tree.g2.close()]);
  }
});

Deno.test({
  name:
    "fiwi SIGKILLed mid-run through the tree leaves nothing on gateways or nodes",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  if (!rig.relayReady) return;
  const before = await gatewayPids(rig);
  const token = marker();
  const specFile = `${rig.dir}/tree-${token}.json`;
  const specs = treeSpecs(rig).map(({ gatewayName, ...s }) => ({
    ...s,
    gateway: gatewayName,
  }));
  await Deno.writeTextFile(specFile, JSON.stringify(specs));
  await killAfterReady(
    CHILD,
    [specFile, `sleep ${token}`],
    30_000,
    async () => {
      assertEquals(
        await settlesTo(
          () => countExact(`sleep ${token}`, rig),
          NODES,
          5000 + 100 * NODES,
        ),
        NODES,
        "every node runs before the kill",
      );
    },
  );
  // Each within the lifeline's bound of the kill (settlesToZero polls for
  // GONE_WITHIN), the nodes' commands first.
  assertEquals(await settlesToZero(() => countCarrying(token, rig)), 0);
  assertEquals(await settlesToZero(() => gatewayLeftovers(rig, before)), 0);
});

Deno.test("rig file: gateway for the rig, overridden per node, nested; errors at their line", async (t) => {
  const rig = (body: string) =>
    parseRig(`rigs:\n  r:\n${body}`, { file: "gw.yaml" });
  await t.step(
    "a rig-wide gateway, a nested one and a node reached directly",
    () => {
      const r = rig(
        "    gateway: g1\n    nodes:\n      g1: 10.0.0.1\n" +
          "      g2: 10.0.0.2\n      a: { host: 10.0.0.3, gateway: g2 }\n" +
          "      b: 10.0.0.4\n      c: { host: 10.0.0.5, gateway: null }\n",
      );
      const via = Object.fromEntries(
        r.nodes.map((n) => [n.name, n.gateway?.name ?? null]),
      );
      assertEquals(via, { g1: null, g2: "g1", a: "g2", b: "g1", c: null });
      const [g1, g2, a] = r.nodes;
      assert(a.gateway === g2 && g2.gateway === g1, "one node per name");
    },
  );
  const table: [string, string, string][] = [
    [
      "      g1: 10.0.0.1\n      a: { host: 10.0.0.3, gateway: g9 }\n",
      "gw.yaml:5:37",
      'Unknown gateway "g9" for node "a"',
    ],
    [
      "      g1: { host: 10.0.0.1, gateway: g2 }\n      g2: { host: 10.0.0.2, gateway: g1 }\n",
      "gw.yaml:4:38",
      "Gateways form a cycle: g1 -> g2 -> g1",
    ],
    [
      "      g1: { host: 10.0.0.1, gateway: g1 }\n",
      "gw.yaml:4:38",
      'Node "g1" cannot be its own gateway',
    ],
    [
      "      g1: 10.0.0.1\n      a: { host: 10.0.0.3, gateway: g1, transport: ush }\n",
      "gw.yaml:5:37",
      "it needs the ssh transport and no relay",
    ],
    [
      "      g1: 10.0.0.1\n      a: { host: 10.0.0.3, gateway: '$(x)' }\n",
      "gw.yaml:5:37",
      "Invalid gateway",
    ],
  ];
  for (const [nodes, at, says] of table) {
    await t.step(says, () => {
      try {
        rig(`    nodes:\n${nodes}`);
      } catch (e) {
        assertInstanceOf(e, RigFileError);
        assertStringIncludes((e as Error).message, `${at}: `);
        assertStringIncludes((e as Error).message, says);
        return;
      }
      throw new Error(`no RigFileError for ${JSON.stringify(nodes)}`);
    });
  }
});

Deno.test({
  name:
    "fiwi run, poll and check through the rig file's gateways print what flat mode prints",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  if (!rig.relayReady) return;
  const node = (name: string, host: string, gateway?: string) =>
    `      ${name}: { host: ${host}${
      gateway ? `, gateway: ${gateway}` : ""
    } }\n`;
  const yaml = (tree: boolean) =>
    `defaults:\n  user: ${rig.user}\n  port: ${rig.port}\n  sshConfig: ${rig.sshConfig}\n` +
    `rigs:\n  loop:\n${tree ? "    gateway: g1\n" : ""}    nodes:\n` +
    node("g1", rig.hosts[0]) + node("g2", rig.hosts[1]) +
    node("a", rig.hosts[0]) +
    node("b", rig.hosts[1], tree ? "g2" : undefined);
  const outputs: string[] = [];
  const checks: unknown[] = [];
  for (const tree of [true, false]) {
    const file = `${rig.dir}/${tree ? "tree" : "flat"}.yaml`;
    await Deno.writeTextFile(file, yaml(tree));
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm` };
    const run = await startFiwi(
      ["run", "--no-log", "--rig", file, "-w", "a,b", "echo {name}; exit 3"],
      { cwd: rig.dir, env },
    ).done;
    const poll = await startFiwi(
      [
        "poll",
        "--no-log",
        "--rig",
        file,
        "-w",
        "a,b",
        "-n",
        "2",
        "-i",
        "0.5s",
        "echo x",
      ],
      { cwd: rig.dir, env },
    ).done;
    outputs.push(
      run.stdout.replace(/ in [0-9.]+ m?s/, ""),
      poll.stdout.replace(/ [0-9T:.+-]{20,}/g, "").replace(
        / in [0-9.]+ m?s.*/,
        "",
      ),
    );
    const check = await startFiwi(
      ["check", "--no-log", "--no-db", "--json", "--rig", file, "-w", "a,b"],
      { cwd: rig.dir, env },
    ).done;
    checks.push(
      check.stdout.trim().split("\n").map((l) => JSON.parse(l))
        .filter((c) => c.node).map(({ node, ok, problem, target }) => ({
          node,
          ok,
          problem,
          via: target.match(/ through (.*)$/)?.[1] ?? "",
        })).sort((x, y) => x.node.localeCompare(y.node)),
    );
    assertEquals(run.code, 1, run.stderr);
    assertEquals(poll.code, 0, poll.stderr);
    assertEquals(check.code, 0, check.stdout + check.stderr);
  }
  assertEquals(outputs.slice(0, 2), outputs.slice(2));
  // The same results; the table says which way each node was reached.
  type Check = { node: string; ok: boolean; via: string };
  const [tree, flat] = checks as Check[][];
  assertEquals(tree.map((c) => [c.node, c.ok, c.via]), [
    ["a", true, "gateway g1"],
    ["b", true, "gateway g2"],
  ]);
  assertEquals(flat.map((c) => [c.node, c.ok, c.via]), [
    ["a", true, ""],
    ["b", true, ""],
  ]);
  assertStringIncludes(outputs[0], "a: a\n");
  assertStringIncludes(outputs[0], "b: b\n");
});
