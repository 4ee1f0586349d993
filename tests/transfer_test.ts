// push/pull and pushAll/pullAll on the loopback sshd (the node is this
// machine, so what arrived is checked with Deno's own file calls): trees
// with modes, mtimes, links and awkward names, every transport, verify,
// abort and timeout (nothing under a final name, nothing left running),
// shell injection through paths, concurrent pushes to one shared path,
// bad input, permission and full-disk errors. The remote scripts' pure
// builders get table tests.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  FiwiError,
  pullAll,
  pushAll,
  SshNode,
  TimeoutError,
  type TransferResult,
} from "../mod.ts";
import {
  batches,
  finishScript,
  MAX_SCRIPT_BYTES,
  parseHashes,
  pullCommand,
  pullOneCommand,
  receiveScript,
} from "../src/transfer/_transfer_scripts.ts";
import { remoteGroups } from "../src/transfer/transfer.ts";
import {
  countLocal,
  countRemote,
  type LoopbackRig,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";

/** Names a transfer must carry unchanged. */
const AWKWARD = [
  "with space",
  "it's",
  'dq"uote',
  "new\nline",
  "-lead",
  "$(touch nope)",
  "star*",
];

interface Entry {
  kind: "file" | "dir" | "link";
  mode: number;
  mtime: number;
  content: string;
}

/** Everything under `root`: kind, mode, mtime in s, content or link target. */
async function snapshot(root: string): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  const visit = async (path: string, rel: string) => {
    const info = await Deno.lstat(path);
    const kind = info.isSymlink ? "link" : info.isDirectory ? "dir" : "file";
    out[rel] = {
      kind,
      mode: kind === "link" ? 0 : info.mode! & 0o7777,
      mtime: kind === "link" ? 0 : Math.floor(info.mtime!.getTime() / 1000),
      content: kind === "link"
        ? await Deno.readLink(path)
        : kind === "file"
        ? await Deno.readTextFile(path)
        : "",
    };
    if (kind === "dir") {
      for await (const e of Deno.readDir(path)) {
        await visit(`${path}/${e.name}`, `${rel}/${e.name}`);
      }
    }
  };
  await visit(root, ".");
  return out;
}

/** A tree with awkward names, odd modes, old mtimes and links. */
async function makeTree(root: string): Promise<void> {
  const old = new Date("2001-02-03T04:05:06Z");
  await Deno.mkdir(`${root}/sub/deeper`, { recursive: true });
  for (const [i, name] of AWKWARD.entries()) {
    const path = `${root}/sub/${name}`;
    await Deno.writeTextFile(path, `content ${i}\n`);
    await Deno.chmod(path, 0o600 + i);
    await Deno.utime(path, old, new Date(old.getTime() + i * 1000));
  }
  await Deno.writeTextFile(`${root}/sub/deeper/tool`, "#!/bin/sh\n");
  await Deno.chmod(`${root}/sub/deeper/tool`, 0o755);
  await Deno.symlink("../with space", `${root}/sub/deeper/link`);
  await Deno.symlink("/nonexistent/target", `${root}/sub/dangling`);
  await Deno.chmod(`${root}/sub/deeper`, 0o750);
  await Deno.utime(`${root}/sub/deeper`, old, old);
  await Deno.utime(`${root}/sub`, old, old);
}

/** Poll `check` until it holds, for at most `ms`; returns the last answer. */
async function eventually(
  check: () => Promise<boolean>,
  ms = 3000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Names of hidden temp directories left in `dir`. */
async function tempDirsIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(".fiwi-tmp-")) names.push(e.name);
    }
  } catch { /* dir gone */ }
  return names;
}

function ok(r: TransferResult): void {
  assert(r.success, `${r.node}: ${r.error?.message ?? "aborted"}`);
  assertEquals([r.timedOut, r.aborted, r.error], [null, false, null]);
}

/** A remote scratch directory of this rig (the node user can create it). */
function scratch(rig: LoopbackRig, what: string): string {
  return `/tmp/fiwi_xfer_${rig.port}/${what}`;
}

