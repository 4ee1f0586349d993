// The `fiwi` command on this machine (local transport, no ssh): the entry
// point and its subcommands, getopt-style option values, the central log
// (private, rotated, one record per output line, an id on every record),
// paths relative to the user's directory under `deno task --config`, run's
// stdin, --output-dir and streamed --json, and the compiled binary.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  type Finished,
  fiwi,
  installFlags,
  permissionFlags,
  startFiwi,
} from "./_cli_harness.ts";
import { countCarrying, marker } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d`;
const TWO_LOCAL = "rigs:\n  here:\n    nodes:\n" +
  "      a: { transport: local }\n      b: { transport: local }\n";

function oneLine(r: Finished, want: string): void {
  assertEquals([r.code, r.stdout], [2, ""], r.stderr);
  assertEquals(r.stderr, want + "\n");
}

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_cli_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("fiwi: one entry point lists its subcommands, runs each one, and names a mistyped one", async () => {
  await inTempDir(async (cwd) => {
    const help = await fiwi(["--help"], { cwd });
    assertEquals(help.code, 0, help.stderr);
    for (
      const name of [
        "run",
        "poll",
        "consoles",
        "discover",
        "check",
        "nodes",
        "close",
        "push",
        "pull",
        "power",
      ]
    ) {
      assertMatch(help.stdout, new RegExp(`^  ${name} +\\S`, "m"));
    }
    oneLine(
      await fiwi(["rn", "true"], { cwd }),
      'fiwi: Unknown subcommand "rn": did you mean "run"?',
    );
    const runHelp = await fiwi(["help", "run"], { cwd });
    assertMatch(runHelp.stdout, /^Usage: fiwi run \[options\] CMD\.\.\.$/m);
    const ran = await fiwi(["run", "--no-log", "echo via-fiwi"], { cwd });
    assertEquals([ran.code, ran.stdout], [0, "local: via-fiwi\n"], ran.stderr);
    const checked = await fiwi(["check", "--no-log"], { cwd });
    assertEquals(checked.code, 0, checked.stderr);
    assertMatch(checked.stdout, /^local +\(this machine\)/m);
  });
});

Deno.test("fiwi: an option takes the next word as its value and a flag never does", async () => {
  await inTempDir(async (cwd) => {
    const o = { cwd };
    oneLine(
      await fiwi(["run", "-t", "-5s", "true"], o),
      'run: Invalid --connect-timeout "-5s": give a duration of 0 or more, like "30s"',
    );
    oneLine(
      await fiwi(["run", "--fanout", "-1", "true"], o),
      'run: Invalid --fanout "-1": give a whole number >= 1',
    );
    oneLine(
      await fiwi(["poll", "-n", "-3", "true"], o),
      'poll: Invalid --count "-3": give a whole number >= 1',
    );
    oneLine(
      await fiwi(["run", "--collate=maybe", "true"], o),
      'run: Invalid --collate "maybe": give --collate alone, or =yes / =no',
    );
    // `true` stays the command: collated output of a silent command.
    const collated = await fiwi(["run", "--no-log", "--collate", "true"], o);
    assertEquals(collated.code, 0, collated.stderr);
    assertEquals(
      collated.stdout,
      "----------------\nlocal\n----------------\n",
    );
    const off = await fiwi(["run", "--no-log", "--collate=no", "echo", "x"], o);
    assertEquals(off.stdout, "local: x\n");
  });
});

Deno.test("fiwi: the central log is private, rotated, and has one record per output line with time, id and category", async (t) => {
  await inTempDir(async (cwd) => {
    await t.step(
      "one record per line, all with this invocation's id",
      async () => {
        const r = await fiwi([
          "run",
          "--log",
          "run.log",
          "seq 1 500; echo e >&2",
        ], { cwd });
        assertEquals(r.code, 0, r.stderr);
        const log = (await Deno.readTextFile(`${cwd}/run.log`)).trimEnd().split(
          "\n",
        );
        const lines = log.filter((l) => /fiwi\.cli\.run: local: /.test(l));
        assertEquals(lines.length, 501);
        assertMatch(
          lines[0],
          new RegExp(`^${ISO} (INF|WRN) [0-9a-f]{8} fiwi\\.cli\\.run: local: `),
        );
        const ids = new Set(log.map((l) => l.split(" ")[2]));
        assertEquals(ids.size, 1, "one invocation id");
        assertEquals((await Deno.stat(`${cwd}/run.log`)).mode! & 0o777, 0o600);
      },
    );

    await t.step(
      "rotation keeps FIWI_LOG_FILES files of about FIWI_LOG_SIZE, all 0600",
      async () => {
        const env = { FIWI_LOG_SIZE: "8K", FIWI_LOG_FILES: "2" };
        const r = await fiwi(["run", "--log", "rot.log", "seq 1 3000"], {
          cwd,
          env,
        });
        assertEquals(r.code, 0, r.stderr);
        const names = [...Deno.readDirSync(cwd)].map((e) => e.name).filter((
          n,
        ) => n.startsWith("rot.log")).sort();
        assertEquals(names, ["rot.log", "rot.log.1", "rot.log.2"]);
        for (const n of names) {
          const st = await Deno.stat(`${cwd}/${n}`);
          assert(st.size <= 8192, `${n}: ${st.size}`);
          assertEquals(st.mode! & 0o777, 0o600, n);
        }
      },
    );

    await t.step(
      "--log /dev/null and --no-log log nothing; a missing directory is named",
      async () => {
        const devNull = await fiwi(["run", "--log", "/dev/null", "echo x"], {
          cwd,
        });
        assertEquals(
          [devNull.code, devNull.stdout],
          [0, "local: x\n"],
          devNull.stderr,
        );
        const state = `${cwd}/state`;
        const env = { XDG_STATE_HOME: state };
        const none = await fiwi(["run", "--no-log", "--no-db", "echo x"], {
          cwd,
          env,
        });
        assertEquals(none.code, 0, none.stderr);
        assertEquals(await Deno.stat(state).catch(() => null), null);
        oneLine(
          await fiwi(["run", "--log", "nodir/x.log", "true"], { cwd }),
          `run: Log directory "${cwd}/nodir" does not exist: create it, or give --log another file or --no-log`,
        );
        oneLine(
          await fiwi(["run", "--log", "a.log", "--no-log", "true"], { cwd }),
          'run: Give either "--log FILE" or "--no-log", not both',
        );
      },
    );

    await t.step(
      "the default $XDG_STATE_HOME/fiwi/ is created 0700, with a notice",
      async () => {
        const env = { XDG_STATE_HOME: `${cwd}/xdg` };
        const r = await fiwi(["run", "true"], { cwd, env });
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          r.stderr.split("\n")[0],
          `Created the log directory ${cwd}/xdg/fiwi (0700) for ${cwd}/xdg/fiwi/fiwi.log`,
        );
        assertEquals((await Deno.stat(`${cwd}/xdg/fiwi`)).mode! & 0o777, 0o700);
        const again = await fiwi(["run", "true"], { cwd, env });
        assert(!again.stderr.includes("Created"), again.stderr);
      },
    );
  });
});

Deno.test("fiwi: under deno task --config, --rig, --log and --output-dir are relative to the user's directory", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/mine.yaml`, TWO_LOCAL);
    const r = await fiwi(
      [
        "run",
        "--rig",
        "mine.yaml",
        "--log",
        "mine.log",
        "--output-dir",
        "out",
        "echo hi",
      ],
      { cwd, via: { kind: "task" } },
    );
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /^ok: \[?a/m);
    assertEquals(await Deno.readTextFile(`${cwd}/out/a.stdout`), "hi\n");
    assertMatch(await Deno.readTextFile(`${cwd}/mine.log`), /Started fiwi run/);
  });
});

