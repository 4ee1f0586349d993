// Inputs that only ssh (or the kernel) used to catch: each is refused up
// front with a ConfigurationError naming the value, or made to work. Where
// ssh itself can judge a value (`ssh -G`), the tables check that fiwi and
// ssh agree.
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import { ConfigurationError, ConnectionError, SshNode } from "../mod.ts";
import { buildArgv } from "../src/transport/argv.ts";
import {
  MAX_ARG_BYTES,
  maxControlDirBytes,
  parseRelay,
  validateArgv,
} from "../src/transport/validate.ts";
import { MAX_TIMEOUT_MS } from "../src/process/run_options.ts";
import { skipHere, startLoopbackRig } from "./_loopback.ts";

type NodeInput = Partial<ConstructorParameters<typeof SshNode>[0]>;

const node = (o: NodeInput) =>
  new SshNode({
    name: "n",
    host: "10.0.0.1",
    controlDir: "/run/fiwi/cm",
    ...o,
  });

/** What `ssh -G` says about the first hop of `argv`: exit code and stderr. */
async function sshG(argv: string[]): Promise<{ code: number; out: string }> {
  const dash = argv.indexOf("--");
  const out = await new Deno.Command("ssh", {
    args: [...argv.slice(1, dash), "-G", "--", argv[dash + 1]],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, out: text(out.stdout) + text(out.stderr) };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const refused: [string, NodeInput, RegExp][] = [
  ["host with a port", { host: "h:2222" }, /"h:2222".*port: 2222/],
  [
    "bracketed IPv6 with a port",
    { host: "[::1]:22" },
    /"\[::1\]:22".*port: 22/,
  ],
  ["host with a % token", { host: "%d" }, /"%d".*zone of an IPv6/],
  ["brackets around a name", { host: "[h]" }, /"\[h\]".*only for IPv6/],
  ["not an IPv6 address", { host: "1:2:3" }, /"1:2:3"/],
  [
    "host 100 KB long",
    { host: "a".repeat(100_000) },
    /"a{60}"… \(100000 characters\).*at most 253/,
  ],
  ["relay without a host", { relay: ":22" }, /relay ":22".*host is missing/],
  ["relay with port -1", { relay: "h:-1" }, /relay "h:-1".*port "-1"/],
  ["relay with port 0", { relay: "h:0" }, /relay "h:0".*port "0"/],
  ["relay with port 70000", { relay: "h:70000" }, /"h:70000".*port "70000"/],
  ["relay with a name in brackets", { relay: "[h]:22" }, /"\[h\]:22"/],
  ["relay with a % token", { relay: "ops@%d" }, /relay "%d"/],
  [
    "controlDir with a space",
    { controlDir: "/tmp/my dir" },
    /"\/tmp\/my dir".*whitespace/,
  ],
  ["controlDir with %", { controlDir: "/tmp/a%b" }, /"\/tmp\/a%b".*"%"/],
  ["controlDir with $", { controlDir: "/tmp/${X}" }, /"\/tmp\/\$\{X\}".*"\$"/],
  ["controlDir starting with ~", { controlDir: "~/cm" }, /"~\/cm".*absolute/],
  [
    "controlDir too long for the socket path",
    { controlDir: "/" + "d".repeat(maxControlDirBytes(false)) },
    new RegExp(`${maxControlDirBytes(false) + 1} bytes long.*at most 49`),
  ],
  [
    "controlDir too long once a jump relay tags the socket",
    {
      controlDir: "/" + "d".repeat(maxControlDirBytes(true)),
      relay: "gw",
      relayMode: "jump",
    },
    /at most 39 for a jump relay/,
  ],
];

const refusedOptions: [string, Record<string, string>, RegExp][] = [
  ["unknown option", { Fooo: "1" }, /Unknown ssh option "Fooo"/],
  ["Match block", { Match: "all" }, /"Match".*sshConfig/],
  ["Host block", { Host: "x" }, /"Host".*sshConfig/],
  ["Include", { Include: "/etc/x" }, /"Include"/],
  ["RemoteCommand", { RemoteCommand: "id" }, /"RemoteCommand".*refuses both/],
  [
    "two words for a one-word option",
    { ServerAliveInterval: "5 6" },
    /"5 6".*"ServerAliveInterval".*one word/,
  ],
  ["a path with a space, unquoted", { IdentityFile: "/a b" }, /"\/a b"/],
  ["empty value", { ConnectionAttempts: "" }, /"".*give a value/],
];

Deno.test("bad hosts, relays and control dirs are refused naming the value", async (t) => {
  for (const [what, opts, message] of refused) {
    await t.step(what, () => {
      const err = assertThrows(
        () => node(opts).argv("true"),
        ConfigurationError,
      );
      assertMatch(err.message, message);
      assert(!err.message.endsWith("."), err.message);
    });
  }
});

Deno.test("ssh options ssh would refuse are refused first, naming them", async (t) => {
  for (const [what, sshOptions, message] of refusedOptions) {
    await t.step(what, async () => {
      const err = assertThrows(
        () => node({ sshOptions }).argv("true"),
        ConfigurationError,
      );
      assertMatch(err.message, message);
      // ssh agrees: the same argv, built without fiwi's checks, fails in ssh
      // (RemoteCommand only fails once a command is given as well).
      if ("RemoteCommand" in sshOptions) return;
      const argv = buildArgv({ ...node({}).spec, sshOptions }, "true");
      assert((await sshG(argv)).code !== 0, `ssh took ${what}`);
    });
  }
});

Deno.test("control dirs ssh cannot read in ControlPath fail in ssh too", async () => {
  for (const controlDir of ["/tmp/my dir", "/tmp/a%b"]) {
    const argv = buildArgv({ ...node({}).spec, controlDir }, "true");
    assert((await sshG(argv)).code !== 0, controlDir);
  }
});

const accepted: [string, Record<string, string>][] = [
  ["ProxyCommand with spaces", { ProxyCommand: "ssh -W %h:%p jump" }],
  ["SendEnv with two names", { SendEnv: "LANG LC_ALL" }],
  ["a quoted path with a space", { IdentityFile: '"/keys/my key"' }],
  ["keywords in any case", { serveraliveinterval: "5", TCPKEEPALIVE: "yes" }],
  ["LocalForward with two words", { LocalForward: "8080 localhost:80" }],
];

Deno.test("ssh options with legitimate spaces pass, and ssh takes them", async (t) => {
  for (const [what, sshOptions] of accepted) {
    await t.step(what, async () => {
      const argv = node({ sshOptions }).argv("true");
      const g = await sshG(argv);
      assertEquals(g.code, 0, g.out);
    });
  }
});

Deno.test("IPv6 hosts work bare or in brackets; ssh gets them bare", async (t) => {
  const cases: [NodeInput, string][] = [
    [{ host: "[::1]" }, "root@::1"],
    [{ host: "::1" }, "root@::1"],
    [{ host: "[fe80::1%eth0]" }, "root@fe80::1%eth0"],
    [{ host: "2001:db8::10", user: "pi" }, "pi@2001:db8::10"],
    [{ host: "::ffff:10.0.0.1" }, "root@::ffff:10.0.0.1"],
  ];
  for (const [opts, target] of cases) {
    await t.step(`${opts.host} → ${target}`, async () => {
      const argv = node(opts).argv("true");
      assertEquals(argv.at(-2), target);
      const g = await sshG(argv);
      assertEquals(g.code, 0, g.out);
      assertMatch(
        g.out,
        new RegExp(`^hostname ${escape(target.split("@")[1])}$`, "m"),
      );
    });
  }
  await t.step("IPv6 relays, jump and nested", () => {
    const jump = node({ relay: "ops@[::1]:2222", relayMode: "jump" }).argv("x");
    assertEquals(jump[jump.indexOf("-J") + 1], "ops@[::1]:2222");
    const nested = node({ relay: "ops@::1" }).argv("x");
    assertEquals(nested.at(-2), "ops@::1");
  });
});

Deno.test("parseRelay() splits user, host and port, IPv6 included", () => {
  const cases: [string, ReturnType<typeof parseRelay>][] = [
    ["gw", { user: undefined, host: "gw", port: undefined }],
    ["ops@gw:2222", { user: "ops", host: "gw", port: 2222 }],
    ["::1", { user: undefined, host: "::1", port: undefined }],
    ["ops@[::1]", { user: "ops", host: "::1", port: undefined }],
    ["[fe80::1%eth0]:22", { user: undefined, host: "fe80::1%eth0", port: 22 }],
    ["10.0.0.1:022", { user: undefined, host: "10.0.0.1", port: 22 }],
  ];
  for (const [relay, parts] of cases) assertEquals(parseRelay(relay), parts);
});

Deno.test("rexec() to [::1] reaches ssh's connect, not a name lookup", async () => {
  // Port 1 has no listener: ssh must say "connect to host ::1", proving it
  // parsed the address (with brackets it said "Could not resolve hostname").
  const r = await node({ host: "[::1]", port: 1, controlMaster: false }).rexec(
    "true",
    { retry: false, connectTimeout: 5000 },
  );
  assert(r.error instanceof ConnectionError, String(r.error));
  assertMatch(`${r.stderr} ${r.error?.message}`, /::1 port 1/);
});

Deno.test("bad input rejects rexec() at once, with no retries", async () => {
  const started = performance.now();
  await assertRejects(
    () => node({ host: "h:2222" }).rexec("true"),
    ConfigurationError,
    '"h:2222"',
  );
  assert(performance.now() - started < 500, "retried or waited");
});

Deno.test("connectTimeout 0 (none) passes no ConnectTimeout to ssh", () => {
  const timeouts = (o: NodeInput) =>
    node(o).argv("x").filter((a) => a.startsWith("ConnectTimeout="));
  assertEquals(timeouts({ connectTimeout: 0 }), []);
  assertEquals(timeouts({ connectTimeout: 0, relay: "gw" }), []);
  assertEquals(
    node({ connectTimeout: 0, relay: "gw" }).argv("x").at(-1)!.includes(
      "ConnectTimeout",
    ),
    false,
    "the nested hop has none either",
  );
  assertEquals(timeouts({ connectTimeout: 1 }), ["ConnectTimeout=1"]);
  assertEquals(timeouts({ connectTimeout: 1500 }), ["ConnectTimeout=2"]);
});

Deno.test("a command over the argument limit is refused with the limit, before spawning", async (t) => {
  const local = new SshNode({
    name: "l",
    host: "localhost",
    transport: "local",
  });
  const marker = await Deno.makeTempFile();
  await Deno.remove(marker);
  try {
    await t.step("refused, naming the limit, nothing runs", async () => {
      const cmd = `touch ${marker}; : ${"x".repeat(MAX_ARG_BYTES)}`;
      await assertRejects(
        () => local.rexec(cmd),
        ConfigurationError,
        `allows ${MAX_ARG_BYTES} bytes`,
      );
      await assertRejects(() => Deno.stat(marker), Deno.errors.NotFound);
    });
    await t.step("just under the limit still runs", async () => {
      const r = await local.rexec(`: ${"x".repeat(100_000)}; echo ran`);
      assertEquals(r.stdout, "ran\n");
    });
    await t.step("the limit counts the relay's quoting", () => {
      // The wrapper quotes each ' into 4 bytes, the relay's quoting again.
      const cmd = `echo ${"'".repeat(20_000)}`;
      assert(node({}).argv(cmd).at(-1)!.length > 80_000);
      assertThrows(() => node({ relay: "gw" }).argv(cmd), ConfigurationError);
    });
    await t.step("bytes, not characters", () => {
      assertThrows(
        () => validateArgv(["ssh", "é".repeat(MAX_ARG_BYTES / 2 + 1)]),
        ConfigurationError,
      );
      validateArgv(["ssh", "e".repeat(MAX_ARG_BYTES)]);
    });
  } finally {
    await Deno.remove(marker).catch(() => {});
  }
});

Deno.test("run options: timeouts of 2^31 ms or more, NaN, bogus eof and bad maxOutput are refused", async (t) => {
  const local = new SshNode({
    name: "l",
    host: "localhost",
    transport: "local",
  });
  const cases: [string, Record<string, unknown>, string][] = [
    ["cmdTimeout 2^31", { cmdTimeout: 2 ** 31 }, `2147483648`],
    ["ioTimeout 700 h", { ioTimeout: 700 * 3600_000 }, `2520000000`],
    ["connectTimeout NaN shows as NaN", { connectTimeout: NaN }, "NaN"],
    ["eof bogus", { eof: "bogus" }, `Invalid eof "bogus"`],
    ["maxOutput in bytes", { maxOutput: -1 }, "bytes"],
  ];
  for (const [what, opts, text] of cases) {
    await t.step(what, async () => {
      const err = await assertRejects(
        () => local.rexec("true", opts),
        ConfigurationError,
        text,
      );
      assert(!/null/.test(err.message), err.message);
      assert(!/millisecond/.test(err.message) || !("maxOutput" in opts));
    });
  }
  await t.step("the largest timeout a timer holds is accepted", async () => {
    const r = await local.rexec("echo ok", { cmdTimeout: MAX_TIMEOUT_MS });
    assertEquals(r.stdout, "ok\n");
  });
  await t.step("a node default of NaN is refused the same way", async () => {
    const bad = new SshNode({
      name: "b",
      host: "localhost",
      transport: "local",
      cmdTimeout: NaN,
    });
    await assertRejects(() => bad.rexec("true"), ConfigurationError, "NaN");
  });
});

Deno.test({
  name: "a controlDir of exactly the computed limit holds ssh's master socket",
  ignore: skipHere("controlDir limit", "node-is-local"),
  async fn() {
    await using rig = await startLoopbackRig();
    const max = maxControlDirBytes(false);
    const dir = (n: number) =>
      `${rig.dir}/${"c".repeat(n - rig.dir.length - 1)}`;
    const fits = dir(max);
    assertEquals(fits.length, max);
    await using n = rig.node({ controlDir: fits });
    const r = await n.rexec("echo ok");
    assertEquals(r.stdout, "ok\n");
    const sockets = [...Deno.readDirSync(fits)].filter((e) => !e.isDirectory);
    assertEquals(sockets.length, 1, "ssh made its master socket");
    // One byte more and ssh cannot bind (it falls back to no master), which is
    // why fiwi refuses it.
    assertThrows(
      () => rig.node({ controlDir: dir(max + 1) }).argv("true"),
      ConfigurationError,
    );
  },
});