Deno.test("push scripts quote every path and name, whatever it holds", () => {
  const names = ["-lead", "new\nline"];
  const dest = "/d/'; touch /tmp/x; '";
  for (
    const script of [
      receiveScript(dest, ".fiwi-tmp-1", "tar", names),
      finishScript(dest, ".fiwi-tmp-1", names, [{ path: "a'b", sha256: "0" }]),
    ]
  ) {
    assert(script.includes(`d='/d/'\\''; touch /tmp/x; '\\'''`));
    assert(script.includes(`for n in -lead 'new\nline'; do`));
  }
  // Temp directories of pushes killed mid-way are cleared after a day.
  const receive = receiveScript(dest, ".fiwi-tmp-1", "tar", null);
  assert(receive.includes(`-name '.fiwi-tmp-*' -mmin +1440`));
  // Without names it keeps its temp directory for the finishing run.
  assert(receive.endsWith("\ntrap - EXIT"));
  assert(
    pullOneCommand("/d", "'; touch x; '").startsWith(
      `p='/d/'\\''; touch x; '\\'''; if [ -f "$p" ]`,
    ),
  );
  assertMatch(
    pullCommand("/var/log", ["-x", "a b"]),
    /^tar -c -f - -C \/var\/log \.\/-x '\.\/a b'$/,
  );
});

Deno.test("remoteGroups() splits paths by directory and refuses nameless ones", () => {
  assertEquals(remoteGroups(["/var/log/a", "/var/log/b/", "rel", "/top"]), [
    { parent: "/var/log", names: ["a", "b"] },
    { parent: ".", names: ["rel"] },
    { parent: "/", names: ["top"] },
  ]);
  for (const bad of ["/", "/x/..", "a/."]) {
    try {
      remoteGroups([bad]);
      throw new Error(`accepted ${JSON.stringify(bad)}`);
    } catch (e) {
      assertInstanceOf(e, ConfigurationError);
    }
  }
  try {
    remoteGroups(["/a/x", "/b/x"]);
    throw new Error("accepted two sources named x");
  } catch (e) {
    assertInstanceOf(e, ConfigurationError);
    assertMatch((e as Error).message, /Two sources are named "x"/);
  }
});

Deno.test("parseHashes() and batches() keep order and bound the script size", () => {
  const h = "a".repeat(64);
  assertEquals(parseHashes(`${h}  -\n-\n${h}  -\n`), [h, null, h]);
  const many = Array.from(
    { length: 5000 },
    (_, i) => `dir/file-${i}-${"x".repeat(40)}`,
  );
  const parts = batches(many);
  assert(parts.length > 1);
  assertEquals(parts.flat(), many);
  for (const p of parts) assert(p.join(" ").length <= MAX_SCRIPT_BYTES);
});