Deno.test("fiwi run: piped stdin or --stdin FILE reaches every node byte for byte", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, TWO_LOCAL);
    const bytes = new Uint8Array(70_000).map((_, i) =>
      (i * 7 + (i >> 8)) & 0xff
    );
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const want = [...digest].map((b) => b.toString(16).padStart(2, "0")).join(
      "",
    );
    const hashes = (r: Finished) =>
      r.stdout.trim().split("\n").map((l) => l.replace(/ .*/, "")).sort();
    const piped = await fiwi(["run", "--no-log", "sha256sum"], {
      cwd,
      stdin: bytes,
    });
    assertEquals(piped.code, 0, piped.stderr);
    assertEquals(hashes(piped), [`a:`, `b:`]);
    assertEquals(
      piped.stdout.match(new RegExp(want, "g"))?.length,
      2,
      piped.stdout,
    );
    await Deno.writeFile(`${cwd}/payload.bin`, bytes);
    const file = await fiwi([
      "run",
      "--no-log",
      "--stdin",
      "payload.bin",
      "sha256sum",
    ], { cwd });
    assertEquals(
      file.stdout.match(new RegExp(want, "g"))?.length,
      2,
      file.stdout,
    );
    // No stdin (a terminal, or /dev/null): the command reads EOF at once.
    const none = await fiwi(["run", "--no-log", "-w", "a", "wc -c"], { cwd });
    assertEquals(none.stdout, "a: 0\n");
  });
});

