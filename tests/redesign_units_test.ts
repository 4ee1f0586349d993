// Issue 19, the parts that are units: node sets stand alone below every
// user (expand and fold in one module, public as "./nodeset"); checking a
// rig file never makes a live node (the registry counted throwaway ones);
// RunOptions is what a user passes, so runAll refuses a read-once stdin and
// a stream payload is the library's own plumbing (runRaw).
import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  type FanoutNode,
  parseRig,
  runAll,
  type RunOptions,
  SshNode,
  type SshNodeOptions,
} from "../mod.ts";
import * as nodeset from "../nodeset.ts";
import * as testing from "../testing.ts";
import { rigTest } from "../mod.ts";
import { validateNodeOptions } from "../src/node/_node_options.ts";
import type { StdinStream } from "../src/process/run_options.ts";
import { runRaw } from "../src/process/session.ts";
import { fakeResult } from "./_fake_result.ts";

const root = new URL("../", import.meta.url);

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** A node that counts what runAll asked of it. */
function countingNode(name: string, calls: string[]): FanoutNode {
  return {
    name,
    prepare: () => {
      calls.push(`prepare ${name}`);
      return Promise.resolve();
    },
    rexec: (cmd: string) => {
      calls.push(`rexec ${name}`);
      return Promise.resolve(fakeResult({ node: name, cmd }));
    },
  };
}

Deno.test("parseRig() leaves only the rig's own nodes in the registry", () => {
  const name = `reg${crypto.randomUUID().slice(0, 8)}`;
  const rig = parseRig(
    `rigs:\n  lab:\n    nodes:\n      ${name}: {host: localhost, transport: local, console: true}\n`,
  );
  const listed = SshNode.getInstances().filter((n) => n.name === name);
  // Before the fix a throwaway node made to validate the entry was listed
  // too, so openConsoles() opened two streams for a one-node rig.
  assertEquals(listed.length, 1);
  assertEquals(listed[0], rig.nodes[0]);
});

Deno.test("validateNodeOptions() checks like a node's first use, and makes no node", () => {
  const name = `val${crypto.randomUUID().slice(0, 8)}`;
  validateNodeOptions({ name, host: "10.0.0.1", user: "lab" });
  const e = assertThrows(
    () => validateNodeOptions({ name, host: "-oProxyCommand=id" }),
    ConfigurationError,
  );
  const node = new SshNode({ name: `${name}x`, host: "-oProxyCommand=id" });
  const same = assertThrows(() => node.validate(), ConfigurationError);
  assertEquals(e.message, same.message);
  assertEquals(
    SshNode.getInstances().filter((n) => n.name === name).length,
    0,
  );
});

Deno.test("runAll() refuses a read-once stdin with a TypeError naming it, before any node is touched", async () => {
  const calls: string[] = [];
  const nodes = [countingNode("a", calls), countingNode("b", calls)];
  const payload = new TextEncoder().encode("hello\n");
  const readOnce: unknown[] = [
    { size: payload.length, stream: bytesStream(payload) },
    { size: payload.length, stream: bytesStream(payload), direct: true },
    bytesStream(payload),
  ];
  for (const stdin of readOnce) {
    const e = await assertRejects(
      () => runAll(nodes, "cat", { stdin } as unknown as RunOptions),
      TypeError,
    );
    assert(/\bstdin\b/.test(e.message), e.message);
  }
  assertEquals(calls, []);
  // Text and bytes are read by every node.
  const results = await runAll(nodes, "cat", { stdin: payload });
  assertEquals(results.map((r) => r.node), ["a", "b"]);
});

Deno.test("RunOptions holds what a user passes: no stream stdin, no stdout plumbing", async () => {
  const stream: StdinStream = {
    size: 1,
    stream: bytesStream(new Uint8Array(1)),
  };
  // @ts-expect-error a stream payload is the library's own plumbing
  const typed: RunOptions = { stdin: stream };
  // @ts-expect-error raw stdout is the library's own plumbing
  const raw: RunOptions = { stdoutFile: "/tmp/x" };
  assertEquals(Object.keys(raw), ["stdoutFile"]);
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
    silent: true,
  });
  const e = await assertRejects(
    () => node.rexec("cat", typed),
    ConfigurationError,
  );
  assert(/Invalid stdin/.test(e.message), e.message);
  await stream.stream.cancel();
});

