// A ControlMaster is declared hung only by a positive check that fails,
// never by a timer alone (issue 18): a master stopped for longer than a
// third of the connect timeout and then resumed is left alone and the run
// succeeds on it; one whose process stays stopped through the whole check,
// or is gone, is replaced and the run recovers; a check that runs out of
// time while the master's process runs is "slow", not hung. Every master
// is counted by its title, `ssh: <this rig's dir>/cm/… [mux]`, unique to
// this test run.
import { assert, assertEquals, assertNotEquals } from "jsr:@std/assert@^1";
import type { SshNode } from "../mod.ts";
import { controlPool } from "../src/connection/pool.ts";
import { DEFAULT_CHECK_TIMEOUT } from "../src/connection/pool.ts";
import {
  type LoopbackRig,
  skipReasonFor,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

// It SIGSTOPs local master processes and times their checks.
const ignore = skipReasonFor(
  "master trust tests",
  "sshd-control",
  "loopback-timing",
) !== null;

/** Pids of local processes whose command line satisfies `match`. */
async function processes(match: (args: string) => boolean) {
  const out = await new Deno.Command("ps", {
    args: ["-A", "-o", "pid=", "-o", "args="],
    stdout: "piped",
    stderr: "null",
  }).output();
  const pids: number[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+) (.*)$/.exec(line);
    if (m && match(m[2])) pids.push(Number(m[1]));
  }
  return pids;
}

/** Masters of this rig (their title names the rig's socket directory). */
function masters(rig: LoopbackRig): Promise<number[]> {
  return processes((c) => c.startsWith(`ssh: ${rig.dir}/cm/`));
}

/** `ssh -O check` clients asking this rig's masters. */
function checks(rig: LoopbackRig): Promise<number[]> {
  return processes((c) =>
    c.includes(" -O check ") && c.includes(`${rig.dir}/cm/`)
  );
}

/** True while `pid` exists and is not a zombie (Deno reads /proc only with -A). */
async function running(pid: number): Promise<boolean> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "stat=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const stat = new TextDecoder().decode(out.stdout).trim();
  return stat !== "" && !stat.startsWith("Z");
}