Deno.test("fiwi run: --output-dir keeps one file per node and stream", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, TWO_LOCAL);
    const r = await fiwi(
      [
        "run",
        "--no-log",
        "--output-dir",
        "o",
        "echo out; echo err >&2; printf tail",
      ],
      { cwd },
    );
    assertEquals([r.code, r.stdout], [0, ""], r.stderr);
    for (const n of ["a", "b"]) {
      assertEquals(
        await Deno.readTextFile(`${cwd}/o/${n}.stdout`),
        "out\ntail",
      );
      assertEquals(await Deno.readTextFile(`${cwd}/o/${n}.stderr`), "err\n");
    }
  });
});

Deno.test("fiwi run --json: a record per node as it finishes, then the summary", async () => {
  await inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, TWO_LOCAL);
    // The first node to take the lock ends at once; the other waits for the file.
    const cmd = `mkdir ${cwd}/lock 2>/dev/null && echo first || ` +
      `{ while [ ! -e ${cwd}/go ]; do sleep 0.05; done; echo second; }`;
    const p = startFiwi(["run", "--no-log", "--json", cmd], { cwd });
    await p.waitFor(/"stdout":"first\\n"/);
    assert(
      !p.stdout().includes(`"stdout":"second`),
      "second node still running",
    );
    await Deno.writeTextFile(`${cwd}/go`, "");
    const r = await p.done;
    assertEquals(r.code, 0, r.stderr);
    const records = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.map((x) => x.stdout ?? "summary"), [
      "first\n",
      "second\n",
      "summary",
    ]);
    assertEquals(records[2].summary.ok, 2);
    assertMatch(records[0].startedAt, new RegExp(`^${ISO}$`));
  });
});

