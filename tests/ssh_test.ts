// Integration tests against a real sshd on loopback (tests/_loopback.ts), or
// against a live node with `deno task test:live`.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
} from "jsr:@std/assert@^1";
import {
  AuthenticationError,
  ConnectionError,
  HostKeyError,
  type Line,
  type RunOptions,
  SshNode,
  TimeoutError,
} from "../mod.ts";
import {
  countCarrying,
  countExact,
  marker,
  skipHere,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

const ignore = skipReason() !== null;
if (ignore) console.warn(`ssh integration tests skipped: ${skipReason()}`);

async function writeConfig(path: string, lines: string[]): Promise<string> {
  await Deno.writeTextFile(
    path,
    ["Host *", ...lines.map((l) => `  ${l}`), ""].join("\n"),
  );
  return path;
}

Deno.test({ name: "rexec() over ssh", ignore }, async (t) => {
  await using rig = await startLoopbackRig();

  await t.step(
    "streams lines, keeps stderr apart, strips the start line",
    async () => {
      await using node = rig.node();
      const lines: Line[] = [];
      const r = await node.rexec(
        "echo $$; echo oops >&2; printf 'no newline'",
        {
          onLine: (l) => lines.push(l),
        },
      );
      assertEquals([r.code, r.success, r.started, r.error], [
        0,
        true,
        true,
        null,
      ]);
      const [pid, fragment] = r.stdout.split("\n");
      assertEquals(r.remotePid, Number(pid));
      assertEquals(fragment, "no newline");
      assertEquals(r.stderr, "oops\n");
      const of = (stream: string) =>
        lines.filter((l) => l.stream === stream).map((
          l,
        ) => [l.text, l.partial]);
      assertEquals(of("stdout"), [[pid, false], ["no newline", true]]);
      assertEquals(of("stderr"), [["oops", false]]);
    },
  );

  await t.step(
    "a command that itself exits 255 is not a connection error",
    async () => {
      await using node = rig.node();
      const r = await node.rexec("exit 255");
      assertEquals([r.code, r.started, r.error, r.success], [
        255,
        true,
        null,
        false,
      ]);
    },
  );

  await t.step(
    "a second rexec goes over the same ControlMaster; close() ends it",
    async () => {
      const node = rig.node();
      const first = await node.rexec("echo $SSH_CONNECTION");
      const second = await node.rexec("echo $SSH_CONNECTION");
      // Same TCP connection: same client port on both runs.
      assertEquals(first.stdout, second.stdout);
      const sockets = [...Deno.readDirSync(`${rig.dir}/cm`)].map((e) => e.name);
      assertEquals(sockets.length, 1);
      await node.close();
      assertEquals([...Deno.readDirSync(`${rig.dir}/cm`)].length, 0);
      const third = await node.rexec("echo $SSH_CONNECTION");
      assert(
        third.stdout !== first.stdout,
        "a new master means a new connection",
      );
      await node.close();
    },
  );

  await t.step(
    "clients racing for a new master keep their stderr clean",
    async () => {
      await using node = rig.node({ controlDir: `${rig.dir}/cm_race` });
      const results = await Promise.all(
        Array.from({ length: 8 }, () => node.rexec("echo ok")),
      );
      assertEquals(
        results.map((r) => [r.stdout, r.stderr]),
        Array(8).fill(["ok\n", ""]),
      );
    },
  );

  await t.step(
    "stdin reaches the remote command and is then closed",
    async () => {
      await using node = rig.node();
      const r = await node.rexec("cat | tr a-z A-Z", { stdin: "abc\ndef\n" });
      assertEquals(r.stdout, "ABC\nDEF\n");
    },
  );
});

Deno.test({
  name: "relays",
  ignore: skipHere("relays", "relay"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  if (!rig.relayReady) {
    console.warn(
      "relay steps skipped: the loopback rig needs root to set up the relay account",
    );
    return;
  }
  const relay = `${rig.user}@${rig.hosts[0]}:${rig.port}`;
  // Quotes, $, backticks, backslashes and newlines must arrive verbatim.
  const tricky = [
    `printf '%s\\n' "it's" 'a "dq"' '$HOME' '\`id\`' 'back\\\\slash'`,
    `echo "$((6*7))"; echo 'multi`,
    `line'`,
  ].join("\n");
  const expected =
    'it\'s\na "dq"\n$HOME\n`id`\nback\\\\slash\n42\nmulti\nline\n';

  await t.step("nested: the inner ssh runs on the relay", async () => {
    await using node = rig.node({ index: 1, relay });
    assertEquals(node.argv("true").at(-2), `${rig.user}@${rig.hosts[0]}`);
    const where = await node.rexec("echo $SSH_CONNECTION");
    assertEquals(where.stdout.trim().split(" ")[2], rig.hosts[1]);
    const r = await node.rexec(tricky);
    assertEquals([r.stdout, r.stderr, r.code], [expected, "", 0]);
  });

  await t.step("jump: ssh -J through the relay", async () => {
    await using node = rig.node({ index: 1, relay, relayMode: "jump" });
    assert(node.argv("true").includes("-J"));
    const r = await node.rexec(tricky);
    assertEquals([r.stdout, r.code], [expected, 0]);
    const where = await node.rexec("echo $SSH_CONNECTION");
    assertEquals(where.stdout.trim().split(" ")[2], rig.hosts[1]);
  });

  await t.step(
    "a timeout through a nested relay kills the far process",
    async () => {
      await using node = rig.node({ index: 1, relay });
      // Long enough for the inner hop's full handshake on a loaded machine.
      const m = marker();
      const r = await node.rexec(`sleep ${m}`, { cmdTimeout: 3000 });
      assertEquals([r.timedOut, r.started], ["command", true]);
      // The relay's inner ssh and the far sleep: gone within the lifeline's
      // bound; the local client: gone when rexec resolves.
      assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
      assertEquals(await countCarrying(m), 0);
    },
  );
});

Deno.test(
  { name: "timeouts and abort kill the remote process group", ignore },
  async (t) => {
    await using rig = await startLoopbackRig();
    await using node = rig.node();
    // A warm master: the 600 ms limits then time the command, not a login
    // (slower than that on a loaded machine or a real network).
    assertEquals((await node.rexec("true")).success, true);
    const kinds: [string, () => RunOptions, "command" | "io" | null][] = [
      ["command timeout", () => ({ cmdTimeout: 600 }), "command"],
      ["io timeout", () => ({ ioTimeout: 600 }), "io"],
      ["abort", () => ({ signal: AbortSignal.timeout(600) }), null],
    ];
    const commands: [string, (m: string) => string][] = [
      ["a sleep", (m) => `echo up; sleep ${m}`],
      [
        "a shell that spawns a child sleep",
        (m) => `echo up; sh -c 'sleep ${m}; true' & wait`,
      ],
    ];
    for (const [what, cmd] of commands) {
      for (const [name, opts, kind] of kinds) {
        await t.step(`${name}: ${what}`, async () => {
          const m = marker();
          const r = await node.rexec(cmd(m), opts());
          assertEquals([r.timedOut, r.aborted, r.started, r.stdout], [
            kind,
            kind === null,
            true,
            "up\n",
          ]);
          assert(r.remotePid !== null);
          assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
          assertEquals(await countCarrying(m), 0, "the ssh client is gone");
        });
      }
    }

    await t.step("connect timeout: a server that never answers", async () => {
      const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const held: Deno.Conn[] = [];
      const accepting = (async () => {
        for await (const c of silent) held.push(c);
      })();
      try {
        await using mute = rig.node({
          host: "127.0.0.1", // where the silent server listens, live too
          port: (silent.addr as Deno.NetAddr).port,
          controlMaster: false,
        });
        const m = marker();
        const r = await mute.rexec(`sleep ${m}`, { connectTimeout: 700 });
        assertEquals([r.timedOut, r.started, r.remotePid], [
          "connect",
          false,
          null,
        ]);
        assertInstanceOf(r.error, TimeoutError);
        assert(r.durationMs < 700 + 2000, `took ${r.durationMs} ms`);
        assertEquals(await countCarrying(m), 0, "the ssh client is gone");
      } finally {
        silent.close();
        await accepting.catch(() => {});
        for (const c of held) c.close();
      }
    });
  },
);

Deno.test(
  {
    name: "ssh failures are told apart",
    ignore: skipHere("ssh failures are told apart", "harness-keys"),
  },
  async (t) => {
    await using rig = await startLoopbackRig();

    await t.step("connection refused", async () => {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      await using node = rig.node({ port, controlMaster: false });
      const r = await node.rexec("true");
      assertEquals([r.started, r.code, r.success], [false, 255, false]);
      assertInstanceOf(r.error, ConnectionError);
      assertMatch(r.error!.message, /refused/);
    });

    await t.step("wrong key", async () => {
      const key = `${rig.dir}/wrong_key`;
      const out = await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", key],
      }).output();
      assert(out.success);
      const cfg = await writeConfig(`${rig.dir}/wrong_key_config`, [
        `UserKnownHostsFile ${rig.dir}/known_hosts`,
        "StrictHostKeyChecking yes",
        "IdentitiesOnly yes",
      ]);
      await using node = rig.node({
        sshConfig: cfg,
        identityFile: key,
        controlMaster: false,
      });
      const r = await node.rexec("true");
      assertEquals(r.started, false);
      assertInstanceOf(r.error, AuthenticationError);
    });

    await t.step("changed host key under strict checking", async () => {
      const other = `${rig.dir}/other_host_key`;
      await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", other],
      })
        .output();
      const pub = (await Deno.readTextFile(`${other}.pub`)).split(" ").slice(
        0,
        2,
      ).join(" ");
      await Deno.writeTextFile(
        `${rig.dir}/bad_known_hosts`,
        `[${rig.hosts[0]}]:${rig.port} ${pub}\n`,
      );
      const cfg = await writeConfig(`${rig.dir}/bad_hosts_config`, [
        `UserKnownHostsFile ${rig.dir}/bad_known_hosts`,
        "StrictHostKeyChecking yes",
        `IdentityFile ${rig.identityFile}`,
        "IdentitiesOnly yes",
      ]);
      await using node = rig.node({ sshConfig: cfg, controlMaster: false });
      const r = await node.rexec("true");
      assertEquals(r.started, false);
      assertInstanceOf(r.error, HostKeyError);
    });

    await t.step("ush transport runs through the ush client", async () => {
      // A stand-in rsh-style client: `ush <host> <command>` runs it here.
      const ush = `${rig.dir}/ush`;
      await Deno.writeTextFile(
        ush,
        '#!/bin/sh\nhost="$1"; shift; exec sh -c "$1"\n',
        { mode: 0o755 },
      );
      await using node = new SshNode({
        name: "u",
        host: "10.9.9.9",
        transport: "ush",
        ushPath: ush,
      });
      assertEquals(node.argv("true").slice(0, 2), [ush, "10.9.9.9"]);
      const r = await node.rexec("echo via ush");
      assertEquals([r.stdout, r.started, r.success], ["via ush\n", true, true]);
    });
  },
);

