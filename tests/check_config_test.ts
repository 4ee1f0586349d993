// `fiwi check` and the ssh configuration in effect (`ssh -G`): the parser
// of ssh's dump, the library call that runs it for a node, and check's hints
// naming the port, user and proxy ssh really used where ssh's own message
// names none, against the loopback sshd behind ssh config aliases.
import { assertEquals, assertStringIncludes } from "jsr:@std/assert@^1";
import { effectiveSshConfig, SshNode } from "../mod.ts";
import {
  parseEffectiveSshConfig,
  parseProxyJump,
} from "../src/transport/ssh_config.ts";
import { fiwi } from "./_cli_harness.ts";
import { skipHere, startLoopbackRig } from "./_loopback.ts";

Deno.test("parseEffectiveSshConfig() reads ssh -G output: the first value of a keyword counts, none is null", async (t) => {
  const cases: {
    name: string;
    text: string;
    want: ReturnType<typeof parseEffectiveSshConfig>;
  }[] = [
    {
      name: "address, port, user and a jump host",
      text:
        "user alice\nhostname 10.0.0.5\nport 2222\nproxyjump bob@[10.0.0.1]:2200\ncontrolpath /run/cm/abc\n",
      want: {
        hostname: "10.0.0.5",
        port: 2222,
        user: "alice",
        proxyJump: "bob@[10.0.0.1]:2200",
        proxyCommand: null,
        controlPath: "/run/cm/abc",
      },
    },
    {
      name: "a proxy command with spaces, the first port wins",
      text:
        "hostname h\nport 22\nport 23\nuser u\nproxycommand nc %h %p\ncontrolpath none\n",
      want: {
        hostname: "h",
        port: 22,
        user: "u",
        proxyJump: null,
        proxyCommand: "nc %h %p",
        controlPath: null,
      },
    },
    { name: "no address: not ssh -G output", text: "port 22\n", want: null },
    { name: "a port out of range", text: "hostname h\nport 0\n", want: null },
    { name: "nothing", text: "", want: null },
  ];
  for (const { name, text, want } of cases) {
    await t.step(
      name,
      () => assertEquals(parseEffectiveSshConfig(text), want),
    );
  }
});

Deno.test("parseProxyJump() splits the hops, brackets and ssh:// included", () => {
  assertEquals(
    parseProxyJump("ssh://pi@gw:2200,[fe80::1]:22,bob@[10.0.0.1]:2201,plain"),
    [
      { user: "pi", host: "gw", port: 2200 },
      { host: "fe80::1", port: 22 },
      { user: "bob", host: "10.0.0.1", port: 2201 },
      { host: "plain" },
    ],
  );
  assertEquals(parseProxyJump("bad host,ok"), [{ host: "ok" }]);
});