/** `deno compile` needs the denort runtime (downloaded, or DENORT_BIN). */
function denortAvailable(): boolean {
  if (Deno.env.get("DENORT_BIN")) return true;
  const cache = Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME")}/.cache/deno`;
  try {
    return [...Deno.readDirSync(`${cache}/dl/release`)].length > 0;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "fiwi compiles to one binary that runs --help and a run on the built-in rig",
  ignore: !denortAvailable(),
  async fn() {
    await inTempDir(async (cwd) => {
      const task = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks
        .compile as string;
      const args = task.replace(/^deno compile /, "").split(" ")
        .map((a) => a === "bin/fiwi" ? `${cwd}/fiwi` : a);
      const built = await new Deno.Command(Deno.execPath(), {
        args: ["compile", "--config", `${ROOT}deno.json`, ...args],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(built.success, new TextDecoder().decode(built.stderr));
      const binary = { kind: "installed" as const, path: `${cwd}/fiwi` };
      const help = await fiwi(["--help"], { cwd, via: binary });
      assertMatch(help.stdout, /Usage: fiwi SUBCOMMAND/);
      const r = await fiwi(["run", "echo compiled"], { cwd, via: binary });
      assertEquals([r.code, r.stdout], [0, "local: compiled\n"], r.stderr);
    });
  },
});

Deno.test("fiwi consoles: new kernel messages only by default (dmesg -W), --cmd replaces the command, lines stamped ISO 8601 with offset", async () => {
  await inTempDir(async (cwd) => {
    // A dmesg that says how it was called, then waits like dmesg -W does.
    const [dmesgSleep, ownSleep] = [marker(), marker()];
    await Deno.mkdir(`${cwd}/bin`);
    await Deno.writeTextFile(
      `${cwd}/bin/dmesg`,
      `#!/bin/sh\necho "dmesg $*"\nexec sleep ${dmesgSleep}\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      "rigs:\n  here:\n    nodes:\n      me: { transport: local, console: true }\n",
    );
    const env = { PATH: `${cwd}/bin:${Deno.env.get("PATH")}` };
    const byDefault = await fiwi(
      ["consoles", "--no-log", "--duration", "1s"],
      { cwd, env },
    );
    assertEquals(byDefault.code, 0, byDefault.stderr);
    assertMatch(
      byDefault.stdout,
      new RegExp(`^${ISO} \\[me\\] dmesg -W$`, "m"),
    );
    const cmd = await fiwi(
      [
        "consoles",
        "--no-log",
        "-d",
        "1s",
        "--cmd",
        `echo own; exec sleep ${ownSleep}`,
      ],
      { cwd, env },
    );
    assertMatch(cmd.stdout, new RegExp(`^${ISO} \\[me\\] own$`, "m"));
    // The local transport's lifeline ends each console within its bound.
    for (const m of [dmesgSleep, ownSleep]) {
      assertEquals(
        await settlesToZero(() => countCarrying(m)),
        0,
        `console "sleep ${m}" left running`,
      );
    }
  });
});

Deno.test("fiwi: a rig's controlPersist reaches ssh in whole seconds", async () => {
  const { parseRig } = await import("../src/rig/rig.ts");
  const rig = parseRig(
    "rigs:\n  r:\n    nodes:\n      a: { host: 192.0.2.1, controlPersist: 90s }\n      b: 192.0.2.2\n",
  );
  const [a, b] = rig.select("all");
  assertMatch(a.argv("true").join(" "), / -o ControlPersist=90 /);
  assertMatch(b.argv("true").join(" "), / -o ControlPersist=300 /);
});

Deno.test("fiwi: the README's install line grants exactly the fiwi permission set the fiwi task and compile use", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  const flags = /^deno run (.+) scripts\/fiwi\.ts$/.exec(tasks.fiwi)![1];
  const v8 = flags.split(" ").filter((f) => f.startsWith("--v8-flags="));
  assertEquals(flags, ["-q", "-P=fiwi", ...v8].join(" "));
  // deno install drops -P from the command it writes: the line spells it out.
  assertEquals(installFlags(), [...permissionFlags("fiwi"), ...v8]);
  assertEquals(
    tasks.compile,
    `deno compile ${flags} --include scripts/ --output bin/fiwi scripts/fiwi.ts`,
  );
});

Deno.test("isoLocal() is ISO 8601 local time with its offset, and names the same instant", async () => {
  const { isoLocal } = await import("../scripts/_log_format.ts");
  for (const ms of [0, 1_700_000_000_123, Date.now()]) {
    const text = isoLocal(ms);
    assertMatch(text, new RegExp(`^${ISO}$`));
    assertEquals(Date.parse(text), ms);
  }
});

Deno.test("parseSize() reads bytes and K/M/G sizes and explains the rest", async () => {
  const { parseSize } = await import("../scripts/_log.ts");
  const cases: [string, number | RegExp][] = [
    ["1048576", 1048576],
    ["512K", 512 * 1024],
    ["50M", 50 * 1024 ** 2],
    ["1g", 1024 ** 3],
    ["2MiB", 2 * 1024 ** 2],
    ["10", /at least 1K/],
    ["-5M", /give bytes or a size/],
    ["lots", /give bytes or a size/],
  ];
  for (const [text, want] of cases) {
    const got = parseSize(text);
    if (typeof want === "number") assertEquals(got, want, text);
    else assertMatch(String(got), want, text);
  }
});

Deno.test("normalizeArgs() gives options their next word and flags never, up to the command", async () => {
  const { normalizeArgs } = await import("../scripts/_args.ts");
  const specs = [
    { name: "timeout", short: "t", arg: "D", help: "" },
    { name: "collate", short: "b", help: "" },
    { name: "no-prefix", short: "N", help: "" },
  ];
  const k = "\u00b7";
  const cases: [string[], string[]][] = [
    [["-t", "-5s", "ls"], [`--${k}timeout=-5s`, "ls"]],
    [["--collate", "true"], [`--${k}collate=true`, "true"]],
    [["--collate=no", "ls", "-b"], ["ls", "-b"]],
    [["-t5s", "--", "-b"], [`--${k}timeout=5s`, "--", "-b"]],
    [["--nope", "x"], ["--nope", "x"]],
    // Grouped letters, as getopt reads them.
    [["-bN", "ls"], [`--${k}collate=true`, `--${k}no-prefix=true`, "ls"]],
    [["-bt", "5s", "ls"], [`--${k}collate=true`, `--${k}timeout=5s`, "ls"]],
    [["-bt5s", "ls"], [`--${k}collate=true`, `--${k}timeout=5s`, "ls"]],
  ];
  for (const [args, want] of cases) {
    assertEquals(normalizeArgs(specs, args), want, args.join(" "));
  }
});

Deno.test("fiwi: times carry the local offset (TZ=Asia/Kolkata gives +05:30)", async () => {
  await inTempDir(async (cwd) => {
    const env = { TZ: "Asia/Kolkata" };
    const r = await fiwi(["run", "--log", "tz.log", "echo x"], { cwd, env });
    assertEquals(r.code, 0, r.stderr);
    const log = await Deno.readTextFile(`${cwd}/tz.log`);
    assertMatch(log, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30 INF /);
    const poll = await fiwi(["poll", "--no-log", "-n", "1", "true"], {
      cwd,
      env,
    });
    assertMatch(poll.stdout, /^--- tick 1 \S+\+05:30$/m);
  });
});