Deno.test({ name: "consoles", ignore }, async (t) => {
  await using rig = await startLoopbackRig();
  const file = `/tmp/fiwi_console_${rig.port}.log`;
  const consoleCommand = `tail -f ${file}`;
  await using node = rig.node({ console: true, consoleCommand, silent: true });
  try {
    await rig.sh(`echo boot line > ${file}`);
    // A stale copy from an earlier controller, detached from any session.
    await rig.sh(
      `nohup ${consoleCommand} >/dev/null 2>&1 </dev/null & echo started`,
    );
    // nohup has exec'd tail once the count is 1.
    assertEquals(
      await settlesTo(() => countExact(consoleCommand, rig), 1, GONE_WITHIN),
      1,
    );

    await t.step(
      "openConsoles() cleans stale copies and streams lines",
      async () => {
        const seen: string[] = [];
        let wake: (() => void) | null = null;
        const waitFor = (text: string) =>
          new Promise<void>((resolve) => {
            wake = () => seen.includes(text) && resolve();
            wake();
          });
        await SshNode.openConsoles({
          nodes: [node],
          onLine: (l) => {
            seen.push(l.text);
            wake?.();
          },
        });
        const stream = node.consoleStream;
        assert(stream !== null);
        assert(
          await node.openConsole() === stream,
          "opening it again returns the open stream",
        );
        await waitFor("boot line");
        assertEquals(
          await countExact(consoleCommand, rig),
          1,
          "only the new console runs",
        );
        await rig.sh(`echo late line >> ${file}`);
        await waitFor("late line");
        assertEquals(seen, ["boot line", "late line"]);
      },
    );

    await t.step("closeConsoles() stops the stream on the node", async () => {
      await SshNode.closeConsoles();
      assertEquals(node.consoleStream, null);
      assertEquals(
        await settlesToZero(() => countCarrying(file, rig)),
        0,
        "the console on the node is gone",
      );
      assertEquals(await countCarrying(file), 0, "the ssh client is gone");
    });
  } finally {
    await rig.sh(`rm -f ${file}`);
  }
});