Deno.test("effectiveSshConfig() asks ssh -G with the node's own options; null where ssh's config is not the node's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_sshg_" });
  try {
    const config = `${dir}/ssh_config`;
    await Deno.writeTextFile(
      config,
      "Host dut\n  HostName 10.9.8.7\n  Port 2222\n  User alice\n  ProxyJump bob@10.9.8.1:2200\n",
    );
    const dut = new SshNode({
      name: "dut",
      host: "dut",
      user: null,
      sshConfig: config,
    });
    const { controlPath, ...rest } = (await effectiveSshConfig(dut.spec))!;
    assertEquals(rest, {
      hostname: "10.9.8.7",
      port: 2222,
      user: "alice",
      proxyJump: "bob@[10.9.8.1]:2200",
      proxyCommand: null,
    });
    // ssh's own %C, where the node's master would listen.
    assertEquals(controlPath?.startsWith(`${dut.controlDir}/`), true);
    // The node's own settings win over the config, as in its runs.
    const own = dut.with({ port: 2300, user: "carol", controlMaster: false });
    const seen = await effectiveSshConfig(own.spec);
    assertEquals([seen?.port, seen?.user], [2300, "carol"]);
    // A jump-mode relay is ssh's own -J.
    const jump = dut.with({ relay: "gw:2201", relayMode: "jump" });
    assertEquals((await effectiveSshConfig(jump.spec))?.proxyJump, "gw:2201");
    for (
      const other of [
        dut.with({ relay: "gw" }),
        dut.with({ transport: "local" }),
      ]
    ) {
      assertEquals(await effectiveSshConfig(other.spec), null);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "fiwi check names the port, user and proxy of the ssh config where ssh's message does not",
  ignore: skipHere("check names the ssh config's port, user and proxy"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const [a, b] = rig.hosts;
  const base = await Deno.readTextFile(rig.sshConfig);
  const config = `${rig.dir}/alias_config`;
  // Hosts outside the rig (a name with a dot), aliases without user@:
  // address, port, user and proxy are the ssh config's.
  await Deno.writeTextFile(
    config,
    [
      "Host jport.lab",
      `  HostName ${b}`,
      "  Port 1",
      `  User ${rig.user}`,
      `  ProxyJump ${rig.user}@${a}:${rig.port}`,
      "Host jdead.lab",
      `  HostName ${b}`,
      `  Port ${rig.port}`,
      `  User ${rig.user}`,
      `  ProxyJump ${rig.user}@127.0.0.5:1`,
      "Host stall.lab",
      `  HostName ${b}`,
      `  Port ${rig.port}`,
      `  User ${rig.user}`,
      // A peer that says hello and then nothing: ssh waits in the key
      // exchange (its ConnectTimeout is over), fiwi's connect timeout ends it.
      `  ProxyCommand sh -c "printf 'SSH-2.0-stall\\r\\n'; exec sleep 5"`,
      base,
    ].join("\n"),
  );
  const rigFile = `${rig.dir}/rigs.yaml`;
  await Deno.writeTextFile(
    rigFile,
    [
      "rigs:",
      "  aliases:",
      `    defaults: { sshConfig: ${config}, connectTimeout: 1s }`,
      "    nodes:",
      "      unused: { transport: local }",
      "",
    ].join("\n"),
  );
  const r = await fiwi([
    "check",
    "--no-log",
    "--rig",
    rigFile,
    "-w",
    "jport.lab,jdead.lab,stall.lab",
    "--json",
  ], { cwd: rig.dir });
  assertEquals(r.code, 1, r.stderr);
  const checks = new Map<string, Record<string, unknown>>(
    r.stdout.trim().split("\n").map((l) => JSON.parse(l))
      .filter((c) => c.node).map((c) => [c.node, c]),
  );
  const jumpAt = `${rig.user}@[${a}]:${rig.port}`;

  await t.step("a refusal behind the jump host: the config's port", () => {
    const c = checks.get("jport.lab")!;
    assertEquals([c.problem, c.hop], ["unreachable", "node"]);
    assertEquals(
      c.hint,
      `Nothing accepts connections on ${b}:1: start sshd there or fix "port" (through ProxyJump "${jumpAt}" of your ssh config, which answered)`,
    );
  });

  await t.step("a jump host that refuses: named as the failing hop", () => {
    const c = checks.get("jdead.lab")!;
    assertEquals([c.problem, c.hop], ["unreachable", "relay"]);
    assertEquals(
      c.hint,
      `The ProxyJump "${rig.user}@[127.0.0.5]:1" of your ssh config failed, not the node: Nothing accepts connections on 127.0.0.5:1: start sshd there or fix the ssh config's "ProxyJump"`,
    );
  });

  await t.step("no login in time: the config's user, address and proxy", () => {
    const c = checks.get("stall.lab")!;
    assertEquals(c.problem, "timeout");
    assertStringIncludes(
      String(c.hint),
      `No login within 1.00 s as ${rig.user}@${b}:${rig.port} through ProxyCommand "sh -c \"printf`,
    );
  });
});
