// Choosing nodes and users the pdsh/clush way, the connection options of
// every subcommand that connects, and where the central log goes:
// repeated -w and -x combine, -w ^FILE and --hostfile read patterns from a
// file, --pick takes N at random, -l logs in as another user (user@host in
// a pattern wins), --retries and --connect-timeout reach every run, a
// failed connection's message is shown once, the default log lives under
// $XDG_STATE_HOME (or ~/.local/state) and `nodes` writes none.
import { assert, assertEquals, assertThrows } from "jsr:@std/assert@^1";
import { ConfigurationError, parseRig } from "../mod.ts";
import { type Finished, fiwi } from "./_cli_harness.ts";
import {
  type LoopbackRig,
  marker,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";
import { startPowerLab } from "./_power_lab.ts";
import { parseCli, UsageError } from "../scripts/_args.ts";
import { defaultLogFile } from "../scripts/_log.ts";
import {
  connectOverrides,
  hostFilePatterns,
  pickRandom,
  selectFrom,
} from "../scripts/_select.ts";

const FOUR_LOCAL = "rigs:\n  here:\n    nodes:\n" +
  "      a: { transport: local, groups: [g] }\n" +
  "      b: { transport: local, groups: [g] }\n" +
  "      c: { transport: local }\n      d: { transport: local }\n";

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_select_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function oneLine(r: Finished, want: string): void {
  assertEquals([r.code, r.stdout], [2, ""], r.stderr);
  assertEquals(r.stderr, want + "\n");
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("parseCli() collects every -w, -x and --hostfile; other options stay single", () => {
  const spec = { name: "x", summary: "S", options: [] };
  const { lists, flags } = parseCli(spec, [
    "-w",
    "a",
    "--nodes=b",
    "-wc",
    "-x",
    "d",
    "--hostfile",
    "h1",
    "--hostfile",
    "h2",
    "--pick",
    "2",
  ]);
  assertEquals(lists, {
    nodes: ["a", "b", "c"],
    exclude: ["d"],
    hostfile: ["h1", "h2"],
  });
  assertEquals(flags.pick, "2");
  assertEquals(flags.nodes, undefined);
  assertThrows(
    () => parseCli(spec, ["--pick", "1", "--pick", "2"]),
    UsageError,
    'Option "--pick" is given more than once',
  );
  // -l, -t and --retries belong to subcommands that connect.
  assertEquals(parseCli(spec, ["-l", "u", "-t", "3s"]).flags.user, "u");
  assertThrows(
    () => parseCli({ ...spec, connects: false }, ["-l", "u"]),
    UsageError,
    'Unknown option "-l"',
  );
});

Deno.test("hostFilePatterns() takes one pattern a line, without blank lines and # comments", () => {
  const table: [string, string[]][] = [
    ["a\nb\n", ["a", "b"]],
    ["# rack 1\n\n  n[1-4]  \n@duts # the DUTs\n", ["n[1-4]", "@duts"]],
    ["\n# nothing\n", []],
    ["root@10.0.0.5:2222\r\n", ["root@10.0.0.5:2222"]],
  ];
  for (const [text, want] of table) {
    assertEquals(hostFilePatterns(text), want, JSON.stringify(text));
  }
});

Deno.test("selectFrom() joins each pattern's nodes, removes each exclusion's, in rig order", () => {
  const rig = parseRig(FOUR_LOCAL.replace(
    "rigs:",
    "defaults: { user: pi }\nrigs:",
  ));
  const names = (include: string[], exclude: string[] = []) =>
    selectFrom(rig, { include, exclude }).map((n) => n.name);
  assertEquals(names([]), ["a", "b", "c", "d"]);
  assertEquals(names(["c", "a"]), ["a", "c"]);
  // Each pattern is a set of its own: "c,@g&a" would be (c,@g)&a.
  assertEquals(names(["c", "@g&a"]), ["a", "c"]);
  assertEquals(names(["@g", "d"], ["b", "@g&a"]), ["d"]);
  assertEquals(names(["x@10.0.0.9", "a"]), ["a", "x@10.0.0.9"]);
  assertThrows(
    () => names(["a"], ["a"]),
    ConfigurationError,
    'The selection -w "a" -x "a" leaves no node in rig "here"',
  );
  assertThrows(
    () => names(["a"], ["bb"]),
    ConfigurationError,
    'Node pattern "bb" matches no node in rig "here"',
  );
});

Deno.test("pickRandom() keeps n items in their order, all when there are no more", () => {
  const items = ["a", "b", "c", "d", "e"];
  assertEquals(pickRandom(items, 9), items);
  assertEquals(pickRandom(items, 5), items);
  assertEquals(pickRandom(items, 2, () => 0), ["a", "b"]);
  assertEquals(pickRandom(items, 2, () => 0.999), ["a", "e"]);
  for (let i = 0; i < 50; i++) {
    const got = pickRandom(items, 3);
    assertEquals(got.length, 3);
    assertEquals(got, items.filter((x) => got.includes(x)));
  }
});

Deno.test("connectOverrides() reads -l, --connect-timeout and --retries", () => {
  assertEquals(connectOverrides({}), {});
  assertEquals(
    connectOverrides({ user: "bob", "connect-timeout": "2s", retries: "4" }),
    { user: "bob", connectTimeout: 2000, retry: { attempts: 5 } },
  );
  assertEquals(connectOverrides({ retries: "0" }), { retry: false });
  assertThrows(
    () => connectOverrides({ retries: "100" }),
    UsageError,
    'Invalid --retries "100": give a whole number from 0 to 99',
  );
  assertThrows(
    () => connectOverrides({ "connect-timeout": "5" }),
    UsageError,
    'Invalid --connect-timeout "5"',
  );
});

Deno.test("defaultLogFile() is under XDG_STATE_HOME, else ~/.local/state", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const table: [Record<string, string>, string][] = [
    [{ XDG_STATE_HOME: "/s", HOME: "/h" }, "/s/fiwi/fiwi.log"],
    [{ HOME: "/h" }, "/h/.local/state/fiwi/fiwi.log"],
    // A relative XDG_STATE_HOME is invalid (XDG spec): ignored.
    [{ XDG_STATE_HOME: "rel", HOME: "/h" }, "/h/.local/state/fiwi/fiwi.log"],
  ];
  for (const [vars, want] of table) {
    assertEquals(defaultLogFile(env(vars)), want, JSON.stringify(vars));
  }
  assertThrows(
    () => defaultLogFile(env({ XDG_STATE_HOME: "rel" })),
    ConfigurationError,
    "No place for the central log",
  );
});

Deno.test("fiwi: -w twice, -x, -w ^FILE, --hostfile and --pick choose the nodes", async (t) => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, FOUR_LOCAL);
    await Deno.writeTextFile(`${cwd}/hosts`, "# lab\na\n\nc # third\n");
    await Deno.writeTextFile(`${cwd}/broken`, "b\n");
    const nodes = (...args: string[]) => fiwi(["nodes", ...args], { cwd });
    const names = async (...args: string[]) => {
      const r = await nodes(...args);
      assertEquals(r.code, 0, r.stderr);
      return r.stdout.trim().split("\n");
    };

    await t.step("a second -w adds to the first; -x takes away", async () => {
      assertEquals(await names("-w", "c", "-w", "@g&a"), ["a", "c"]);
      assertEquals(await names("-w", "@g", "-w", "d", "-x", "b"), ["a", "d"]);
      assertEquals(await names("-x", "a", "-x", "^broken"), ["c", "d"]);
      const ran = await fiwi(
        ["run", "--no-log", "-w", "a", "-w", "d", "echo hi"],
        { cwd },
      );
      // Streamed lines come in arrival order: compare them as a set.
      assertEquals(
        [ran.code, ran.stdout.split("\n").sort()],
        [0, ["", "a: hi", "d: hi"]],
        ran.stderr,
      );
    });

    await t.step(
      "-w ^FILE and --hostfile read one pattern a line",
      async () => {
        assertEquals(await names("-w", "^hosts"), ["a", "c"]);
        assertEquals(await names("--hostfile", "hosts", "-w", "d"), [
          "a",
          "c",
          "d",
        ]);
        oneLine(
          await nodes("-w", "^missing"),
          'nodes: Cannot read the host file "missing": no such file',
        );
        oneLine(
          await nodes("--hostfile", "broken", "-x", "b"),
          'nodes: The selection -w "b" -x "b" leaves no node in rig "here"',
        );
      },
    );

    await t.step(
      "host files are relative to the user's directory under deno task",
      async () => {
        const r = await fiwi(["nodes", "--hostfile", "hosts"], {
          cwd,
          via: { kind: "task" },
        });
        assertEquals([r.code, r.stdout], [0, "a\nc\n"], r.stderr);
      },
    );

    await t.step(
      "--pick N takes N nodes at random, all when N is larger",
      async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 4; i++) {
          const got = await names("--pick", "2", "-x", "d");
          assertEquals(got.length, 2);
          assertEquals(got, ["a", "b", "c"].filter((n) => got.includes(n)));
          got.forEach((n) => seen.add(n));
        }
        assert(seen.size >= 2);
        assertEquals(await names("--pick", "9"), ["a", "b", "c", "d"]);
        oneLine(
          await nodes("--pick", "0"),
          'nodes: Invalid --pick "0": give a whole number >= 1',
        );
      },
    );

    await t.step(
      "nodes folds with --fold only: -f is fan-out elsewhere",
      async () => {
        assertEquals(await names("--fold", "-x", "c"), ["a,b,d"]);
        oneLine(
          await nodes("-f"),
          'nodes: Unknown option "-f": did you mean "--fold"?',
        );
      },
    );
  });
});

