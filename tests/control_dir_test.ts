// The ControlMaster socket directory against another local user: a
// throwaway user (created here, removed after) plays the attacker of the
// hardening issue. The base directory stands in for /tmp: root-owned, 1777.
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import { ConfigurationError, SshNode } from "../mod.ts";
import { defaultControlDir } from "../src/node/node.ts";
import { ensurePrivateDir } from "../src/connection/_control_dir.ts";
import { configArgv } from "../src/transport/argv.ts";

const decoder = new TextDecoder();

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  }
  return decoder.decode(out.stdout);
}

function whyNot(): string | null {
  if (Deno.uid() !== 0) return "needs root to create a second local user";
  for (const tool of ["/usr/sbin/useradd", "/usr/bin/setpriv"]) {
    try {
      Deno.statSync(tool);
    } catch {
      return `needs ${tool}`;
    }
  }
  try {
    Deno.statSync("/usr/bin/python3");
  } catch {
    return "needs /usr/bin/python3 for the fake master";
  }
  return null;
}

const skip = whyNot();
if (skip) console.warn(`skipped: control_dir_test.ts: ${skip}`);

/** The other local user: runs commands as itself, leaves nothing behind. */
interface Other extends AsyncDisposable {
  name: string;
  uid: number;
  /** Run `args` as the other user; resolves with stdout. */
  as(...args: string[]): Promise<string>;
  /**
   * Start a fake master as the other user: a socket listening at `path`
   * that writes "connected" to `log` when a client connects.
   */
  fakeMaster(path: string, log: string): Promise<void>;
}

async function otherUser(): Promise<Other> {
  const name = `fiwicd${crypto.getRandomValues(new Uint32Array(1))[0] % 1e6}`;
  await run("useradd", ["-M", "-N", "-s", "/usr/sbin/nologin", name]);
  const uid = Number((await run("id", ["-u", name])).trim());
  const gid = (await run("id", ["-g", name])).trim();
  const drop = [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--"];
  const masters: Deno.ChildProcess[] = [];
  return {
    name,
    uid,
    as: (...args) => run("setpriv", [...drop, ...args]),
    async fakeMaster(path, log) {
      const script = "import socket,sys\n" +
        "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n" +
        "print('ready', flush=True)\n" +
        "c,_=s.accept(); open(sys.argv[2],'w').write('connected')\n";
      const child = new Deno.Command("setpriv", {
        args: [...drop, "/usr/bin/python3", "-c", script, path, log],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      masters.push(child);
      const reader = child.stdout.getReader();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const ready = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("fake master")), 10_000);
          }),
        ]);
        assertEquals(decoder.decode(ready.value).trim(), "ready");
      } finally {
        clearTimeout(timer);
        reader.releaseLock();
      }
    },
    async [Symbol.asyncDispose]() {
      for (const child of masters) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.stdout.cancel().catch(() => {});
        await child.status;
      }
      await run("userdel", [name]);
    },
  };
}

/** A root-owned 1777 directory standing in for /tmp, removed after. */
async function fakeTmp(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "fiwi_cd_" });
  await Deno.chmod(path, 0o1777);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

const mode = (path: string) => (Deno.lstatSync(path).mode ?? 0) & 0o7777;

function node(controlDir: string): SshNode {
  return new SshNode({ name: "cd", host: "127.0.0.1", port: 1, controlDir });
}

/** Where ssh would look for the master of `n` (`ControlPath` expanded). */
async function socketPath(n: SshNode): Promise<string> {
  const argv = configArgv(n.spec)!;
  const out = await run(argv[0], argv.slice(1));
  return /^controlpath (.+)$/m.exec(out)![1];
}

Deno.test({
  name:
    "missing components are created 0700 one level at a time; the base keeps its mode",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    const dir = `${tmp.path}/fiwi-0/cm`;
    await ensurePrivateDir(dir);
    for (const p of [`${tmp.path}/fiwi-0`, dir]) {
      const st = Deno.lstatSync(p);
      assert(st.isDirectory && !st.isSymlink, p);
      assertEquals([st.uid, mode(p)], [0, 0o700], p);
    }
    assertEquals(mode(tmp.path), 0o1777);
    await ensurePrivateDir(dir); // again: nothing to change
    assertEquals(mode(dir), 0o700);
  },
});

Deno.test({
  name:
    "our own socket dir readable by others is narrowed to 0700; writable by others is refused as is",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    const dir = `${tmp.path}/cm`;
    await Deno.mkdir(dir);
    await Deno.chmod(dir, 0o755);
    await ensurePrivateDir(dir);
    assertEquals(mode(dir), 0o700);
    await Deno.chmod(dir, 0o777);
    const err = await assertRejects(
      () => ensurePrivateDir(dir),
      ConfigurationError,
    );
    assertMatch(err.message, /is writable by other users.*mode 0777/);
    assertEquals(mode(dir), 0o777, "refused, not repaired");
    const file = `${tmp.path}/file`;
    await Deno.writeTextFile(file, "");
    await assertRejects(
      () => ensurePrivateDir(`${file}/cm`),
      ConfigurationError,
      `"${file}" is not a directory (owner user "root" (uid 0), mode 0644)`,
    );
  },
});

