// Transfers do not trust the node, nor other users (issue 18, "Trust"):
// a pull as root never hands out setuid programs, files of the node's
// uids or anything others may write; a push's temp files are private in
// transit; a pull's destDir/<node> cannot be redirected by another user's
// link; a push never writes through a link already on the node; byte
// counts say what was put in place. The node is this machine (loopback
// sshd, node user "fiwitest"); "nobody" plays the other user.
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  pullAll,
  pushAll,
  SshNode,
  type TransferResult,
} from "../mod.ts";
import { pulledMode } from "../src/transfer/_transfer_local.ts";
import {
  parseLanded,
  receiveScript,
} from "../src/transfer/_transfer_scripts.ts";
import { fiwiArgv } from "./_cli_harness.ts";
import {
  countLocal,
  countRemote,
  type LoopbackRig,
  skipHere,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { must } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

const decoder = new TextDecoder();

/** Why the integration cases cannot run here, or null. */
function whyNot(): string | null {
  if (Deno.uid() !== 0) {
    return "needs root: pulls as root, and a second local user";
  }
  try {
    Deno.statSync("/usr/bin/setpriv");
  } catch {
    return "needs /usr/bin/setpriv to act as another user";
  }
  return null;
}

const rootOnly = whyNot();
const ignore = skipHere("trust of transfers", "node-is-local") ||
  rootOnly !== null;
if (rootOnly !== null) {
  console.warn(`skipped: trust_transfer_test.ts: ${rootOnly}`);
}

/** uid and gid of "nobody", the other user on both ends. */
function nobody(): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name === "nobody") return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error("no user nobody in /etc/passwd");
}