Deno.test("runRaw(): a direct stream is read by the command itself, to the EOF fiwi sends", async () => {
  await using node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
    silent: true,
  });
  const bytes = new Uint8Array(300_000).fill(9);
  const r = await runRaw(node, "cat | wc -c; echo done", {
    stdin: { size: 200_000, stream: bytesStream(bytes), direct: true },
    cmdTimeout: 10_000,
  });
  assertEquals([r.stdout.replace(/ +/g, ""), r.success], [
    "200000\ndone\n",
    true,
  ]);
});

Deno.test("nodeset.ts is the public node-set module: parse, expand, select and fold", () => {
  assertEquals(nodeset.parseNodeSet("a,b!c"), [
    { op: ",", item: "a" },
    { op: ",", item: "b" },
    { op: "!", item: "c" },
  ]);
  const names = nodeset.expandRanges("n[01-03]");
  assertEquals(names, ["n01", "n02", "n03"]);
  assertEquals(nodeset.foldNames([...names, "x", "h:22"]), "n[01-03],x,h:22");
  assertEquals(nodeset.formatNodeList(["a1", "a2"]), "a[1-2]");
  const u = { rig: "lab", names: ["a1", "a2", "b"], groups: new Map() };
  assertEquals(nodeset.selectNames("a*!a2", u), ["a1"]);
});

Deno.test("src/nodeset/ imports nothing of fiwi but errors.ts", async () => {
  const dir = new URL("src/nodeset/", root);
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const text = await Deno.readTextFile(new URL(e.name, dir));
    for (const m of text.matchAll(/from\s*"(\.[^"]+)"/g)) {
      if (m[1] !== "../errors.ts" && !m[1].startsWith("./")) {
        found.push(`${e.name} -> ${m[1]}`);
      }
    }
  }
  assertEquals(found, []);
});

Deno.test("deno.json exports mod.ts, nodeset.ts and testing.ts", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", root)),
  );
  assertEquals(config.exports, {
    ".": "./mod.ts",
    "./nodeset": "./nodeset.ts",
    "./testing": "./testing.ts",
  });
  assertEquals(testing.rigTest, rigTest);
});

// Every option set to something other than its default, so a setting that
// a copy or the transport spec dropped shows as a difference.
const EVERY_OPTION:
  & Required<
    Omit<SshNodeOptions, "user">
  >
  & { user: string } = {
    name: "n1",
    host: "10.0.0.1",
    user: "pi",
    port: 2222,
    transport: "ssh",
    relay: "gw@10.0.0.254:2200",
    relayMode: "jump",
    // Not valid with a relay, but options are checked at first use only.
    gateway: new SshNode({ name: "gw", host: "10.0.0.250" }),
    ushPath: "/opt/ush",
    controlMaster: false,
    controlPersist: 60_000,
    silent: true,
    console: true,
    consoleCommand: "journalctl -kf",
    device: "dut",
    devip: "10.0.1.1",
    sshConfig: "/etc/fiwi/ssh_config",
    identityFile: "/etc/fiwi/id",
    sshOptions: { ServerAliveInterval: "5" },
    hostKeyCheck: "accept-new",
    connectTimeout: 3000,
    ioTimeout: 4000,
    cmdTimeout: 5000,
    retry: { attempts: 2, delays: [10] },
    vars: { slot: "7" },
    controlDir: "/run/fiwi-test/cm",
  };

Deno.test("SshNode holds every option as a field, declared once", () => {
  const node = new SshNode(EVERY_OPTION);
  for (const [key, value] of Object.entries(EVERY_OPTION)) {
    assertEquals(node[key as keyof SshNodeOptions], value, key);
  }
  assertEquals(node.spec.controlPersist, 60, "spec counts whole seconds");
  assertEquals(node.spec.relay, EVERY_OPTION.relay);
});

Deno.test("node.with() copies every option and changes only the ones given", () => {
  const node = new SshNode(EVERY_OPTION);
  const copy = node.with({ user: "root", cmdTimeout: 9000 });
  assert(copy !== node);
  for (const key of Object.keys(EVERY_OPTION) as (keyof SshNodeOptions)[]) {
    const want = key === "user"
      ? "root"
      : key === "cmdTimeout"
      ? 9000
      : EVERY_OPTION[key];
    assertEquals(copy[key], want, key);
  }
  assertEquals(copy.with({}).spec, { ...copy.spec }, "a plain copy");
  node.silent = false;
  assertEquals(node.with({}).silent, false, "silent as the node has it now");
  assert(SshNode.getInstances().includes(copy), "a copy is a live node");
});