Deno.test({
  name:
    "another user's fiwi-<uid> with cm linked to /tmp, where their fake master listens, is refused; nothing reaches it",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    await using other = await otherUser();
    // The attack: cm points at the root-owned 1777 base itself, which
    // passes an owner check that follows links, and the socket is theirs.
    const theirs = `${tmp.path}/fiwi-0`;
    await other.as("mkdir", "-m", "0755", theirs);
    await other.as("ln", "-s", tmp.path, `${theirs}/cm`);
    const n = node(`${theirs}/cm`);
    const socket = (await socketPath(n)).replace(`${theirs}/cm`, tmp.path);
    await other.fakeMaster(socket, `${tmp.path}/log`);

    const err = await assertRejects(
      () => n.rexec("echo ok", { retry: false }),
      ConfigurationError,
    );
    assertMatch(
      err.message,
      new RegExp(
        `"${theirs}" belongs to user "${other.name}" \\(uid ${other.uid}\\)`,
      ),
    );
    await assertRejects(
      () => Deno.stat(`${tmp.path}/log`),
      Deno.errors.NotFound,
    );
    assertEquals(mode(tmp.path), 0o1777, "no chmod through the link");
  },
});

Deno.test({
  name:
    "a cm symlink planted in /tmp by another user is refused, and the root-owned 1777 dir it points at keeps its mode",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    await using other = await otherUser();
    const shared = `${tmp.path}/shared`;
    await Deno.mkdir(shared);
    await Deno.chmod(shared, 0o1777);
    await other.as("ln", "-s", shared, `${tmp.path}/cm`);
    const err = await assertRejects(
      () => node(`${tmp.path}/cm`).rexec("echo ok", { retry: false }),
      ConfigurationError,
    );
    assertMatch(
      err.message,
      new RegExp(`is a symbolic link \\(owner user "${other.name}"`),
    );
    assertEquals(mode(shared), 0o1777, "no chmod through the link");
  },
});

Deno.test({
  name:
    "a socket dir another user made first, with their master listening in it, is refused naming them",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    await using other = await otherUser();
    const dir = `${tmp.path}/cm`;
    await other.as("mkdir", "-m", "0777", dir);
    const n = node(dir);
    await other.fakeMaster(await socketPath(n), `${tmp.path}/cm/log`);
    const err = await assertRejects(
      () => n.rexec("echo ok", { retry: false }),
      ConfigurationError,
    );
    assertMatch(
      err.message,
      new RegExp(`"${dir}" belongs to user "${other.name}"`),
    );
    await assertRejects(() => Deno.stat(`${dir}/log`), Deno.errors.NotFound);
  },
});

Deno.test({
  name:
    "a base directory of another user (XDG_RUNTIME_DIR of theirs) is refused",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    await using other = await otherUser();
    const base = `${tmp.path}/run`;
    await other.as("mkdir", "-m", "0755", base);
    const err = await assertRejects(
      () => ensurePrivateDir(`${base}/fiwi-0/cm`),
      ConfigurationError,
    );
    assertMatch(
      err.message,
      new RegExp(`"${base}" belongs to user "${other.name}"`),
    );
    await assertRejects(
      () => Deno.lstat(`${base}/fiwi-0`),
      Deno.errors.NotFound,
    );
  },
});

Deno.test({
  name:
    "a root-owned link in a directory only root writes is followed (like /var/run)",
  ignore: skip !== null,
  async fn() {
    await using tmp = await fakeTmp();
    const sys = `${tmp.path}/sys`;
    await Deno.mkdir(`${sys}/real`, { recursive: true });
    await Deno.chmod(sys, 0o755);
    await Deno.symlink(`${sys}/real`, `${sys}/run`);
    await ensurePrivateDir(`${sys}/run/cm`);
    assertEquals(mode(`${sys}/real/cm`), 0o700);
    // The socket dir itself is never a link, even one of ours.
    await Deno.symlink(`${sys}/real/cm`, `${sys}/cm`);
    await assertRejects(
      () => ensurePrivateDir(`${sys}/cm`),
      ConfigurationError,
      "is a symbolic link",
    );
  },
});

Deno.test("the default socket dir is ${XDG_RUNTIME_DIR:-/tmp}/fiwi-<uid>/cm", () => {
  const saved = ["FIWI_CONTROL_DIR", "XDG_RUNTIME_DIR"].map((k) =>
    [k, Deno.env.get(k)] as const
  );
  try {
    Deno.env.delete("FIWI_CONTROL_DIR");
    Deno.env.delete("XDG_RUNTIME_DIR");
    assertEquals(defaultControlDir(), `/tmp/fiwi-${Deno.uid()}/cm`);
    Deno.env.set("XDG_RUNTIME_DIR", "/run/user/7");
    assertEquals(defaultControlDir(), `/run/user/7/fiwi-${Deno.uid()}/cm`);
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
});