Deno.test("fiwi: the default log is $XDG_STATE_HOME/fiwi/fiwi.log (else ~/.local/state), never ./logs; nodes writes none", async (t) => {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const denoDir: string = JSON.parse(new TextDecoder().decode(info.stdout))
    .denoDir;
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, FOUR_LOCAL);

    await t.step("XDG_STATE_HOME", async () => {
      const env = { XDG_STATE_HOME: `${cwd}/xdg` };
      const r = await fiwi(["run", "-w", "a", "echo hi"], { cwd, env });
      assertEquals(r.code, 0, r.stderr);
      const log = await Deno.readTextFile(`${cwd}/xdg/fiwi/fiwi.log`);
      assert(log.includes("Started fiwi run"), log);
      assertEquals((await Deno.stat(`${cwd}/xdg/fiwi`)).mode! & 0o777, 0o700);
      assertEquals(await exists(`${cwd}/logs`), false);
    });

    await t.step(
      "~/.local/state without (or with a relative) XDG_STATE_HOME",
      async () => {
        const env = {
          XDG_STATE_HOME: "relative",
          HOME: `${cwd}/home`,
          DENO_DIR: denoDir,
        };
        const r = await fiwi(["run", "-w", "a", "true"], { cwd, env });
        assertEquals(r.code, 0, r.stderr);
        const dir = `${cwd}/home/.local/state/fiwi`;
        assert(
          (await Deno.readTextFile(`${dir}/fiwi.log`)).includes("fiwi run"),
        );
        assertEquals((await Deno.stat(dir)).mode! & 0o777, 0o700);
        assertEquals(await exists(`${cwd}/relative`), false);
      },
    );

    await t.step(
      "nodes contacts nothing and logs nothing, unless --log asks",
      async () => {
        const env = { XDG_STATE_HOME: `${cwd}/quiet` };
        const r = await fiwi(["nodes", "@g"], { cwd, env });
        assertEquals([r.code, r.stdout, r.stderr], [0, "a\nb\n", ""]);
        assertEquals(await exists(`${cwd}/quiet`), false);
        const asked = await fiwi(["nodes", "--log", "n.log", "a"], {
          cwd,
          env,
        });
        assertEquals(asked.code, 0, asked.stderr);
        assert(
          (await Deno.readTextFile(`${cwd}/n.log`)).includes("fiwi nodes"),
        );
        const help = await fiwi(["run", "--help"], { cwd, env });
        assertEquals(help.code, 0);
        assertEquals(await exists(`${cwd}/quiet`), false);
      },
    );
  });
});