/** Poll (100 ms) until `check` holds; fails after `ms`. */
async function until(
  what: string,
  ms: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`No ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function warmMaster(node: SshNode): Promise<number> {
  const r = await node.rexec("true", { retry: false });
  assertEquals(r.code, 0, r.stderr);
  const status = await controlPool.check(node);
  assertEquals(status?.state, "alive");
  return status!.pid!;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

Deno.test({
  name: "trust: a master is replaced only by a positive check that fails",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();

  await t.step(
    "a master stopped longer than a third of the connect timeout, then resumed, is left alone and the run succeeds on it",
    async () => {
      await using node = rig.node({ silent: true });
      const pid = await warmMaster(node);
      const connectTimeout = 9000;
      signal(pid, "SIGSTOP");
      const t0 = performance.now();
      try {
        const run = node.rexec("echo slow-ok", {
          connectTimeout,
          retry: false,
        });
        // The admission watch asks the stopped master (after 2 s) ...
        await until(
          "check of the stopped master",
          8000,
          async () => (await checks(rig)).length > 0,
        );
        // ... and it stays stopped past a third of the connect timeout, the
        // point at which the old timer declared it hung. This stop is the
        // stimulus itself; there is no event to wait for instead.
        const left = connectTimeout / 3 + 500 - (performance.now() - t0);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
        signal(pid, "SIGCONT");
        const r = await within(connectTimeout + 5000, run, "end of the run");
        assertEquals(
          [r.success, r.stdout, r.attempts],
          [true, "slow-ok\n", 1],
          `${r.error?.message} ${r.stderr}`,
        );
      } finally {
        signal(pid, "SIGCONT");
      }
      assert(await running(pid), "the slow master was killed");
      const now = await controlPool.check(node);
      assertEquals([now?.state, now?.pid], ["alive", pid]);
    },
  );

  await t.step(
    "a master whose process stays stopped through the check is killed and replaced, and the run recovers",
    async () => {
      await using node = rig.node({ silent: true });
      const pid = await warmMaster(node);
      signal(pid, "SIGSTOP");
      try {
        const t0 = performance.now();
        const r = await node.rexec("echo recovered", {
          connectTimeout: 12_000,
          retry: { delays: [10] },
        });
        const ms = performance.now() - t0;
        assertEquals(
          [r.success, r.stdout, r.attempts],
          [true, "recovered\n", 2],
          `${r.error?.message} ${r.stderr}`,
        );
        // Probe (2 s) + one check bound + a fresh handshake.
        assert(ms < 12_000, `took ${Math.round(ms)} ms`);
        assertEquals(await running(pid), false, "the hung master still runs");
        const now = await controlPool.check(node);
        assertEquals(now?.state, "alive");
        assertNotEquals(now?.pid, pid);
      } finally {
        signal(pid, "SIGKILL");
      }
    },
  );

  await t.step(
    "a master whose process is gone leaves a stale socket, which is removed; the next run starts a new master",
    async () => {
      await using node = rig.node({ silent: true });
      const pid = await warmMaster(node);
      const socket = (await controlPool.socketPath(node))!;
      signal(pid, "SIGKILL");
      await until(
        "the killed master gone",
        5000,
        async () => !(await running(pid)),
      );
      assert((await Deno.lstat(socket)).isSocket, "socket left behind");
      assertEquals((await controlPool.repair(node))?.state, "stale");
      assertEquals(
        await Deno.lstat(socket).then(() => true, () => false),
        false,
      );
      const r = await node.rexec("echo fresh", { retry: false });
      assertEquals([r.success, r.stdout], [true, "fresh\n"], r.stderr);
    },
  );

  await t.step(
    "a check that runs out of time while the master's process runs is slow, not hung: nothing is removed; stopped through the check, it is hung and killed",
    async () => {
      await using node = rig.node({ silent: true, index: 1 });
      await node.close();
      const socket = (await controlPool.socketPath(node))!;
      // A stand-in master that accepts and never answers, titled as
      // OpenSSH titles a master, so the pool finds its pid.
      const script = "import socket,sys\n" +
        "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n" +
        "print('ready', flush=True)\n" +
        "held=[]\n" +
        "while True: held.append(s.accept())\n";
      const fake = new Deno.Command("bash", {
        args: [
          "-c",
          `exec -a "ssh: ${socket} [mux]" /usr/bin/python3 -c "$1" "$2"`,
          "fake",
          script,
          socket,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      try {
        const reader = fake.stdout.getReader();
        const ready = await within(10_000, reader.read(), "fake master");
        reader.releaseLock();
        assertEquals(new TextDecoder().decode(ready.value).trim(), "ready");
        const t0 = performance.now();
        const slow = await controlPool.repair(node);
        assert(
          performance.now() - t0 >= DEFAULT_CHECK_TIMEOUT - 100,
          "the check did not wait its bound",
        );
        assertEquals([slow?.state, slow?.pid], ["slow", fake.pid]);
        assert(
          (await Deno.lstat(socket)).isSocket,
          "a slow master's socket was removed",
        );
        assert(await running(fake.pid), "a slow master was killed");

        signal(fake.pid, "SIGSTOP");
        const hung = await controlPool.repair(node);
        assertEquals([hung?.state, hung?.pid], ["hung", fake.pid]);
        assertEquals((await fake.status).signal, "SIGKILL");
        assertEquals(
          await Deno.lstat(socket).then(() => true, () => false),
          false,
        );
      } finally {
        signal(fake.pid, "SIGKILL");
        await fake.status;
        await fake.stdout.cancel().catch(() => {});
      }
    },
  );

  await t.step("no master of this test run is left running", async () => {
    await controlPool.closeAll();
    const left = async () => (await masters(rig)).length;
    assertEquals(await settlesToZero(left, 5000), 0);
  });
});
