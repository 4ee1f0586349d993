// The central log is not trusted blindly and never blocks (issue 18):
// `--log FILE` that another user owns, that group or others may access, or
// that is a symbolic link is refused with one line and exit 2, and nothing
// reaches the file or the link's target; the log is written
// asynchronously and still complete after the command exits; rotated files
// are 0600; past its bound the batch drops lines and says how many.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { fiwi } from "./_cli_harness.ts";
import { LogFile } from "../scripts/_log_file.ts";

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_trust_log_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const mode = async (p: string) => (await Deno.lstat(p)).mode! & 0o777;

/** fiwi refused `--log path` with exactly one line matching `why`, exit 2. */
async function refused(cwd: string, path: string, why: RegExp) {
  const r = await fiwi(["run", "--log", path, "echo secret-cmd"], { cwd });
  assertEquals([r.code, r.stdout], [2, ""], r.stderr);
  assertEquals(r.stderr.split("\n").length, 2, r.stderr);
  assertMatch(r.stderr, why);
  assert(!r.stderr.includes("    at "), "no stack trace");
}

Deno.test({
  name:
    "trust: --log refuses another user's file, one open to others, and a symlink; nothing is written",
  ignore: Deno.uid() !== 0,
}, async (t) => {
  await inTempDir(async (cwd) => {
    await t.step("a file another user planted (0600)", async () => {
      const planted = `${cwd}/theirs.log`;
      await Deno.writeTextFile(planted, "theirs\n", { mode: 0o600 });
      await Deno.chown(planted, 65534, 65534);
      await refused(
        cwd,
        "theirs.log",
        /^run: Log file ".*\/theirs\.log" belongs to uid 65534, not to you \(uid 0\): remove it, or give --log a file of your own\n$/,
      );
      assertEquals(await Deno.readTextFile(planted), "theirs\n");
      assertEquals((await Deno.lstat(planted)).uid, 65534);
    });

    await t.step(
      "a file of mine that group and others may read (0666)",
      async () => {
        const open = `${cwd}/open.log`;
        await Deno.writeTextFile(open, "");
        await Deno.chmod(open, 0o666);
        await refused(
          cwd,
          "open.log",
          /^run: Log file ".*\/open\.log" is open to group or others \(mode 0666\): run chmod 600 ".*\/open\.log", or give --log a file of your own\n$/,
        );
        assertEquals(await Deno.readTextFile(open), "");
        assertEquals(
          await mode(open),
          0o666,
          "not chmodded behind the user's back",
        );
      },
    );

    await t.step("a symbolic link planted at the log path", async () => {
      const target = `${cwd}/target`;
      await Deno.writeTextFile(target, "target\n");
      await Deno.chmod(target, 0o644);
      await Deno.symlink(target, `${cwd}/link.log`);
      await refused(
        cwd,
        "link.log",
        /^run: Log file ".*\/link\.log" is a symbolic link, which fiwi does not follow: remove it, or give --log a file of your own\n$/,
      );
      assertEquals(await Deno.readTextFile(target), "target\n");
      assertEquals(await mode(target), 0o644);
      // A dangling link is refused too, and nothing is created at its target.
      await Deno.symlink(`${cwd}/nowhere`, `${cwd}/dangling.log`);
      await refused(cwd, "dangling.log", /is a symbolic link/);
      assertEquals(await Deno.lstat(`${cwd}/nowhere`).catch(() => null), null);
    });
  });
});

Deno.test("trust: the asynchronously written log has every line after fiwi exits, rotated files 0600", async (t) => {
  await inTempDir(async (cwd) => {
    await t.step("100000 lines, all present and in order", async () => {
      const r = await fiwi(["run", "--log", "all.log", "seq 1 100000"], {
        cwd,
      });
      assertEquals(r.code, 0, r.stderr.slice(-500));
      const log = (await Deno.readTextFile(`${cwd}/all.log`)).trimEnd()
        .split("\n");
      const lines = log.filter((l) => / fiwi\.cli\.run: local: \d+$/.test(l))
        .map((l) => Number(l.slice(l.lastIndexOf(" ") + 1)));
      assertEquals(lines.length, 100000);
      assert(lines.every((n, i) => n === i + 1), "out of order");
      assertMatch(log.at(-1)!, /Finished fiwi run: exit 0$/);
      assert(!log.some((l) => l.includes("log lines dropped")));
      assertEquals(await mode(`${cwd}/all.log`), 0o600);
    });

    await t.step(
      "rotation: every file at most FIWI_LOG_SIZE, 0600, no line lost",
      async () => {
        const env = { FIWI_LOG_SIZE: "16K", FIWI_LOG_FILES: "40" };
        const r = await fiwi(["run", "--log", "rot.log", "seq 1 5000"], {
          cwd,
          env,
        });
        assertEquals(r.code, 0, r.stderr);
        const names = [...Deno.readDirSync(cwd)].map((e) => e.name)
          .filter((n) => n.startsWith("rot.log"));
        assert(names.length > 5 && names.length <= 41, names.join(" "));
        let text = "";
        for (let i = names.length - 1; i >= 1; i--) {
          text += await Deno.readTextFile(`${cwd}/rot.log.${i}`);
        }
        text += await Deno.readTextFile(`${cwd}/rot.log`);
        for (const n of names) {
          const st = await Deno.lstat(`${cwd}/${n}`);
          assert(st.size <= 16 * 1024, `${n}: ${st.size}`);
          assertEquals(st.mode! & 0o777, 0o600, n);
        }
        const lines = text.split("\n").filter((l) =>
          / fiwi\.cli\.run: local: \d+$/.test(l)
        );
        assertEquals(lines.length, 5000);
      },
    );

    await t.step("a log directory fiwi creates is 0700", async () => {
      const env = { XDG_STATE_HOME: `${cwd}/state` };
      const r = await fiwi(["run", "true"], { cwd, env });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await mode(`${cwd}/state/fiwi`), 0o700);
      assertEquals(await mode(`${cwd}/state/fiwi/fiwi.log`), 0o600);
    });
  });
});

Deno.test("trust: past its bound the log batch is written synchronously; nothing is dropped and memory stays bounded", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/bounded.log`;
    const errors: string[] = [];
    const file = await LogFile.open(path, {
      maxSize: 1 << 30,
      maxFiles: 1,
      maxPending: 1000,
      onError: (text) => errors.push(text),
    });
    const line = (i: number) => `line ${String(i).padStart(4, "0")}\n`;
    // In one task, with a write pending: past 4x the bound (400 lines of
    // 10 characters) the batch goes to the file synchronously, right away.
    for (let i = 0; i < 600; i++) file.write(line(i));
    assert(
      (await Deno.stat(path)).size >= 4000,
      "not written synchronously at 4x the bound",
    );
    assert(file.overtaken >= 1);
    await file.close();
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    assertEquals(lines.length, 600, "a line was lost");
    assertEquals(new Set(lines).size, 600, "a line was written twice");
    assertEquals(errors, []);
    assertEquals(await mode(path), 0o600);
  });
});