Deno.test("fiwi: every subcommand takes the selection options, and the connection ones where it connects; a letter means one thing everywhere", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_select_help_" });
  try {
    const subcommands = [
      "run",
      "poll",
      "consoles",
      "discover",
      "check",
      "push",
      "pull",
      "power",
      "nodes",
      "close",
    ];
    const meaning = new Map<string, string>();
    for (const name of subcommands) {
      const help = await fiwi([name, "--help"], { cwd });
      assertEquals(help.code, 0, help.stderr);
      const options = [
        ...help.stdout.matchAll(/^ {2}(?:-(\w), )? *--([\w-]+)/gm),
      ]
        .map(([, letter, long]) => ({ letter, long }));
      const longs = options.map((o) => o.long);
      assertEquals(new Set(longs).size, longs.length, `${name}: ${longs}`);
      for (const o of ["nodes", "exclude", "hostfile", "pick"]) {
        assert(longs.includes(o), `${name} lacks --${o}`);
      }
      const connects = name !== "nodes";
      for (const o of ["user", "connect-timeout", "retries"]) {
        assertEquals(longs.includes(o), connects, `${name}: --${o}`);
      }
      for (const { letter, long } of options.filter((o) => o.letter)) {
        const before = meaning.get(letter) ?? long;
        assertEquals(long, before, `-${letter} of ${name}`);
        meaning.set(letter, long);
      }
    }
    assertEquals(
      ["f", "l", "t", "u", "w", "x"].map((l) => meaning.get(l)),
      ["fanout", "user", "connect-timeout", "timeout", "nodes", "exclude"],
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

/** A port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function loopYaml(rig: LoopbackRig, extra: string): string {
  return `defaults:
  user: nosuchuser
  port: ${rig.port}
  sshConfig: ${rig.sshConfig}
  connectTimeout: 20s
rigs:
  loop:
    nodes:
      n1: ${rig.hosts[0]}
${extra}`;
}

Deno.test({
  name:
    "fiwi: -l, --retries and --connect-timeout reach every run; a dead node's ssh error is shown once",
  ignore: skipHere("fiwi -l, --retries, --connect-timeout"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_select_ssh_" });
  // Accepts connections and never answers: a login that cannot finish.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const c of silent) held.push(c);
    } catch { /* closed */ }
  })();
  const dead = closedPort();
  const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
  await Deno.writeTextFile(
    `${cwd}/rigs.yaml`,
    loopYaml(
      rig,
      `      dead: { host: 127.0.0.1, port: ${dead} }\n` +
        `      hang: { host: 127.0.0.1, port: ${
          (silent.addr as Deno.NetAddr).port
        } }\n`,
    ),
  );
  const run = (args: string[]) => fiwi(["run", ...args], { cwd, env });
  try {
    await t.step(
      "-l USER logs in as USER; user@host in a pattern wins",
      async () => {
        const wrong = await run(["--no-log", "-w", "n1", "id -un"]);
        assertEquals(wrong.code, 1, wrong.stderr);
        const right = await run([
          "--no-log",
          "-w",
          "n1",
          "-l",
          rig.user,
          "id -un",
        ]);
        assertEquals([right.code, right.stdout], [0, `n1: ${rig.user}\n`]);
        const adHoc = `${rig.user}@${rig.hosts[1]}`;
        const own = await run([
          "--no-log",
          "-w",
          adHoc,
          "-l",
          "nosuchuser",
          "id -un",
        ]);
        assertEquals([own.code, own.stdout], [0, `${adHoc}: ${rig.user}\n`]);
        const bad = await run(["--no-log", "-w", "n1", "-l", "a b", "true"]);
        assertEquals([bad.code, bad.stdout], [2, ""], bad.stderr);
        assertEquals(bad.stderr.trim().split("\n").length, 1, bad.stderr);
      },
    );

    await t.step(
      "--retries N: N retries, ssh's message shown once",
      async () => {
        const retrying = async (retries: string) => {
          const log = `${cwd}/retries${retries}.log`;
          const out = `${cwd}/out${retries}`;
          const r = await run([
            "--log",
            log,
            "-w",
            "dead",
            "--retries",
            retries,
            "--output-dir",
            out,
            "true",
          ]);
          assertEquals(r.code, 1, r.stderr);
          const text = await Deno.readTextFile(log);
          return {
            retries: text.split("\n").filter((l) => l.includes(" fiwi.retry:"))
              .length,
            stderr: await Deno.readTextFile(`${out}/dead.stderr`),
          };
        };
        const refused = new RegExp(
          `^ssh: connect to host 127\\.0\\.0\\.1 port ${dead}: Connection refused\\n$`,
        );
        const none = await retrying("0");
        assertEquals(none.retries, 0);
        assert(refused.test(none.stderr), none.stderr);
        const two = await retrying("2");
        assertEquals(two.retries, 2);
        assert(refused.test(two.stderr), two.stderr);
        // The default (3 attempts) on the terminal: one line.
        const plain = await run(["--no-log", "-w", "dead", "true"]);
        const lines = plain.stderr.split("\n").filter((l) =>
          /^dead: .*Connection refused/.test(l)
        );
        assertEquals(lines.length, 1, plain.stderr);
        const json = await run([
          "--no-log",
          "--json",
          "-w",
          "dead",
          "--retries",
          "1",
          "true",
        ]);
        const [record] = json.stdout.trim().split("\n").map((l) =>
          JSON.parse(l)
        );
        assert(refused.test(record.stderr), record.stderr);
      },
    );

    await t.step("--connect-timeout (-t) bounds the login", async () => {
      const t0 = performance.now();
      const r = await run([
        "--no-log",
        "--json",
        "-w",
        "hang",
        "-t",
        "1s",
        "--retries",
        "0",
        "true",
      ]);
      const ms = performance.now() - t0;
      const [record] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assertEquals([r.code, record.success], [1, false], r.stderr);
      // ssh's ConnectTimeout or fiwi's own, whichever ends it first.
      assert(
        record.timedOut === "connect" || /timed out/.test(record.stderr),
        JSON.stringify(record),
      );
      // The rig's own connect timeout is 20 s.
      assert(ms < 12_000, `took ${ms} ms`);
      assert(record.durationMs < 5000, `${record.durationMs} ms`);
    });

    await t.step(
      "discover, check, push, pull and close take them and find their nodes",
      async () => {
        const conn = ["--no-log", "-w", "n1", "-l", rig.user, "-t", "10s"];
        const retry = ["--retries", "1"];
        const disc = await fiwi(["discover", ...conn, ...retry, "--json"], {
          cwd,
          env,
        });
        assertEquals(disc.code, 0, disc.stderr);
        assertEquals(JSON.parse(disc.stdout.split("\n")[0]).node, "n1");
        const check = await fiwi(["check", ...conn, ...retry], { cwd, env });
        assertEquals(check.code, 0, check.stdout + check.stderr);
        await Deno.writeTextFile(`${cwd}/payload.txt`, "payload\n");
        const dest = `/tmp/fiwi_select_${marker()}`;
        const push = await fiwi(
          ["push", ...conn, ...retry, "payload.txt", dest],
          { cwd, env },
        );
        assertEquals(push.code, 0, push.stderr);
        const pull = await fiwi(
          ["pull", ...conn, ...retry, `${dest}/payload.txt`, "back"],
          { cwd, env },
        );
        assertEquals(pull.code, 0, pull.stderr);
        assertEquals(
          await Deno.readTextFile(`${cwd}/back/n1/payload.txt`),
          "payload\n",
        );
        await rig.sh(`rm -rf ${dest}`);
        const close = await fiwi(["close", ...conn], { cwd, env });
        assertEquals(close.code, 0, close.stderr);
        assert(close.stderr.includes("Closed 1 ControlMaster"), close.stderr);
      },
    );
  } finally {
    silent.close();
    await accepting;
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed by the peer */ }
    }
    await fiwi(["close", "--no-log", "-l", rig.user], { cwd, env });
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test({
  name:
    "fiwi power finds each node's switch and via node when -l, -t and --retries make variants of the nodes",
  ignore: skipHere("fiwi power with connection options", "node-is-local"),
}, async () => {
  await using rig = await startLoopbackRig();
  await using lab = await startPowerLab(rig, {
    dut: { tool: "uhubctl", id: "1-1", port: 1 },
  });
  await lab.setState("uhubctl", ["1-1 1 off"]);
  const file = `${rig.dir}/rigs.yaml`;
  await Deno.writeTextFile(
    file,
    [
      "rigs:",
      "  lab:",
      `    defaults: { user: ${rig.user}, sshConfig: ${rig.sshConfig} }`,
      "    nodes:",
      `      pi1: { host: 127.0.0.1, port: ${rig.port} }`,
      `      dut: { host: 127.0.0.1, port: ${lab.dutPort}, power: { via: pi1, tool: uhubctl, id: "1-1", port: 1, command: ${
        lab.tool("uhubctl")
      } } }`,
      "",
    ].join("\n"),
  );
  const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
  const common = ["--rig", file, "--no-log", "-w", "dut", "--retries", "0"];
  const on = await fiwi(
    ["power", "on", ...common, "-t", "10s", "-l", rig.user, "--wait"],
    { cwd: rig.dir, env },
  );
  assertEquals([on.code, on.stdout.replace(/,.*/, "")], [0, "dut  on\n"]);
  const status = await fiwi(["power", "status", ...common], {
    cwd: rig.dir,
    env,
  });
  assertEquals([status.code, status.stdout], [0, "dut  on\n"], status.stderr);
  const off = await fiwi(["power", "off", ...common], { cwd: rig.dir, env });
  assertEquals([off.code, off.stdout], [0, "dut  off\n"], off.stderr);
  await fiwi(["close", "--rig", file, "--no-log"], { cwd: rig.dir, env });
});