Deno.test({
  name: "push and pull over ssh keep trees, modes, mtimes, links and names",
  ignore: skipHere("transfers over ssh", "node-is-local"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const local = await Deno.makeTempDir({ prefix: "fiwi_xfer_" });
  const base = scratch(rig, "tree");
  try {
    await makeTree(`${local}/src`);
    await Deno.writeTextFile(`${local}/src/one file`, "single\n");
    await using node = rig.node({ silent: true });
    const expected = await snapshot(`${local}/src/sub`);

    await t.step("push copies a directory recursively, as it is", async () => {
      const seen: number[] = [];
      const r = await node.push(
        [`${local}/src/sub`, `${local}/src/one file`],
        base,
        { verify: true, onProgress: (b) => seen.push(b) },
      );
      ok(r);
      assertEquals(r.files, AWKWARD.length + 4);
      assert(r.bytes > 0 && seen.at(-1) === r.bytes, `${seen} vs ${r.bytes}`);
      assertEquals(await snapshot(`${base}/sub`), expected);
      assertEquals(await Deno.readTextFile(`${base}/one file`), "single\n");
      assertEquals(await tempDirsIn(base), []);
    });

    await t.step("push again merges into what is there", async () => {
      await Deno.writeTextFile(`${local}/src/sub/new\nline`, "changed\n");
      const r = await node.push(`${local}/src/sub`, base);
      ok(r);
      assertEquals(
        await Deno.readTextFile(`${base}/sub/new\nline`),
        "changed\n",
      );
      assertEquals(
        (await Deno.lstat(`${base}/sub/deeper/link`)).isSymlink,
        true,
      );
    });

    await t.step("pull brings them back under destDir/<node>/", async () => {
      const seen: number[] = [];
      const r = await node.pull(
        [`${base}/sub`, `${base}/one file`],
        `${local}/got`,
        {
          verify: true,
          onProgress: (b) => seen.push(b),
        },
      );
      ok(r);
      assertEquals(r.files, AWKWARD.length + 4);
      assertEquals(seen.at(-1), r.bytes);
      // A pull drops setuid/setgid/sticky and group/world write bits
      // (tests/trust_transfer_test.ts); every other bit is kept.
      const now = Object.fromEntries(
        Object.entries(await snapshot(`${local}/src/sub`)).map((
          [k, e],
        ) => [k, { ...e, mode: e.mode & 0o755 }]),
      );
      assertEquals(await snapshot(`${local}/got/${node.name}/sub`), now);
      assertEquals(
        await Deno.readTextFile(`${local}/got/${node.name}/one file`),
        "single\n",
      );
      assertEquals(await tempDirsIn(`${local}/got/${node.name}`), []);
    });

    await t.step(
      "a pull clears the temp files a killed pull left over a day ago",
      async () => {
        const dir = `${local}/got/${node.name}`;
        const old = new Date(Date.now() - 25 * 3600_000);
        await Deno.mkdir(`${dir}/.fiwi-tmp-0000000000000001`);
        await Deno.writeTextFile(`${dir}/.fiwi-tmp-0000000000000001.part`, "x");
        await Deno.mkdir(`${dir}/.fiwi-tmp-0000000000000002`);
        for (const stale of ["1", "1.part"]) {
          await Deno.utime(
            `${dir}/.fiwi-tmp-000000000000000${stale}`,
            old,
            old,
          );
        }
        ok(await node.pull(`${base}/one file`, `${local}/got`));
        // A fresh one may belong to a pull still running.
        assertEquals(await tempDirsIn(dir), [".fiwi-tmp-0000000000000002"]);
        await Deno.remove(`${dir}/.fiwi-tmp-0000000000000002`);
      },
    );

    await t.step(
      "a missing remote source fails naming node and path",
      async () => {
        const r = await node.pull(`${base}/absent`, `${local}/got2`);
        assertEquals(r.success, false);
        assertInstanceOf(r.error, FiwiError);
        assertMatch(r.error!.message, new RegExp(`node "${node.name}"`));
        assertMatch(r.error!.message, /absent/);
        assertEquals(await exists(`${local}/got2/${node.name}/absent`), false);
      },
    );

    await t.step(
      "a missing local source is refused before anything runs",
      async () => {
        const dest = scratch(rig, "never");
        await assertRejects(
          () => node.push([`${local}/src/one file`, `${local}/nope`], dest),
          ConfigurationError,
          `"${local}/nope"`,
        );
        assertEquals(await exists(dest), false);
      },
    );

    await t.step(
      "a path holding shell code is copied to that name, never run",
      async () => {
        const marker = `/tmp/fiwi_inject_${rig.port}`;
        const evil = `'; touch ${marker}; '`;
        // Pushed under that name (a directory, then the file in it) ...
        await Deno.mkdir(`${local}/evil/'; touch /tmp`, { recursive: true });
        const file = `${local}/evil/'; touch /tmp/fiwi_inject_${rig.port}; '`;
        await Deno.writeTextFile(file, "inert\n");
        const dest = `${base}/push-${evil}`;
        ok(await node.push(file, dest));
        assertEquals(
          await Deno.readTextFile(`${dest}/${evil.split("/").at(-1)}`),
          "inert\n",
        );
        // ... and pulled back from it.
        const remote = `${base}/'; touch /tmp/fiwi_inject_${rig.port}; '`;
        await Deno.mkdir(`${base}/'; touch /tmp`, { recursive: true });
        await Deno.copyFile(file, remote);
        await Deno.chmod(`${base}/'; touch /tmp`, 0o777);
        const r = await node.pull(remote, `${local}/evil-got`);
        ok(r);
        const name = `fiwi_inject_${rig.port}; '`;
        assertEquals(
          await Deno.readTextFile(`${local}/evil-got/${node.name}/${name}`),
          "inert\n",
        );
        assertEquals(await exists(marker), false);
        assertEquals(await exists(`/var/lib/${rig.user}/nope`), false);
        assertEquals(await exists("nope"), false);
      },
    );

    await t.step(
      "a destination named like an option is a directory",
      async () => {
        const dest = `-fiwi-dash-${rig.port}`;
        const home = `/var/lib/${rig.user}`;
        try {
          ok(await node.push(`${local}/src/one file`, dest));
          ok(await node.push(`${local}/src/sub`, dest));
          assertEquals(
            await Deno.readTextFile(`${home}/${dest}/one file`),
            "single\n",
          );
          assert(await exists(`${home}/${dest}/sub/deeper/tool`));
        } finally {
          await Deno.remove(`${home}/${dest}`, { recursive: true }).catch(
            () => {},
          );
        }
      },
    );

    await t.step("nothing is left running on either side", async () => {
      // Only this test's own: a benchmark may be copying meanwhile.
      assertEquals(await countRemote(rig, `-C ${base}`), 0);
      assertEquals(await countLocal(`-C ${local}`), 0);
    });
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(scratch(rig, ""), { recursive: true }).catch(() => {});
  }
});

/** Push a file and pull it back through `node`; both must succeed. */
async function roundTrip(node: SshNode, local: string, remote: string) {
  const src = `${local}/payload-${node.name}`;
  await Deno.writeTextFile(src, `through ${node.name}\n`);
  await Deno.chmod(src, 0o640);
  const old = new Date("2003-04-05T06:07:08Z");
  await Deno.utime(src, old, old);
  ok(await node.push(src, remote, { verify: true }));
  const back = await node.pull(
    `${remote}/payload-${node.name}`,
    `${local}/back`,
    {
      verify: true,
    },
  );
  ok(back);
  const got = `${local}/back/${node.name}/payload-${node.name}`;
  assertEquals(await Deno.readTextFile(got), `through ${node.name}\n`);
  assertEquals((await Deno.stat(got)).mode! & 0o777, 0o640);
  assertEquals((await Deno.stat(got)).mtime, (await Deno.stat(src)).mtime);
}

Deno.test({
  name:
    "transfers work over every transport: master, no master, relays, ush, local",
  ignore: skipHere("transfers over every transport", "node-is-local", "relay"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const local = await Deno.makeTempDir({ prefix: "fiwi_xfer_" });
  const remote = scratch(rig, "transports");
  const relay = `${rig.user}@${rig.hosts[0]}:${rig.port}`;
  const ush = `${rig.dir}/ush`;
  await Deno.writeTextFile(
    ush,
    '#!/bin/sh\nhost="$1"; shift; exec sh -c "$1"\n',
    {
      mode: 0o755,
    },
  );
  const cases: [string, () => SshNode][] = [
    [
      "ssh without a master",
      () => rig.node({ name: "plain", controlMaster: false, silent: true }),
    ],
    [
      "a nested relay",
      () => rig.node({ index: 1, name: "nested", relay, silent: true }),
    ],
    [
      "a jump relay",
      () =>
        rig.node({
          index: 1,
          name: "jump",
          relay,
          relayMode: "jump",
          silent: true,
        }),
    ],
    [
      "ush",
      () =>
        new SshNode({
          name: "ush",
          host: "10.9.9.9",
          transport: "ush",
          ushPath: ush,
          silent: true,
        }),
    ],
    [
      "local",
      () =>
        new SshNode({
          name: "local",
          host: "localhost",
          transport: "local",
          silent: true,
        }),
    ],
  ];
  try {
    for (const [what, make] of cases) {
      if (what.includes("relay") && !rig.relayReady) continue;
      await t.step(`push and pull through ${what}`, async () => {
        await using node = make();
        await roundTrip(node, local, remote);
      });
    }
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(scratch(rig, ""), { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "an aborted or timed-out transfer leaves no file under its final name and nothing running",
  ignore: skipHere("aborted transfers", "node-is-local"),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const local = await Deno.makeTempDir({ prefix: "fiwi_xfer_" });
  const remote = scratch(rig, "abort");
  const big = `${local}/big.bin`;
  await Deno.writeFile(big, new Uint8Array(48 * 1024 * 1024).fill(7));
  await using node = rig.node({ silent: true });
  try {
    await t.step("push aborted mid-stream", async () => {
      const controller = new AbortController();
      const r = await node.push(big, remote, {
        signal: controller.signal,
        onProgress: (b) => b > 4 * 1024 * 1024 && controller.abort(),
      });
      assertEquals([r.success, r.aborted], [false, true]);
      assert(r.bytes < 48 * 1024 * 1024, `sent ${r.bytes}`);
      assertEquals(await exists(`${remote}/big.bin`), false);
      assert(
        await eventually(async () => (await countRemote(rig, remote)) === 0),
        "remote receiver left running",
      );
      assert(
        await eventually(async () => (await tempDirsIn(remote)).length === 0),
        "temp directory left",
      );
    });

    await t.step("pull aborted mid-stream", async () => {
      ok(await node.push(big, remote));
      // Large enough to be mid-stream at the first look at its size (a
      // pulled file's growth is looked at every 200 ms); sparse, so quick
      // to make. The node is this machine.
      const huge = `${remote}/huge.bin`;
      await using file = await Deno.create(huge);
      await file.truncate(2 * 1024 ** 3);
      const controller = new AbortController();
      const r = await node.pull(huge, `${local}/got`, {
        signal: controller.signal,
        onProgress: (b) => b > 4 * 1024 * 1024 && controller.abort(),
      });
      assertEquals([r.success, r.aborted], [false, true]);
      assert(r.bytes < 2 * 1024 ** 3, `got ${r.bytes}`);
      assertEquals(await exists(`${local}/got/${node.name}/huge.bin`), false);
      assertEquals(await tempDirsIn(`${local}/got/${node.name}`), []);
      assert(
        await eventually(async () => (await countRemote(rig, huge)) === 0),
        "remote reader left running",
      );
      assertEquals(await countLocal(huge), 0, "ssh client left running");
      await Deno.remove(huge);
    });

    await t.step("push stopped by its command timeout", async () => {
      await Deno.remove(`${remote}/big.bin`);
      const r = await node.push(big, remote, { cmdTimeout: 1 });
      assertEquals([r.success, r.timedOut], [false, "command"]);
      assertInstanceOf(r.error, TimeoutError);
      assertEquals(await exists(`${remote}/big.bin`), false);
      assert(
        await eventually(async () => (await countRemote(rig, remote)) === 0),
        "remote receiver left running",
      );
      assert(
        await eventually(async () => (await tempDirsIn(remote)).length === 0),
        "temp directory left",
      );
    });
  } finally {
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(scratch(rig, ""), { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "pushAll and pullAll: node order, a shared destination, failFast, errors named",
  ignore: skipHere(
    "transfers to many nodes",
    "node-is-local",
    "second-address",
  ),
}, async (t) => {
  await using rig = await startLoopbackRig();
  const local = await Deno.makeTempDir({ prefix: "fiwi_xfer_" });
  const shared = scratch(rig, "shared");
  const payload = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  await Deno.writeFile(`${local}/fw.bin`, payload);
  // Both addresses are this machine: every push lands on one path, as on NFS.
  const nodes = Array.from(
    { length: 6 },
    (_, i) => rig.node({ index: i % 2, name: `n${i}`, silent: true }),
  );
  try {
    await t.step(
      "concurrent pushes of one file to one path all succeed, whole",
      async () => {
        let progress = 0;
        const rs = await pushAll(nodes, `${local}/fw.bin`, shared, {
          verify: true,
          onProgress: (b) => progress = b,
        });
        assertEquals(rs.map((r) => r.node), nodes.map((n) => n.name));
        rs.forEach(ok);
        assertEquals(progress, rs.reduce((s, r) => s + r.bytes, 0));
        assertEquals(await Deno.readFile(`${shared}/fw.bin`), payload);
        assertEquals(await tempDirsIn(shared), []);
      },
    );

    await t.step(
      "pullAll puts each node's copy in its own directory",
      async () => {
        const rs = await pullAll(
          nodes.slice(0, 2),
          `${shared}/fw.bin`,
          `${local}/logs`,
        );
        assertEquals(rs.map((r) => [r.node, r.success, r.files]), [[
          "n0",
          true,
          1,
        ], ["n1", true, 1]]);
        for (const n of ["n0", "n1"]) {
          assertEquals(
            await Deno.readFile(`${local}/logs/${n}/fw.bin`),
            payload,
          );
        }
      },
    );

    await t.step(
      "failFast aborts the siblings of the first failure",
      async () => {
        const bad = rig.node({
          name: "bad",
          user: "nobody_fiwi",
          silent: true,
        });
        const rs = await pullAll(
          [bad, ...nodes.slice(0, 2)],
          `${shared}/fw.bin`,
          `${local}/ff`,
          {
            concurrency: 1,
            failFast: true,
          },
        );
        assertEquals(rs.map((r) => [r.node, r.success, r.aborted]), [
          ["bad", false, false],
          ["n0", false, true],
          ["n1", false, true],
        ]);
        assertEquals(await exists(`${local}/ff/n0/fw.bin`), false);
      },
    );

    await t.step("a permission error names node and path", async () => {
      const rs = await pushAll(
        nodes.slice(0, 1),
        `${local}/fw.bin`,
        "/root/fiwi_denied/x",
      );
      assertEquals(rs[0].success, false);
      assertMatch(rs[0].error!.message, /node "n0"/);
      assertMatch(rs[0].error!.message, /\/root\/fiwi_denied\/x/);
      assertMatch(rs[0].error!.message, /Permission denied/);
    });

    await t.step(
      "a full disk names node and path, and leaves no partial file",
      async () => {
        const mount = `/tmp/fiwi_full_${rig.port}`;
        await Deno.mkdir(mount, { recursive: true });
        const mounted = await new Deno.Command("mount", {
          args: ["-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", mount],
          stdout: "null",
          stderr: "null",
        }).output();
        if (!mounted.success) {
          console.warn("full-disk case skipped: cannot mount a tmpfs here");
          await Deno.remove(mount);
          return;
        }
        try {
          const [r] = await pushAll(
            nodes.slice(0, 1),
            `${local}/fw.bin`,
            mount,
          );
          assertEquals(r.success, false);
          assertMatch(
            r.error!.message,
            new RegExp(`node "n0".*${mount}|${mount}.*node "n0"`),
          );
          // GNU tar says "Wrote only … bytes" or "No space left on device".
          assertMatch(r.error!.message, /No space left|Wrote only/);
          assertEquals(await exists(`${mount}/fw.bin`), false);
          assertEquals(await tempDirsIn(mount), []);
        } finally {
          await new Deno.Command("umount", { args: [mount] }).output();
          await Deno.remove(mount).catch(() => {});
        }
      },
    );

    await t.step("bad arguments are refused before anything runs", async () => {
      await assertRejects(
        () => pushAll(nodes, [], shared),
        ConfigurationError,
        "Invalid sources",
      );
      await assertRejects(
        () => pullAll(nodes, "/x", " "),
        ConfigurationError,
        "destination",
      );
      await assertRejects(
        () => pushAll(nodes, `${local}/fw.bin`, shared, { concurrency: 0 }),
        ConfigurationError,
        "Invalid concurrency",
      );
      await assertRejects(
        () =>
          pullAll(nodes, "/x", local, { verify: "yes" as unknown as boolean }),
        ConfigurationError,
        "Invalid verify",
      );
    });
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await Deno.remove(local, { recursive: true }).catch(() => {});
    await Deno.remove(scratch(rig, ""), { recursive: true }).catch(() => {});
  }
});

const ROOT = new URL("../", import.meta.url).pathname;

/** `fiwi push|pull ARGS` as a subprocess with exactly its task's permissions. */
async function fiwi(
  cwd: string,
  controlDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  const m = /^deno run (.+) (scripts\/fiwi\.ts)$/.exec(tasks.fiwi);
  if (!m) throw new Error(`task "fiwi" is not "deno run <flags> <script>"`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      ...m[1].split(" "),
      ROOT + m[2],
      ...args,
    ],
    cwd,
    env: { FIWI_CONTROL_DIR: controlDir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name:
    "fiwi push and fiwi pull: NDJSON per node, summary, exit codes 0, 1 and 2",
  ignore: skipHere("fiwi push and pull", "node-is-local", "second-address"),
}, async () => {
  await using rig = await startLoopbackRig();
  const work = await Deno.makeTempDir({ prefix: "fiwi_xfer_cli_" });
  const remote = scratch(rig, "cli");
  const controlDir = `${work}/cm`;
  try {
    await Deno.writeTextFile(
      `${work}/rigs.yaml`,
      `default: loop\ndefaults:\n  user: ${rig.user}\n  port: ${rig.port}\n` +
        `  sshConfig: ${rig.sshConfig}\nrigs:\n  loop:\n    nodes:\n` +
        `      n1: ${rig.hosts[0]}\n      n2: ${rig.hosts[1]}\n`,
    );
    await Deno.writeTextFile(`${work}/fw.bin`, "firmware\n");
    // Relative paths are the user's: fw.bin and out/ are in `work`.
    const pushed = await fiwi(work, controlDir, [
      "push",
      "--json",
      "--verify",
      "--no-log",
      "fw.bin",
      remote,
    ]);
    assertEquals(pushed.code, 0, pushed.stderr);
    const records = pushed.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(
      records.slice(0, 2).map((r) => [r.success, r.files]).sort(),
      [[true, 1], [true, 1]],
    );
    assertEquals(records[2].summary.ok, 2);
    assertEquals(await Deno.readTextFile(`${remote}/fw.bin`), "firmware\n");

    const pulled = await fiwi(work, controlDir, [
      "pull",
      "--no-log",
      `${remote}/fw.bin`,
      "out",
    ]);
    assertEquals(pulled.code, 0, pulled.stderr);
    assertMatch(pulled.stderr, /2\/2 nodes ok/);
    for (const n of ["n1", "n2"]) {
      assertEquals(
        await Deno.readTextFile(`${work}/out/${n}/fw.bin`),
        "firmware\n",
      );
    }

    const missing = await fiwi(work, controlDir, [
      "pull",
      "--no-log",
      `${remote}/absent`,
      "out",
    ]);
    assertEquals(missing.code, 1);
    assertMatch(missing.stderr, /node "n1"/);

    const bad = await fiwi(work, controlDir, [
      "push",
      "--no-log",
      "nope.bin",
      remote,
    ]);
    assertEquals(bad.code, 2);
    assertEquals(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assertMatch(bad.stderr, /nope\.bin" was not found/);

    const usage = await fiwi(work, controlDir, [
      "push",
      "--no-log",
      "only-one",
    ]);
    assertEquals(usage.code, 2);
  } finally {
    await fiwi(work, controlDir, ["close", "--no-log"]);
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(scratch(rig, ""), { recursive: true }).catch(() => {});
  }
});
