import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "jsr:@std/assert@^1";
import { ConfigurationError, SshNode, type SshNodeOptions } from "../mod.ts";
import {
  buildArgv,
  controlArgv,
  type TransportSpec,
} from "../src/transport/argv.ts";
import { shellJoin, shellQuote } from "../src/transport/quote.ts";
import { wrapCommand } from "../src/transport/wrapper.ts";

const base: TransportSpec = {
  host: "10.0.0.5",
  user: "root",
  transport: "ssh",
  relayMode: "nested",
  ushPath: "ush",
  controlMaster: false,
  controlDir: "/run/fiwi/cm",
  controlPersist: 300,
  sshOptions: {},
  hostKeyCheck: "default",
  connectTimeout: 15_000,
};

const cases: { name: string; spec: Partial<TransportSpec>; argv: string[] }[] =
  [
    {
      name: "plain ssh",
      spec: {},
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "--",
        "root@10.0.0.5",
        "CMD",
      ],
    },
    {
      name: "config, port, key, extra options, rounded-up connect timeout",
      spec: {
        sshConfig: "/etc/fiwi/ssh_config",
        port: 2222,
        identityFile: "/k/id",
        sshOptions: { ServerAliveInterval: "5" },
        connectTimeout: 1500,
        user: "pi",
      },
      argv: [
        "ssh",
        "-F",
        "/etc/fiwi/ssh_config",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=2",
        "-o",
        "ServerAliveInterval=5",
        "-p",
        "2222",
        "-i",
        "/k/id",
        "--",
        "pi@10.0.0.5",
        "CMD",
      ],
    },
    {
      name: "ControlMaster with a %C socket and ControlPersist",
      spec: { controlMaster: true },
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPath=/run/fiwi/cm/%C",
        "-o",
        "ControlPersist=300",
        "--",
        "root@10.0.0.5",
        "CMD",
      ],
    },
    {
      name: "host key checking off",
      spec: { hostKeyCheck: "off" },
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "--",
        "root@10.0.0.5",
        "CMD",
      ],
    },
    {
      name: "nested relay: the inner ssh is one argument for the relay's shell",
      spec: { relay: "bastion", controlMaster: true, port: 22 },
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPath=/run/fiwi/cm/%C",
        "-o",
        "ControlPersist=300",
        "--",
        "root@bastion",
        "ssh -o BatchMode=yes -o ConnectTimeout=15 -p 22 -- root@10.0.0.5 CMD",
      ],
    },
    {
      name: "jump relay keeps keys local",
      spec: {
        relay: "ops@bastion:2200",
        relayMode: "jump",
        identityFile: "/k/id",
      },
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "-i",
        "/k/id",
        "-J",
        "ops@bastion:2200",
        "--",
        "root@10.0.0.5",
        "CMD",
      ],
    },
    {
      name: "ush without relay",
      spec: { transport: "ush", ushPath: "/opt/ush" },
      argv: ["/opt/ush", "10.0.0.5", "CMD"],
    },
    {
      name: "ush behind a relay",
      spec: { transport: "ush", relay: "bastion" },
      argv: [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
        "--",
        "root@bastion",
        "ush 10.0.0.5 CMD",
      ],
    },
    { name: "local", spec: { transport: "local" }, argv: ["sh", "-c", "CMD"] },
  ];

Deno.test("buildArgv() builds the documented argv", async (t) => {
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(buildArgv({ ...base, ...c.spec }, "CMD"), c.argv);
    });
  }
});

