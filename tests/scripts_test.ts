// The scripts users run (run, poll, consoles, discover, check), each as a
// subprocess with exactly its deno task's permissions, against the loopback
// rig (two sshd addresses, a nested relay) and the local rig: output shape,
// --json, exit codes 0/1/2, one-line errors, Ctrl-C leaving nothing running
// on either side, colours and progress only on a terminal.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { parse as parseYaml } from "jsr:@std/yaml@^1";
import { helpText } from "../scripts/_cli.ts";
import {
  countCarrying,
  countExact,
  countLocal,
  type LoopbackRig,
  marker,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** An ANSI colour sequence (ESC [ n m). */
const SGR = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`);
const FIXTURE = `${ROOT}tests/fixtures/sysroot`;
const TASKS: Record<string, string> = JSON.parse(
  Deno.readTextFileSync(`${ROOT}deno.json`),
).tasks;

/** The `deno run` argv of a task: its own flags and script, with the repo's config. */
function taskArgv(name: string): string[] {
  const m = /^deno run (.+) (scripts\/[a-z_]+\.ts)$/.exec(TASKS[name]);
  if (!m) throw new Error(`task "${name}" is not "deno run <flags> <script>"`);
  return [
    "run",
    "--config",
    `${ROOT}deno.json`,
    ...m[1].split(" "),
    ROOT + m[2],
  ];
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

interface ScriptOptions {
  /** Working directory (default: a temp dir without rigs.yaml). */
  cwd?: string;
  /** Extra environment. */
  env?: Record<string, string>;
  /**
   * Run on a pseudo-terminal (script(1)) that is the script's controlling
   * terminal: stdout then carries both streams, and {@linkcode ctrlC} types ^C.
   */
  terminal?: boolean;
}

let workDir = "";
let controlDir = "";

function command(name: string, args: string[], o: ScriptOptions) {
  if (o.terminal) {
    const shell = [Deno.execPath(), ...taskArgv(name), ...args]
      .map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    return new Deno.Command("script", {
      args: ["-qec", `exec ${shell}`, "/dev/null"],
      cwd: o.cwd ?? workDir,
      env: {
        FIWI_CONTROL_DIR: controlDir,
        XDG_STATE_HOME: `${workDir}/state`,
        ...o.env,
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
  }
  return new Deno.Command(Deno.execPath(), {
    args: [...taskArgv(name), ...args],
    cwd: o.cwd ?? workDir,
    env: {
      FIWI_CONTROL_DIR: controlDir,
      XDG_STATE_HOME: `${workDir}/state`,
      ...o.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Run a script to its end. */
async function script(
  name: string,
  args: string[],
  o: ScriptOptions = {},
): Promise<Ran> {
  const out = await command(name, args, o).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** A running script whose stdout can be awaited for a pattern. */
function spawn(name: string, args: string[], o: ScriptOptions = {}) {
  const child = command(name, args, o).spawn();
  let stdout = "";
  let stderr = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    add: (s: string) => void,
  ) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      add(chunk);
      for (const w of [...waiters]) {
        if (w.re.test(stdout)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  };
  const done = Promise.all([
    pump(child.stdout, (s) => stdout += s),
    pump(child.stderr, (s) => stderr += s),
    child.status,
  ]).then(([, , status]) => ({ code: status.code, stdout, stderr }));
  return {
    child,
    /**
     * Resolves when stdout matches; rejects if the script ends first, or
     * after `timeout` ms (a missing line fails fast instead of hanging).
     */
    async waitFor(re: RegExp, timeout = 20_000): Promise<void> {
      if (re.test(stdout)) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          new Promise<void>((resolve) => waiters.push({ re, resolve })),
          done.then((r) => {
            if (!re.test(r.stdout)) {
              throw new Error(
                `script ended without ${re}: ${r.stdout}${r.stderr}`,
              );
            }
          }),
          new Promise<never>((_, reject) =>
            timer = setTimeout(() =>
              reject(
                new Error(`no ${re} within ${timeout} ms: ${stdout}${stderr}`),
              ), timeout)
          ),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    done,
  };
}

/**
 * ^C typed on the terminal of a script spawned with `terminal: true`: the
 * terminal signals its whole foreground process group, as for a user.
 */
async function ctrlC(child: Deno.ChildProcess): Promise<void> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new Uint8Array([3]));
    await child.status;
  } finally {
    await writer.close().catch(() => {});
  }
}

/** Ctrl-C for a script (which may have ended already). */
function interrupt(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGINT");
  } catch { /* already exited */ }
}

/**
 * The session of the deno process whose command line contains `text`, and
 * the sessions of its ssh client children.
 */
async function clientSessions(
  text: string,
): Promise<{ script: number; clients: number[] }> {
  const out = await new Deno.Command("ps", {
    args: ["-eo", "pid=,ppid=,sid=,comm=,args="],
    stdout: "piped",
  }).output();
  const procs = new TextDecoder().decode(out.stdout).split("\n").flatMap(
    (l) => {
      const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(l);
      return m
        ? [{ pid: +m[1], ppid: +m[2], sid: +m[3], comm: m[4], args: m[5] }]
        : [];
    },
  );
  const scripts = procs.filter((p) =>
    p.comm === "deno" && p.args.includes(text)
  );
  assertEquals(scripts.length, 1, `one deno process running ${text}`);
  const [script] = scripts;
  const clients = procs.filter((p) =>
    p.ppid === script.pid && p.comm === "ssh"
  );
  return { script: script.sid, clients: clients.map((p) => p.sid) };
}

/** Poll a remote/local condition (no event exists for "a process began"). */
async function until(what: string, check: () => Promise<boolean>) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function oneLine(r: Ran, name: string, want: string | RegExp): void {
  assertEquals(r.code, 2, r.stderr);
  assertEquals(r.stdout, "");
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assertEquals(lines.length, 1, r.stderr);
  if (typeof want === "string") assertEquals(lines[0], `${name}: ${want}`);
  else assertMatch(lines[0], want);
}

// The console of n1 on the loopback rig, unique to this run.
const N1_CONSOLE = marker();

function loopRigYaml(rig: LoopbackRig): string {
  return `default: loop
defaults:
  user: ${rig.user}
  port: ${rig.port}
  sshConfig: ${rig.sshConfig}
  connectTimeout: 20s
rigs:
  loop:
    nodes:
      n1:
        host: ${rig.hosts[0]}
        groups: [direct]
        console: true
        consoleCommand: echo console-up; exec sleep ${N1_CONSOLE}
      n2: { host: ${rig.hosts[1]}, groups: [direct] }
      # Behind a relay, without a ControlMaster: its outer hop goes to n1's
      # address, and two clients that open one ControlPath at the same
      # instant race for it (the loser warns on stderr).
      n3:
        host: ${rig.hosts[1]}
        relay: ${rig.user}@${rig.hosts[0]}:${rig.port}
        relayMode: ${rig.relayReady ? "nested" : "jump"}
        controlMaster: false
        groups: [relayed]
  broken:
    nodes:
      good: ${rig.hosts[0]}
      refused: { host: ${rig.hosts[0]}, port: 1 }
      badauth: { host: ${rig.hosts[0]}, user: nosuchuser }
      badkey: { host: ${rig.hosts[0]}, sshConfig: ${rig.dir}/strict_config }
      changed: { host: ${rig.hosts[0]}, sshConfig: ${rig.dir}/changed_config }
      badrelay: { host: ${rig.hosts[1]}, relay: "${rig.user}@${
    rig.hosts[0]
  }:1" }
  here:
    nodes:
      me:
        transport: local
        console: true
        consoleCommand: echo up; exec sleep ${marker()}
`;
}

Deno.test("scripts: help, usage errors and bad rig files exit 2 with one line, without running anything", async (t) => {
  workDir = await Deno.makeTempDir({ prefix: "fiwi_scripts_" });
  controlDir = `${workDir}/cm`;
  // The default log directory ($XDG_STATE_HOME/fiwi) exists: its creation
  // notice is tested in cli_fiwi_test.ts.
  await Deno.mkdir(`${workDir}/state/fiwi`, { recursive: true, mode: 0o700 });
  try {
    await t.step("--help prints the usage and exits 0", async () => {
      for (
        const name of ["run", "poll", "consoles", "discover", "check", "close"]
      ) {
        const r = await script(name, ["--help"]);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(
          r.stdout,
          new RegExp(`Usage: fiwi ${name} \\[options\\]`),
        );
        assertMatch(r.stdout, /--nodes PATTERN/);
        assertMatch(r.stdout, /Exit status: 0 every node succeeded/);
      }
    });

    await t.step("usage errors", async () => {
      oneLine(
        await script("run", ["--fanot", "2", "true"]),
        "run",
        'Unknown option "--fanot": did you mean "--fanout"?',
      );
      oneLine(
        await script("run", []),
        "run",
        "No command given: fiwi run [options] CMD (see --help)",
      );
      oneLine(
        await script("poll", ["--interval", "5", "true"]),
        "poll",
        'Invalid --interval "5": a duration needs a unit: write "5s" or "5ms"',
      );
      oneLine(
        await script("run", ["--fanout", "0", "true"]),
        "run",
        'Invalid --fanout "0": give a whole number >= 1',
      );
      oneLine(
        await script("check", ["--nodes", "nope"]),
        "check",
        'Node pattern "nope" matches no node in rig "local": nodes are "local"',
      );
      oneLine(
        await script("check", ["extra"]),
        "check",
        'Unexpected argument "extra": see --help',
      );
    });

    await t.step(
      "bad rig files: one line with file:line:column, and nothing runs",
      async () => {
        const cases: [string, string][] = [
          [
            "rigs:\n  r:\n    nodes:\n      a:\n        host: x\n        prot: 22\n",
            '6:9: Unknown key "prot" in node "a": did you mean "port"?',
          ],
          [
            "rigs:\n  r:\n    nodes:\n      a: {transport: local, console: yes}\n",
            '4:38: Invalid console "yes": use true or false',
          ],
          [
            "rigs:\n  r:\n    nodes:\n      a: {transport: local}\n      a: {transport: local}\n",
            '5:7: Duplicate node name "a" in rig "r": first defined at line 4',
          ],
          [
            "defaults:\n  cmdTimeout: 30\nrigs:\n  r:\n    nodes: {a: {transport: local}}\n",
            '2:15: Invalid cmdTimeout 30: a duration needs a unit: write "30s" or "30ms"',
          ],
          [
            "rigs:\n  r:\n    nodes:\n      a: {host: '-oProxyCommand=sh'}\n",
            '4:17: Invalid host "-oProxyCommand=sh": use a host name or IP address (no leading "-", whitespace or shell metacharacters)',
          ],
          [
            "rigs:\n  r:\n    nodes:\n      a: [local\n",
            "5:1: Invalid YAML: Cannot read flow collection: unexpected end of the stream within a flow collection",
          ],
        ];
        const marker = `${workDir}/ran`;
        for (const [i, [text, want]] of cases.entries()) {
          const file = `${workDir}/bad${i}.yaml`;
          await Deno.writeTextFile(file, text);
          for (const name of ["run", "check"]) {
            const args = name === "run"
              ? ["--rig", file, `touch ${marker}`]
              : ["--rig", file];
            oneLine(await script(name, args), name, `${file}:${want}`);
          }
        }
        const ran = await Deno.stat(marker).then(() => true, () => false);
        assertEquals(ran, false, "a command ran although the rig file is bad");
        oneLine(
          await script("check", ["--rig", `${workDir}/missing.yaml`]),
          "check",
          `${workDir}/missing.yaml: Cannot read the rig file: No such file`,
        );
      },
    );

    await t.step("helpText() lists every common option once", () => {
      const text = helpText({ name: "x", summary: "S", options: [] });
      for (
        const flag of [
          "--rig FILE",
          "--rig-name NAME",
          "--nodes PATTERN",
          "--json",
          "--log FILE",
          "--no-log",
          "--help",
        ]
      ) {
        assertEquals(text.split(flag).length - 1, 1, flag);
      }
    });
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test({
  name:
    "scripts: check's hint names the address ssh tried, as the ssh config made it, not the node's settings",
  ignore: skipHere("check's hint names the address ssh tried"),
}, async () => {
  workDir = await Deno.makeTempDir({ prefix: "fiwi_scripts_" });
  controlDir = `${workDir}/cm`;
  await Deno.mkdir(`${workDir}/state/fiwi`, { recursive: true, mode: 0o700 });
  try {
    // The rig gives no port, and an alias: ssh's config gives both, and
    // nothing listens on port 1.
    await Deno.writeTextFile(
      `${workDir}/ssh_config`,
      "Host dut\n  HostName 127.0.0.1\n  Port 1\n",
    );
    await Deno.writeTextFile(
      `${workDir}/rigs.yaml`,
      `rigs:\n  r:\n    nodes:\n      dut: { host: dut, sshConfig: ${workDir}/ssh_config }\n`,
    );
    const r = await script("check", [
      "--rig",
      `${workDir}/rigs.yaml`,
      "--json",
    ]);
    assertEquals(r.code, 1, r.stderr);
    const [c] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals([c.node, c.problem, c.hop], ["dut", "unreachable", "node"]);
    assertMatch(
      c.detail,
      /connect to host 127\.0\.0\.1 port 1: Connection refused/,
    );
    assertEquals(
      c.hint,
      'Nothing accepts connections on 127.0.0.1:1: start sshd there or fix "port"',
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("scripts: the built-in local rig works with no rig file and no SSH", async (t) => {
  workDir = await Deno.makeTempDir({ prefix: "fiwi_scripts_" });
  controlDir = `${workDir}/cm`;
  // The default log directory ($XDG_STATE_HOME/fiwi) exists: its creation
  // notice is tested in cli_fiwi_test.ts.
  await Deno.mkdir(`${workDir}/state/fiwi`, { recursive: true, mode: 0o700 });
  try {
    await t.step("run streams node: line and logs every line", async () => {
      const r = await script("run", [
        "--log",
        `${workDir}/x.log`,
        "echo hi; echo oops >&2",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "local: hi\n");
      assertMatch(r.stderr, /^local: oops\nok: local \(exit 0, \d+ ms\)\n$/);
      assert(
        !r.stdout.includes("\x1b") && !r.stderr.includes("\x1b"),
        "no escapes off a terminal",
      );
      const log = await Deno.readTextFile(`${workDir}/x.log`);
      const head = String
        .raw`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d`;
      assertMatch(
        log,
        new RegExp(`${head} INF [0-9a-f]{8} fiwi\\.cli\\.run: local: hi$`, "m"),
      );
      assertMatch(
        log,
        new RegExp(
          `${head} WRN [0-9a-f]{8} fiwi\\.cli\\.run: local: oops$`,
          "m",
        ),
      );
      assertMatch(log, /fiwi\.cli\.run: ok: local/m);
      assertEquals((await Deno.stat(`${workDir}/x.log`)).mode! & 0o777, 0o600);
    });

    await t.step(
      "the default log file is $XDG_STATE_HOME/fiwi/fiwi.log",
      async () => {
        const r = await script("check", []);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(
          r.stdout,
          /^NODE +TARGET +REACH +HOSTKEY +AUTH +CMD +TIME\nlocal +\(this machine\) +- +- +- +ok +\d+ ms\n1\/1 node ok\n$/,
        );
        assertMatch(
          await Deno.readTextFile(`${workDir}/state/fiwi/fiwi.log`),
          /1\/1 node ok/,
        );
      },
    );

    await t.step(
      "a failing command exits 1 with its exit code in the summary",
      async () => {
        const r = await script("run", ["exit 4"]);
        assertEquals(r.code, 1);
        assertEquals(
          r.stderr,
          "exit 4: local\n0/1 nodes ok in " + r.stderr.split(" in ")[1],
        );
      },
    );

    await t.step(
      "discover reads the fixture tree through the local transport",
      async () => {
        const yamlFile = `${workDir}/inventory.yaml`;
        const r = await script("discover", [
          "--root",
          FIXTURE,
          "--write",
          yamlFile,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const lines = r.stdout.split("\n");
        assertMatch(lines[0], /^local \(.+\)$/);
        assertMatch(
          lines[1],
          /^ {2}USB +ID +MANUFACTURER +PRODUCT +SERIAL +POWER CONTROL$/,
        );
        assertMatch(
          r.stdout,
          /^ {2}1-1\.1 +16c0:05df +www\.dcttech\.com +USBRelay2 +- +usb-relay \(usbrelay \/ hidusb-relay-cmd\)$/m,
        );
        assertMatch(
          r.stdout,
          /^ {2}\/dev\/ttyUSB0 +1-1\.2 \(0403:6001\) +\/dev\/serial\/by-id\/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0$/m,
        );
        assertMatch(
          r.stdout,
          /^ {2}BAT0 +Battery +Discharging, 87%, 12\.1 V$/m,
        );
        assertEquals(
          r.stderr,
          `Wrote the inventory of 1 node to ${yamlFile}\n`,
        );
        const json = await script("discover", ["--root", FIXTURE, "--json"]);
        assertEquals(json.code, 0, json.stderr);
        const records = json.stdout.trim().split("\n").map((l) =>
          JSON.parse(l)
        );
        assertEquals(records.pop().summary, { nodes: 1, ok: 1, failed: 0 });
        const inventories = records;
        assertEquals(parseYaml(await Deno.readTextFile(yamlFile)), inventories);
        assertEquals(inventories[0].powerControl.length, 3);
      },
    );

    await t.step(
      "consoles exits 0 when --duration ends it, leaving nothing running",
      async () => {
        const rigFile = `${workDir}/here.yaml`;
        const m = marker();
        await Deno.writeTextFile(
          rigFile,
          `rigs:\n  here:\n    nodes:\n      me: {transport: local, console: true, consoleCommand: 'exec sleep ${m}'}\n`,
        );
        const r = await script("consoles", [
          "--rig",
          rigFile,
          "--duration",
          "300ms",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          r.stderr,
          "Consoles open: me (closing in 300ms)\nConsoles closed: 1/1 ok\n",
        );
        // The local transport's lifeline ends the console within its bound.
        assertEquals(await settlesToZero(() => countCarrying(m)), 0);
      },
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("scripts: against the loopback rig", {
  // Nodes told apart by address, a relayed node, the fixture tree locally:
  // tests/live_scripts_test.ts runs the scripts on a live node instead.
  ignore: skipHere(
    "scripts: against the loopback rig",
    "second-address",
    "relay",
    "node-is-local",
  ),
}, async (t) => {
  await using rig = await startLoopbackRig();
  workDir = await Deno.makeTempDir({ prefix: "fiwi_scripts_" });
  controlDir = `${rig.dir}/cm`;
  await Deno.mkdir(`${workDir}/state/fiwi`, { recursive: true, mode: 0o700 });
  const rigFile = `${workDir}/rigs.yaml`;
  await Deno.writeTextFile(rigFile, loopRigYaml(rig));
  await Deno.writeTextFile(
    `${rig.dir}/strict_config`,
    `Host *\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  IdentityFile ${rig.identityFile}\n  IdentitiesOnly yes\n`,
  );
  // A known_hosts entry with another key than the server's: a changed key.
  const otherKey = (await Deno.readTextFile(`${rig.identityFile}.pub`))
    .split(" ").slice(0, 2).join(" ");
  await Deno.writeTextFile(
    `${rig.dir}/changed_known_hosts`,
    `[${rig.hosts[0]}]:${rig.port} ${otherKey}\n`,
  );
  await Deno.writeTextFile(
    `${rig.dir}/changed_config`,
    `Host *\n  UserKnownHostsFile ${rig.dir}/changed_known_hosts\n  StrictHostKeyChecking yes\n  IdentityFile ${rig.identityFile}\n  IdentitiesOnly yes\n`,
  );
  const all = ["n1", "n2", "n3"];
  const label = "n[1-3]";
  try {
    await t.step(
      "run streams prefixed lines from every node; its masters stay warm until close",
      async () => {
        const r = await script("run", ["--rig", rigFile, "echo hello"]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          r.stdout.split("\n").filter((l) => l).sort(),
          all.map((n) => `${n}: hello`),
        );
        assertMatch(
          r.stderr,
          new RegExp(`^ok: ${label.replace(/[[\]]/g, "\\$&")} \\(exit 0, `),
        );
        // n1 and n2 keep a master each; n3 uses none.
        assertEquals(await countLocal(`${rig.dir}/cm/`), 2, "warm masters");
        const closed = await script("close", ["--rig", rigFile]);
        assertEquals(closed.code, 0, closed.stderr);
        assertMatch(closed.stderr, /^Closed 2 ControlMasters: n\[1-2\]/);
        await until(
          "masters gone",
          async () => await countLocal(`${rig.dir}/cm/`) === 0,
        );
      },
    );

    await t.step(
      "run -b collates identical output under one header",
      async () => {
        const r = await script("run", [
          "--rig",
          rigFile,
          "-b",
          "--",
          "echo",
          "same",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          r.stdout,
          `----------------\n${label}\n----------------\nsame\n`,
        );
      },
    );

    await t.step(
      "run --json and a partial failure: exit 1 and the exit-code summary",
      async () => {
        const cmd =
          "case $SSH_CONNECTION in *127.0.0.2*) echo bad >&2; exit 3;; esac; echo fine";
        const r = await script("run", ["--rig", rigFile, "--json", cmd]);
        assertEquals(r.code, 1, r.stderr);
        const records = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
        const { summary } = records.pop();
        assertEquals([summary.nodes, summary.ok, summary.failed], [3, 1, 2]);
        const results = (records as Record<string, unknown>[])
          .sort((a, b) => String(a.node).localeCompare(String(b.node)));
        assertEquals(
          results.map((
            x,
          ) => [x.node, x.code, x.success, x.stdout, x.stderr, x.outcome]),
          all.map((n) =>
            n === "n1"
              ? [n, 0, true, "fine\n", "", "exit 0"]
              : [n, 3, false, "", "bad\n", "exit 3"]
          ),
        );
        const text = await script("run", [
          "--rig",
          rigFile,
          "--nodes",
          "@direct",
          cmd,
        ]);
        assertEquals(text.code, 1);
        assertEquals(text.stdout, "n1: fine\n");
        assertMatch(
          text.stderr,
          /^n2: bad\nexit 0: n1\nexit 3: n2\n1\/2 nodes ok in /,
        );
      },
    );

    await t.step(
      "check tells unreachable, auth, unknown and changed host keys and a failing relay apart, with hints that fix them",
      async () => {
        const r = await script("check", [
          "--rig",
          rigFile,
          "--rig-name",
          "broken",
          "--json",
        ]);
        assertEquals(r.code, 1, r.stderr);
        const records = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
        assertEquals(records.pop().summary, { nodes: 6, ok: 1, failed: 5 });
        const order = [
          "good",
          "refused",
          "badauth",
          "badkey",
          "changed",
          "badrelay",
        ];
        const checks = (records as Record<string, unknown>[]).sort((a, b) =>
          order.indexOf(String(a.node)) - order.indexOf(String(b.node))
        );
        assertEquals(
          checks.map((
            c,
          ) => [
            c.node,
            c.ok,
            c.problem,
            c.reachable,
            c.hostKey,
            c.auth,
            c.command,
            c.hop,
          ]),
          [
            ["good", true, null, true, true, true, true, null],
            ["refused", false, "unreachable", false, null, null, null, "node"],
            ["badauth", false, "auth", true, true, false, null, "node"],
            ["badkey", false, "host-key", true, false, null, null, "node"],
            ["changed", false, "host-key", true, false, null, null, "node"],
            [
              "badrelay",
              false,
              "unreachable",
              false,
              null,
              null,
              null,
              "relay",
            ],
          ],
        );
        assertMatch(
          String(checks[4].hint),
          // The known_hosts file ssh named: changed_config's, not the default.
          new RegExp(
            `changed .*ssh-keygen -f "${rig.dir}/changed_known_hosts" -R "\\[${
              rig.hosts[0]
            }\\]:${rig.port}"`,
          ),
        );
        assertMatch(
          String(checks[5].hint),
          new RegExp(
            `^The relay "${rig.user}@${rig.hosts[0]}:1" failed, not the node`,
          ),
        );
        assertMatch(
          String(checks[1].hint),
          /^Nothing accepts connections on 127\.0\.0\.1:1/,
        );
        assertMatch(
          String(checks[2].hint),
          /refused every key for "nosuchuser"/,
        );
        assertMatch(String(checks[3].hint), /ssh-keyscan -p \d+ 127\.0\.0\.1/);
        const table = await script("check", [
          "--rig",
          rigFile,
          "--rig-name",
          "broken",
        ]);
        assertEquals(table.code, 1);
        assertMatch(table.stdout, /^good +\S+ +ok +ok +ok +ok +[\d.]+ m?s$/m);
        assertMatch(
          table.stdout,
          /^refused +\S+ +FAIL +- +- +- +[\d.]+ m?s\n {2}Cannot reach node "refused": .*Connection refused\n {2}hint: /m,
        );
        assertMatch(table.stdout, /^badauth +\S+ +ok +ok +FAIL +- /m);
        assertMatch(table.stdout, /^badkey +\S+ +ok +FAIL +- +- /m);
        assertMatch(table.stdout, /\n1\/6 nodes ok\n$/);
      },
    );

    await t.step(
      "discover over ssh reads the fixture tree on the node",
      async () => {
        const r = await script("discover", [
          "--rig",
          rigFile,
          "--nodes",
          "n1",
          "--root",
          FIXTURE,
          "--json",
        ]);
        assertEquals(r.code, 0, r.stderr);
        const [inv] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
        assertEquals([inv.node, inv.ok, inv.usb.length, inv.serial.length], [
          "n1",
          true,
          5,
          2,
        ]);
      },
    );

    await t.step(
      "poll fires every node each tick, --json gives one object per run",
      async () => {
        const r = await script("poll", [
          "--rig",
          rigFile,
          "--nodes",
          "@direct",
          "-i",
          "100ms",
          "-n",
          "3",
          "--json",
          "echo tick",
        ]);
        assertEquals(r.code, 0, r.stderr);
        const objects = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
        const runs = objects.filter((o) => "tick" in o);
        assertEquals(runs.map((o) => [o.tick, o.node, o.stdout]), [
          [1, "n1", "tick\n"],
          [1, "n2", "tick\n"],
          [2, "n1", "tick\n"],
          [2, "n2", "tick\n"],
          [3, "n1", "tick\n"],
          [3, "n2", "tick\n"],
        ]);
        const { summary } = objects.at(-1);
        assertEquals([
          summary.ticks,
          summary.runs,
          summary.ok,
          summary.interrupted,
        ], [3, 6, 6, false]);
        const text = await script("poll", [
          "--rig",
          rigFile,
          "--nodes",
          "n1",
          "-i",
          "100ms",
          "-n",
          "2",
          "echo tick",
        ]);
        assertEquals(text.code, 0, text.stderr);
        assertMatch(
          text.stdout,
          /^--- tick 1 \d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d\nn1: tick\n--- tick 2 \S+\nn1: tick\n$/,
        );
        assertMatch(
          text.stderr,
          /^Done: 2 ticks in [\d.]+ s, 2\/2 runs ok(, \d+ ticks skipped \(overrun\))?\n {2}NODE +RUNS +OK +FAILED\n {2}n1 +2 +2 +0\n$/,
        );
      },
    );

    // Ctrl-C during two remote `sleep <n>`: as SIGINT to fiwi alone (no
    // terminal), or typed on a terminal, which signals its whole foreground
    // group. Either way nothing is left running and the summary is printed.
    const pollCtrlC = async (terminal: boolean) => {
      const m = marker();
      const sleep = `sleep ${m}`;
      const p = spawn("poll", [
        "--rig",
        rigFile,
        "--nodes",
        "@direct",
        "-i",
        "10s",
        `echo started; exec ${sleep}`,
      ], terminal ? { terminal, env: { NO_COLOR: "1" } } : {});
      let typed: Promise<void> | undefined;
      try {
        // n2's lines are held until n1 (first in the set) ends: only n1's
        // show before Ctrl-C; both sleeps are counted on the node below.
        await p.waitFor(/n1: started/);
        await until(
          "both remote sleeps",
          async () => await countExact(sleep, rig) === 2,
        );
        const { script, clients } = await clientSessions(sleep);
        if (terminal) {
          // Each client leads a session of its own, out of ^C's reach.
          assertEquals(clients.length, 2);
          assert(!clients.includes(script), `${clients} vs ${script}`);
        } else {
          // No terminal, so no ^C for the group: no setsid(1) per run.
          assertEquals(clients, [script, script]);
        }
      } finally {
        if (terminal) typed = ctrlC(p.child);
        else interrupt(p.child);
      }
      const r = await p.done;
      await typed;
      assertEquals(r.code, 130, r.stdout + r.stderr);
      // The held lines are printed once n1 ends, after it: node-set order.
      assertMatch(r.stdout, /n1: started\r?\n[\s\S]*?n2: started/);
      // On a terminal stderr arrives through the terminal, on stdout, after
      // the progress line was cleared (ESC [K).
      assertMatch(
        terminal ? r.stdout : r.stderr,
        terminal
          ? /\[KInterrupted after 1 tick in [\d.]+ s, 0\/2 runs ok, 2 interrupted\r\n/
          : /^Interrupted after 1 tick in [\d.]+ s, 0\/2 runs ok, 2 interrupted\n/,
      );
      // fiwi stopped its clients; each node ends the rest within the
      // lifeline's bound.
      assertEquals(
        await settlesToZero(() => countCarrying(m, rig)),
        0,
        "remote process left",
      );
      assertEquals(await countCarrying(m), 0, "local ssh client left");
    };

    await t.step(
      "poll: Ctrl-C stops the commands on every node and prints the summary",
      () => pollCtrlC(false),
    );

    await t.step(
      "poll on a terminal: ^C reaches only fiwi, which stops every node in order",
      () => pollCtrlC(true),
    );

    await t.step(
      "consoles: timestamped [node] lines; Ctrl-C closes every stream",
      async () => {
        const p = spawn("consoles", ["--rig", rigFile]);
        try {
          await p.waitFor(
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \[n1\] console-up$/m,
          );
          await until(
            "the remote console",
            async () => await countExact(`sleep ${N1_CONSOLE}`, rig) === 1,
          );
        } finally {
          interrupt(p.child);
        }
        const r = await p.done;
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          r.stderr,
          "Consoles open: n1 (Ctrl-C to close)\nConsoles closed: 1/1 ok\n",
        );
        assertEquals(
          await settlesToZero(() => countCarrying(N1_CONSOLE, rig)),
          0,
          "remote console left",
        );
        assertEquals(
          await countCarrying(N1_CONSOLE),
          0,
          "local ssh client left",
        );
      },
    );

    await t.step(
      "consoles on a selection without console nodes is a usage error",
      async () => {
        oneLine(
          await script("consoles", ["--rig", rigFile, "--nodes", "n2"]),
          "consoles",
          `None of the selected nodes of rig "loop" has "console: true": set it in ${rigFile}`,
        );
      },
    );
  } finally {
    // Masters stay warm after every command: close them, as a user would.
    await script("close", ["--rig", rigFile]);
    await until("masters gone", async () => {
      await script("close", ["--rig", rigFile]);
      return await countLocal(`${rig.dir}/cm/`) === 0;
    }).catch(() => {});
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("scripts: colours and the progress line only on a terminal, colours never with NO_COLOR", async () => {
  workDir = await Deno.makeTempDir({ prefix: "fiwi_scripts_" });
  controlDir = `${workDir}/cm`;
  // The default log directory ($XDG_STATE_HOME/fiwi) exists: its creation
  // notice is tested in cli_fiwi_test.ts.
  await Deno.mkdir(`${workDir}/state/fiwi`, { recursive: true, mode: 0o700 });
  try {
    const shell = [Deno.execPath(), ...taskArgv("run"), "echo hi"]
      .map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    const onTty = async (noColor: boolean) => {
      const env: Record<string, string> = {
        ...Deno.env.toObject(),
        FIWI_CONTROL_DIR: controlDir,
        XDG_STATE_HOME: `${workDir}/state`,
      };
      delete env.NO_COLOR;
      if (noColor) env.NO_COLOR = "1";
      // script(1) gives the command a pseudo-terminal for stdout and stderr.
      const out = await new Deno.Command("script", {
        args: ["-qec", shell, "/dev/null"],
        cwd: workDir,
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        // Bounded: a script stuck on its terminal fails the case, not the run.
        signal: AbortSignal.timeout(30_000),
      }).output();
      return { code: out.code, text: new TextDecoder().decode(out.stdout) };
    };
    const coloured = await onTty(false);
    assertEquals(coloured.code, 0, coloured.text);
    assert(
      coloured.text.includes("\x1b[36mlocal\x1b[39m: hi"),
      JSON.stringify(coloured.text),
    );
    assert(
      coloured.text.includes("\r\x1b[K[0/1 done]"),
      "progress line on a terminal",
    );
    const plain = await onTty(true);
    assertEquals(plain.code, 0, plain.text);
    assert(plain.text.includes("local: hi"), plain.text);
    assert(
      !SGR.test(plain.text),
      `colour despite NO_COLOR: ${JSON.stringify(plain.text)}`,
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});