/** setpriv's argv prefix that runs what follows as "nobody". */
function asNobody(): string[] {
  const { uid, gid } = nobody();
  return [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--"];
}

/** Run `args` as "nobody", synchronously (inside a progress callback). */
function nobodySync(...args: string[]): { code: number; stderr: string } {
  const out = new Deno.Command("setpriv", {
    args: [...asNobody(), ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  return { code: out.code, stderr: decoder.decode(out.stderr) };
}

const modeOf = (path: string) => (Deno.lstatSync(path).mode ?? 0) & 0o7777;

/** Every entry under `root` that is not a link: path, mode, uid, gid. */
async function modes(
  root: string,
): Promise<{ path: string; mode: number; uid: number; gid: number }[]> {
  const out: { path: string; mode: number; uid: number; gid: number }[] = [];
  const visit = async (path: string) => {
    const st = await Deno.lstat(path);
    if (st.isSymlink) return;
    out.push({
      path,
      mode: (st.mode ?? 0) & 0o7777,
      uid: st.uid!,
      gid: st.gid!,
    });
    if (st.isDirectory) {
      for await (const e of Deno.readDir(path)) {
        await visit(`${path}/${e.name}`);
      }
    }
  };
  await visit(root);
  return out;
}

function ok(r: TransferResult): void {
  assert(r.success, `${r.node}: ${r.error?.message ?? "aborted"}`);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function isEmpty(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}

Deno.test("pulledMode() drops setuid, setgid, sticky and write for others", () => {
  const cases: [number, "file" | "dir" | "other", number][] = [
    [0o4755, "file", 0o755],
    [0o2755, "file", 0o755],
    [0o6755, "file", 0o755],
    [0o1755, "file", 0o755],
    [0o0666, "file", 0o644],
    [0o0640, "file", 0o640],
    [0o0600, "file", 0o600],
    [0o0777, "dir", 0o755],
    [0o1777, "dir", 0o755],
    [0o2775, "dir", 0o755],
    [0o0750, "dir", 0o750],
    [0o0666, "other", 0o600],
  ];
  for (const [mode, kind, want] of cases) {
    assertEquals(
      pulledMode(mode, kind).toString(8),
      want.toString(8),
      `${mode.toString(8)} ${kind}`,
    );
  }
});

Deno.test("parseLanded() reads what a failed put step said, else zero", () => {
  assertEquals(parseLanded("fiwi-put 3 1024\n"), { files: 3, bytes: 1024 });
  assertEquals(parseLanded("noise\nfiwi-put 0 0\n"), { files: 0, bytes: 0 });
  assertEquals(parseLanded(""), { files: 0, bytes: 0 });
  assertEquals(parseLanded("fiwi-put x y\n"), { files: 0, bytes: 0 });
});

Deno.test("a push's receiver makes its temp directory 0700 under umask 077, the destination under the node's", () => {
  const script = receiveScript("/d", ".fiwi-tmp-1", "tar", null);
  const lines = script.split("\n");
  const made = lines.findIndex((l) => l.includes(`mkdir -m 700 -- "$t"`));
  assert(made >= 0, script);
  // The umask comes after the destination is made, before the temp dir.
  assertMatch(
    lines[made],
    /^mkdir -p -- "\$d" && umask 077 && mkdir -m 700 -- "\$t" \|\| exit 1$/,
  );
  const received = lines.findIndex((l) => l.startsWith("tar -x"));
  assert(received > made, script);
});

/** A remote scratch directory of this run, owned by the node user. */
async function scratch(rig: LoopbackRig): Promise<string> {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const base = `/tmp/fiwi_trust_${rig.port}_${rand}`;
  await Deno.mkdir(base, { mode: 0o755 });
  await must("chown", [`${rig.user}:`, base]);
  return base;
}

/** A root-owned 1777 directory directly under /tmp, standing in for it. */
async function fakeTmp(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "fiwi_trust_tmp_" });
  await Deno.chmod(path, 0o1777);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Modes of the node's files in the pull cases, under the scratch dir. */
const NODE_MODES: Record<string, number> = {
  "bin/suid-id": 0o4755,
  "bin/sgid-id": 0o2755,
  "bin/sticky": 0o1755,
  "bin/open": 0o666,
  "tree": 0o777,
  "tree/sub": 0o777,
  "tree/sub/both": 0o6755,
  "tree/sub/open": 0o666,
};

Deno.test({
  name:
    "pull as root: no setuid, setgid, sticky or write for others, and every file ours",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  const base = await scratch(rig);
  const local = await Deno.makeTempDir({ prefix: "fiwi_trust_" });
  const me = { uid: Deno.uid()!, gid: Deno.gid()! };
  try {
    await using node = rig.node({ silent: true });
    // The node's files, as its user left them: a setuid copy of id, a
    // setgid one, a sticky one, one anybody may write; a 0777 tree.
    const bin = `${base}/bin`;
    await Deno.mkdir(bin);
    for (const name of ["suid-id", "sgid-id", "sticky", "open"]) {
      await Deno.copyFile("/usr/bin/id", `${bin}/${name}`);
    }
    const tree = `${base}/tree`;
    await Deno.mkdir(`${tree}/sub`, { recursive: true });
    for (const name of ["both", "open"]) {
      await Deno.copyFile("/usr/bin/id", `${tree}/sub/${name}`);
    }
    await Deno.symlink("sub/both", `${tree}/link`);
    // chown drops setuid and setgid: the modes come after it.
    await must("chown", ["-R", "-h", `${rig.user}:`, bin, tree]);
    for (const [path, mode] of Object.entries(NODE_MODES)) {
      await Deno.chmod(`${base}/${path}`, mode);
    }
    assertEquals(modeOf(`${bin}/suid-id`), 0o4755, "fixture keeps setuid");

    await t.step(
      "a single setuid or setgid file lands 0755, ours",
      async () => {
        const want: Record<string, number> = {
          "suid-id": 0o755,
          "sgid-id": 0o755,
          sticky: 0o755,
          open: 0o644,
        };
        for (const [name, mode] of Object.entries(want)) {
          const r = await node.pull(`${bin}/${name}`, `${local}/one`);
          ok(r);
          const got = `${local}/one/${node.name}/${name}`;
          const st = await Deno.lstat(got);
          assertEquals(
            [name, ((st.mode ?? 0) & 0o7777).toString(8), st.uid, st.gid],
            [name, mode.toString(8), me.uid, me.gid],
          );
        }
        // Still the program it was, only without the bits.
        const id = await must(`${local}/one/${node.name}/suid-id`, ["-u"]);
        assertEquals(id.trim(), "0");
      },
    );

    for (
      const [what, sources] of [
        ["one directory (an archive in a file)", [tree]],
        ["with another path (the streamed archive)", [tree, bin]],
      ] as const
    ) {
      await t.step(
        `a directory pull, ${what}: 6755 files and 0777 dirs land safe`,
        async () => {
          const dest = `${local}/dir-${sources.length}`;
          ok(await node.pull([...sources], dest));
          for (const e of await modes(`${dest}/${node.name}`)) {
            assertEquals(e.mode & 0o7022, 0, `${e.path} ${e.mode.toString(8)}`);
            assertEquals([e.uid, e.gid], [me.uid, me.gid], e.path);
          }
          const got = await modes(`${dest}/${node.name}/tree`);
          assertEquals(got.length, 4, JSON.stringify(got));
          for (const e of got) {
            assertEquals(e.mode & 0o7022, 0, `${e.path} ${e.mode.toString(8)}`);
            assertEquals([e.uid, e.gid], [me.uid, me.gid], e.path);
          }
          const byName = Object.fromEntries(
            got.map((e) => [e.path.slice(dest.length), e.mode.toString(8)]),
          );
          assertEquals(byName, {
            [`/${node.name}/tree`]: "755",
            [`/${node.name}/tree/sub`]: "755",
            [`/${node.name}/tree/sub/both`]: "755",
            [`/${node.name}/tree/sub/open`]: "644",
          });
          assertEquals(
            await Deno.readLink(`${dest}/${node.name}/tree/link`),
            "sub/both",
          );
        },
      );
    }

    await t.step("nothing of this run is left running", async () => {
      assertEquals(await settlesToZero(() => countRemote(rig, base), 3000), 0);
      assertEquals(await countLocal(base), 0);
    });
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});

/** What a look at a push half-way saw. */
interface HalfWay {
  temps: string[];
  dirMode: number;
  fileMode: number;
  arrived: number;
  nobody: { code: number; stderr: string };
}

Deno.test({
  name:
    "a push's temp directory and file are unreadable by other node users mid-push",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  const base = await scratch(rig);
  const local = await Deno.makeTempDir({ prefix: "fiwi_trust_" });
  const size = 64 * 1024 * 1024;
  try {
    await using node = rig.node({ silent: true });
    const src = `${local}/big.bin`;
    await Deno.writeFile(src, new Uint8Array(size).fill(1));
    await Deno.chmod(src, 0o644);
    const dest = `${base}/push`;
    // Looked at once, half-way: the callback blocks this program, so the
    // push waits while "nobody" tries to read what already arrived.
    const look: { seen: HalfWay | null } = { seen: null };
    const r = await node.push(src, dest, {
      onProgress: (bytes) => {
        if (look.seen || bytes < size / 2) return;
        const temps = [...Deno.readDirSync(dest)]
          .map((e) => e.name).filter((n) => n.startsWith(".fiwi-tmp-"));
        const t = `${dest}/${temps[0]}`;
        const file = `${t}/big.bin`;
        look.seen = {
          temps,
          dirMode: modeOf(t),
          fileMode: modeOf(file),
          arrived: Deno.lstatSync(file).size,
          nobody: nobodySync(
            "sh",
            "-c",
            'ls -- "$1" && head -c 1 -- "$1/big.bin"',
            "sh",
            t,
          ),
        };
      },
    });
    ok(r);
    const s = look.seen;
    if (!s) throw new Error("the push was never looked at half-way");
    assertEquals(s.temps.length, 1, JSON.stringify(s.temps));
    assert(s.arrived > 0, "nothing had arrived half-way");
    assertEquals(
      [s.dirMode.toString(8), s.fileMode.toString(8)],
      ["700", "600"],
    );
    assert(s.nobody.code !== 0, "nobody read the temp directory");
    assertMatch(s.nobody.stderr, /Permission denied/);
    // In place it has its own mode, and the same user can read it: the
    // look above could have seen it.
    assertEquals(modeOf(`${dest}/big.bin`), 0o644);
    assertEquals(nobodySync("head", "-c", "1", `${dest}/big.bin`).code, 0);
    // The destination the push created has the node's usual mode, not
    // the temp directory's.
    assertEquals(modeOf(dest) & 0o700, 0o700);
    assert(modeOf(dest) !== 0o700, modeOf(dest).toString(8));
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "a pull refuses a destDir/<node> another user could redirect, and writes nothing through it",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  const base = await scratch(rig);
  await using tmp = await fakeTmp();
  const victim = await Deno.makeTempDir({ prefix: "fiwi_trust_victim_" });
  try {
    await Deno.writeTextFile(`${base}/log`, "node log\n");
    await must("chown", [`${rig.user}:`, `${base}/log`]);
    await using node = rig.node({ name: "n0", silent: true });
    await using other = rig.node({ name: "n1", silent: true });
    const shared = tmp.path;
    // Another user plants a link where root's pull will write.
    await must("setpriv", [...asNobody(), "ln", "-s", victim, `${shared}/n0`]);
    assertEquals((await Deno.lstat(`${shared}/n0`)).uid, nobody().uid);

    await t.step("pull() rejects naming the path and its owner", async () => {
      const e = await assertRejects(
        () => node.pull(`${base}/log`, shared),
        ConfigurationError,
      );
      assertMatch(e.message, new RegExp(`"${shared}/n0"`));
      assertMatch(e.message, /symbolic link/);
      assertMatch(e.message, /user "nobody"/);
      assert(await isEmpty(victim), "something was written through the link");
    });

    await t.step("pullAll() rejects before any node runs", async () => {
      const seen: string[] = [];
      await assertRejects(
        () =>
          pullAll([other, node], `${base}/log`, shared, {
            onResult: (r) => seen.push(r.node),
          }),
        ConfigurationError,
        `"${shared}/n0"`,
      );
      assertEquals(seen, []);
      assert(await isEmpty(victim));
      // Refused before the other node's directory was even made.
      assertEquals(await exists(`${shared}/n1`), false);
    });

    await t.step(
      "a directory another user made there is refused too",
      async () => {
        await must("setpriv", [
          ...asNobody(),
          "mkdir",
          "-m",
          "755",
          `${shared}/n1`,
        ]);
        await assertRejects(
          () => other.pull(`${base}/log`, shared),
          ConfigurationError,
          `belongs to user "nobody"`,
        );
        await Deno.remove(`${shared}/n1`);
      },
    );

    await t.step(
      "where nobody planted anything, the same pull works",
      async () => {
        ok(await other.pull(`${base}/log`, shared));
        const st = await Deno.lstat(`${shared}/n1`);
        assert(st.isDirectory && !st.isSymlink);
        assertEquals(st.uid, Deno.uid());
        assertEquals(await Deno.readTextFile(`${shared}/n1/log`), "node log\n");
      },
    );
  } finally {
    await Deno.remove(victim, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});

/** A fake `ush` whose node has an `mv` without `-T` first on its PATH. */
async function ushWithoutMvT(dir: string): Promise<string> {
  await Deno.mkdir(`${dir}/oldbin`);
  await Deno.writeTextFile(
    `${dir}/oldbin/mv`,
    '#!/bin/sh\nfor a; do [ "$a" = -T ] && { echo "mv: invalid option -- T" >&2; exit 1; }; done\nexec /bin/mv "$@"\n',
    { mode: 0o755 },
  );
  const ush = `${dir}/ush`;
  await Deno.writeTextFile(
    ush,
    `#!/bin/sh\nshift; PATH=${dir}/oldbin:$PATH exec sh -c "$1"\n`,
    { mode: 0o755 },
  );
  return ush;
}

Deno.test({
  name: "a push never writes through a symbolic link already on the node",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  const base = await scratch(rig);
  const local = await Deno.makeTempDir({ prefix: "fiwi_trust_" });
  try {
    await Deno.mkdir(`${local}/src/sub`, { recursive: true });
    await Deno.writeTextFile(`${local}/src/sub/inside.txt`, "pushed\n");
    await Deno.mkdir(`${local}/src/real/inner`, { recursive: true });
    await Deno.writeTextFile(`${local}/src/real/inner/x`, "x\n");
    await Deno.writeTextFile(`${local}/src/fw.bin`, "firmware\n");
    const ush = await ushWithoutMvT(local);
    const nodes: [string, () => SshNode][] = [
      ["ssh", () => rig.node({ silent: true })],
      ["a node whose mv lacks -T", () =>
        new SshNode({
          name: "old",
          host: "10.9.9.9",
          transport: "ush",
          ushPath: ush,
          silent: true,
        })],
    ];
    for (const [what, make] of nodes) {
      await t.step(`over ${what}`, async () => {
        await using node = make();
        const dest = `${base}/${node.name}/dest`;
        const victim = `${base}/${node.name}/victim`;
        const sh = what === "ssh"
          ? (cmd: string) => rig.sh(cmd)
          : (cmd: string) =>
            new Deno.Command("sh", { args: ["-c", cmd] }).output().then((
              o,
            ) => ({
              code: o.code,
              stdout: decoder.decode(o.stdout),
              stderr: decoder.decode(o.stderr),
            }));
        const made = await sh(
          `mkdir -p '${dest}/real' '${victim}/a' '${victim}/b' '${victim}/c' && ` +
            `ln -s '${victim}/a' '${dest}/sub' && ln -s '${victim}/b' '${dest}/fw.bin' && ` +
            `ln -s '${victim}/c' '${dest}/real/inner'`,
        );
        assertEquals(made.code, 0, made.stderr);

        const dir = await node.push(`${local}/src/sub`, dest);
        assertEquals(dir.success, false);
        assertMatch(dir.error!.message, /symbolic link is in the way/);
        assertMatch(dir.error!.message, new RegExp(`${dest}/sub`));
        assert((await Deno.lstat(`${dest}/sub`)).isSymlink);

        const nested = await node.push(`${local}/src/real`, dest);
        assertEquals(nested.success, false);
        assertMatch(nested.error!.message, new RegExp(`${dest}/real/inner`));

        // A file replaces the link itself; the directory it pointed to
        // gets nothing.
        ok(await node.push(`${local}/src/fw.bin`, dest));
        const fw = await Deno.lstat(`${dest}/fw.bin`);
        assert(fw.isFile && !fw.isSymlink);
        assertEquals(await Deno.readTextFile(`${dest}/fw.bin`), "firmware\n");

        for (const v of ["a", "b", "c"]) {
          assert(await isEmpty(`${victim}/${v}`), `${v} was written into`);
        }
        const temps = [...Deno.readDirSync(dest)].filter((e) =>
          e.name.startsWith(".fiwi-tmp-")
        );
        assertEquals(temps, []);
      });
    }
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "byte counts of failed transfers say what landed, in results and in fiwi's output",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  const base = await scratch(rig);
  const local = await Deno.makeTempDir({ prefix: "fiwi_trust_" });
  const fwSize = 3 * 1000 * 1000;
  try {
    await using node = rig.node({ silent: true });
    await Deno.writeFile(`${local}/fw.bin`, new Uint8Array(fwSize).fill(9));
    await Deno.mkdir(`${local}/sub`);
    await Deno.writeTextFile(`${local}/sub/x`, "x\n");
    const dest = `${base}/dest`;
    const made = await rig.sh(
      `mkdir -p '${dest}/fw.bin' '${base}/elsewhere' && ln -s '${base}/elsewhere' '${dest}/sub'`,
    );
    assertEquals(made.code, 0, made.stderr);

    await t.step("a pull of a missing path reports 0 bytes", async () => {
      let progress = 0;
      const r = await node.pull(`${base}/absent`, `${local}/got`, {
        onProgress: (b) => progress = b,
      });
      assertEquals([r.success, r.files, r.bytes], [false, 0, 0]);
      // The node did send an (empty) archive: it was thrown away.
      assert(progress > 0, `progress ${progress}`);
    });

    await t.step("a push whose file never landed reports 0 bytes", async () => {
      // A directory is in the way of the file: all 3 MB were sent.
      let sent = 0;
      const r = await node.push(`${local}/fw.bin`, dest, {
        onProgress: (b) => sent = b,
      });
      assertEquals(sent, fwSize);
      assertEquals([r.success, r.files, r.bytes], [false, 0, 0]);
    });

    await t.step(
      "a push that failed half-way reports what it put in place",
      async () => {
        await Deno.remove(`${dest}/fw.bin`);
        const r = await node.push([`${local}/fw.bin`, `${local}/sub`], dest);
        assertEquals(r.success, false);
        assertMatch(r.error!.message, /symbolic link/);
        assertEquals([r.files, r.bytes], [1, fwSize]);
        assertEquals((await Deno.stat(`${dest}/fw.bin`)).size, fwSize);
      },
    );

    await t.step(
      "pushAll's progress ends at what the results count",
      async () => {
        await using two = rig.node({ index: 1, name: "two", silent: true });
        let progress = 0;
        const rs = await pushAll(
          [node, two],
          [`${local}/fw.bin`, `${local}/sub`],
          dest,
          {
            onProgress: (b) => progress = b,
          },
        );
        assertEquals(rs.map((r) => r.success), [false, false]);
        assertEquals(rs.map((r) => r.bytes), [fwSize, fwSize]);
        assertEquals(progress, 2 * fwSize);
      },
    );

    await t.step(
      "fiwi pull and fiwi push print 0 B for what failed",
      async () => {
        const work = `${local}/cli`;
        await Deno.mkdir(work);
        await Deno.writeTextFile(
          `${work}/rigs.yaml`,
          `default: loop\ndefaults:\n  user: ${rig.user}\n  port: ${rig.port}\n` +
            `  sshConfig: ${rig.sshConfig}\nrigs:\n  loop:\n    nodes:\n` +
            `      n1: ${rig.hosts[0]}\n      n2: ${rig.hosts[1]}\n`,
        );
        await Deno.mkdir(`${dest}/blocked/fw.bin`, { recursive: true });
        await must("chown", ["-R", `${rig.user}:`, `${dest}/blocked`]);
        const cli = async (args: string[]) => {
          const [cmd, ...rest] = fiwiArgv({ kind: "run" }, [
            args[0],
            "--no-log",
            ...args.slice(1),
          ]);
          const out = await within(
            60_000,
            new Deno.Command(cmd, {
              args: rest,
              cwd: work,
              env: { FIWI_CONTROL_DIR: `${work}/cm` },
              stdin: "null",
              stdout: "piped",
              stderr: "piped",
            }).output(),
            `fiwi ${args[0]} to end`,
          );
          return {
            code: out.code,
            stdout: decoder.decode(out.stdout),
            stderr: decoder.decode(out.stderr),
          };
        };
        try {
          const pulled = await cli(["pull", `${base}/absent`, "out"]);
          assertEquals(pulled.code, 1, pulled.stderr);
          assertMatch(pulled.stderr, /0\/2 nodes ok, 0 B in /);
          const pushed = await cli([
            "push",
            "--json",
            `${local}/fw.bin`,
            `${dest}/blocked`,
          ]);
          assertEquals(pushed.code, 1, pushed.stderr);
          const records = pushed.stdout.trim().split("\n").map((l) =>
            JSON.parse(l)
          );
          assertEquals(records.slice(0, 2).map((r) => r.bytes), [0, 0]);
          assertEquals(records[2].summary.bytes, 0);
        } finally {
          await cli(["close"]);
        }
      },
    );

    await t.step("nothing of this run is left running", async () => {
      assertEquals(await settlesToZero(() => countRemote(rig, base), 3000), 0);
      assertEquals(await countLocal(base), 0);
    });
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});