Deno.test("one address behind different jump hosts gets different masters", async () => {
  // As ssh itself resolves ControlPath (`ssh -G`), for the same host and user
  // directly, via two jump hosts, and via the first one again.
  const resolve = async (relay?: string) => {
    const argv = buildArgv({
      ...base,
      controlMaster: true,
      relay,
      relayMode: "jump",
    }, "true");
    const dash = argv.indexOf("--");
    const out = await new Deno.Command("ssh", {
      args: [...argv.slice(1, dash), "-G", ...argv.slice(dash, -1)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n")
      .find((l) => l.startsWith("controlpath "));
    if (!line) throw new Error(new TextDecoder().decode(out.stderr));
    return line.slice("controlpath ".length);
  };
  const paths = [
    await resolve(),
    await resolve("ops@rack1-gw"),
    await resolve("ops@rack2-gw"),
    await resolve("ops@rack1-gw"),
  ];
  assertEquals(new Set(paths.slice(0, 3)).size, 3, paths.join("\n"));
  assertEquals(paths[3], paths[1]);
  assert(paths.every((p) => p.startsWith("/run/fiwi/cm/")), paths.join("\n"));
});

Deno.test("controlArgv() asks the same master to exit", () => {
  const spec = { ...base, controlMaster: true };
  assertEquals(controlArgv(spec, "exit"), [
    ...buildArgv(spec, "x").slice(0, -3),
    "-O",
    "exit",
    "--",
    "root@10.0.0.5",
  ]);
  assertEquals(controlArgv(base, "exit"), null);
  assertEquals(
    controlArgv({ ...base, transport: "local", controlMaster: true }, "exit"),
    null,
  );
});

Deno.test("SshNode.argv() wraps the command and honours node defaults", () => {
  const node = new SshNode({ name: "a", host: "10.0.0.9", controlDir: "/d" });
  const argv = node.argv("uname -r");
  // FIWI_SSH_CONFIG (set for a live run) is every node's default -F file.
  const config = node.sshConfig ? ["-F", node.sshConfig] : [];
  assertEquals(argv.slice(0, 3 + config.length), [
    "ssh",
    ...config,
    "-o",
    "BatchMode=yes",
  ]);
  assertEquals(argv.at(-2), "root@10.0.0.9");
  assertEquals(argv.at(-1), wrapCommand("uname -r"));
  assertEquals(argv.includes("ControlPath=/d/%C"), true);
  const ush = new SshNode({
    name: "u",
    host: "10.0.0.9",
    transport: "ush",
    controlMaster: true,
  });
  assertEquals(ush.controlMaster, false);
});

Deno.test("the ssh a gateway runs never rewrites known_hosts and keeps the host-key policy", async (t) => {
  const gateway = new SshNode({ name: "gw", host: "10.0.0.250" });
  const opts = (argv: string[]) =>
    argv.flatMap((a, i) => argv[i - 1] === "-o" ? [a] : []);
  const table: {
    name: string;
    node: Partial<SshNodeOptions>;
    has: string[];
    hasNot: string[];
  }[] = [
    {
      name: "default policy: the account's own config decides, read-only",
      node: {},
      has: ["BatchMode=yes", "UpdateHostKeys=no", "CheckHostIP=no"],
      hasNot: ["StrictHostKeyChecking=accept-new", "ControlMaster=auto"],
    },
    {
      name: "accept-new is kept (it appends, never rewrites)",
      node: { hostKeyCheck: "accept-new" },
      has: ["StrictHostKeyChecking=accept-new", "UpdateHostKeys=no"],
      hasNot: ["UserKnownHostsFile=/dev/null"],
    },
    {
      name: "off is kept",
      node: { hostKeyCheck: "off" },
      has: ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
      hasNot: [],
    },
    {
      name: "a node's own sshOptions win, one -o per key",
      node: { sshOptions: { UpdateHostKeys: "ask" } },
      has: ["UpdateHostKeys=ask", "CheckHostIP=no"],
      hasNot: ["UpdateHostKeys=no"],
    },
  ];
  for (const row of table) {
    await t.step(row.name, () => {
      const node = new SshNode({
        name: "n",
        host: "10.0.0.9",
        sshConfig: "/etc/fiwi/ssh_config",
        identityFile: "/k/id",
        controlMaster: true,
        controlDir: "/d",
        ...row.node,
        gateway,
      });
      const argv = node.argv("true");
      const o = opts(argv);
      for (const want of row.has) assert(o.includes(want), want);
      for (const not of row.hasNot) assert(!o.includes(not), not);
      // The controller's files mean nothing on the gateway.
      assert(!argv.includes("-F") && !argv.includes("-i"), argv.join(" "));
      // Flat, the same node keeps ssh's defaults for both.
      const flat = opts(node.with({ gateway: undefined }).argv("true"));
      assert(!flat.some((a) => a.startsWith("CheckHostIP=")), flat.join(" "));
    });
  }
});

Deno.test("SshNode.argv() refuses unsafe hosts, users and relays", async (t) => {
  const bad: [string, Record<string, string>][] = [
    ["option-like host", { host: "-oProxyCommand=touch /tmp/x" }],
    ["host with a space", { host: "a b" }],
    ["host with a semicolon", { host: "a;reboot" }],
    ["host with command substitution", { host: "$(reboot)" }],
    ["host with a newline", { host: "a\nb" }],
    ["empty host", { host: "" }],
    ["option-like user", { user: "-lroot" }],
    ["user with a backtick", { user: "ro`ot`" }],
    ["option-like relay", { relay: "-J" }],
    ["relay with a space", { relay: "bastion x" }],
  ];
  for (const [what, opts] of bad) {
    await t.step(what, () => {
      const node = new SshNode({ name: "n", host: "10.0.0.1", ...opts });
      const err = assertThrows(() => node.argv("true"), ConfigurationError);
      const value = Object.values(opts)[0];
      assertMatch(
        err.message,
        new RegExp(
          JSON.stringify(value).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
        ),
      );
    });
  }
});

Deno.test("shellQuote() survives a POSIX shell verbatim", async () => {
  const samples = [
    "plain",
    "",
    "it's",
    "a b",
    "$HOME",
    "`id`",
    "x\ny",
    "'",
    "\\",
    "*?[]",
    "é€",
  ];
  const script = `for a in ${
    samples.map(shellQuote).join(" ")
  }; do printf '%s\\0' "$a"; done`;
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
  }).output();
  const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  assertEquals(got, samples);
  assertEquals(shellJoin(["echo", "a b"]), "echo 'a b'");
});
