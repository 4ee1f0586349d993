// Persistent shells on the loopback rig (and one on the local transport).
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  type Admission,
  ConfigurationError,
  ConnectionError,
  FiwiError,
  openShell,
  type ShellNode,
  SshNode,
  TimeoutError,
} from "../mod.ts";
import { CONFIRM_MS } from "../src/process/watchdog.ts";
import { untilStarted } from "../src/shell/_open.ts";
import { expectPattern, runScript } from "../src/shell/_run.ts";
import { ShellOutput } from "../src/shell/_shell_output.ts";
import { ManualClock, settle } from "./_manual_clock.ts";
import {
  countCarrying,
  marker,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

const ignore = skipReason() !== null;

const S = "__FIWI_SH_t_1__";

Deno.test("ShellOutput takes the pid from the start line and keeps ssh's text apart", () => {
  let started = 0;
  const out = new ShellOutput(() => started++);
  out.stderr("Warning: something\n__FIWI_ST");
  assertEquals([out.remotePid, started], [null, 0]);
  out.stderr("ART__ 4242\nearly");
  // The same rule as a run's: ssh's own lines before the start line stay
  // apart (for failure classification), the start line gives the pid.
  assertEquals([out.remotePid, started, out.pending], [4242, 1, "early"]);
  assertEquals(out.preStart, "Warning: something\n");
  const noisy = new ShellOutput(() => started++);
  noisy.stderr(
    "ControlSocket /s already exists, disabling multiplexing\n__FIWI_START__ 7\n",
  );
  assertEquals([noisy.remotePid, started, noisy.preStart], [7, 2, ""]);
});

Deno.test("ShellOutput cuts a run's output at its sentinels, split anywhere", async () => {
  const text = `no newline${S} 7\nlater`;
  const err = `oops\n${S}\n`;
  for (let cut = 0; cut <= text.length; cut++) {
    const out = new ShellOutput();
    out.stderr("__FIWI_START__ 1\n");
    const run = out.beginRun(S);
    out.stdout(text.slice(0, cut));
    out.stderr(err.slice(0, cut % err.length));
    out.stdout(text.slice(cut));
    out.stderr(err.slice(cut % err.length));
    assertEquals(await run, {
      code: 7,
      stdout: "no newline",
      stderr: "oops\n",
    });
    assertEquals(out.pending, "later");
  }
});

Deno.test("ShellOutput.expect() consumes up to the match, across chunks", async () => {
  const out = new ShellOutput();
  out.stderr("__FIWI_START__ 1\n");
  out.stdout("ready");
  const first = out.expect(/ready> /);
  out.stdout("> and more");
  assertEquals(await first.promise, "ready> ");
  assertEquals(out.pending, "and more");
  const never = out.expect(/x{3}/);
  assertEquals(out.expecting?.source, "x{3}");
  out.end(0, new Error("ended"));
  await assertRejects(() => never.promise, Error, "ended");
  assertEquals(out.expecting, null);
});

Deno.test("ShellOutput resolves a pending run with the shell's status when it ends", async () => {
  const out = new ShellOutput();
  out.stderr("__FIWI_START__ 1\n");
  const run = out.beginRun(S);
  out.stdout("bye\n");
  out.end(3, new Error("ended"));
  assertEquals(await run, { code: 3, stdout: "bye\n", stderr: "" });
});

Deno.test("a local shell keeps its state between runs", async () => {
  await using sh = await localNode().openShell("local1");
  await sh.run("cd /tmp && x=41");
  const r = await sh.run('echo "$PWD $((x + 1))"');
  assertEquals([r.stdout, r.code], ["/tmp 42\n", 0]);
});

function localNode(name = "here"): SshNode {
  return new SshNode({ name, host: "localhost", transport: "local" });
}

Deno.test("a shell run that times out resolves with timedOut and closes the shell", async () => {
  await using sh = await localNode().openShell("local-slow");
  const cmd = "echo begun; echo err >&2; sleep 30";
  const t0 = performance.now();
  const r = await sh.run(cmd, { timeout: 300 });
  assert(performance.now() - t0 < 5000, "the timeout stopped the run");
  assertEquals(
    [r.cmd, r.timedOut, r.code, r.success, r.aborted],
    [cmd, "command", null, false, false],
  );
  // What the command wrote before the timeout is kept, as rexec keeps it.
  assertEquals([r.stdout, r.stderr], ["begun\n", "err\n"]);
  assertInstanceOf(r.error, TimeoutError);
  const e = r.error as TimeoutError;
  assertEquals(e.kind, "command");
  assert(e.message.includes("300 ms"), e.message);
  // The shell that ran it is gone: later runs say which run closed it.
  assert(sh.closed);
  await assertRejects(
    () => sh.run("true"),
    FiwiError,
    `was closed when its run of ${JSON.stringify(cmd)} timed out`,
  );
});

Deno.test("a shell run that ends in time has timedOut null", async () => {
  await using sh = await localNode().openShell("local-quick");
  const r = await sh.run("echo ok", { timeout: 5000 });
  assertEquals(
    [r.stdout, r.code, r.success, r.timedOut, r.aborted, r.error],
    ["ok\n", 0, true, null, false, null],
  );
  assert(!sh.closed);
});

Deno.test("an aborted shell run resolves with aborted", async (t) => {
  await using sh = await localNode().openShell("local-abort");
  await t.step(
    "aborted while queued: never written, the shell stays",
    async () => {
      const ac = new AbortController();
      const first = sh.run("sleep 0.2; echo first");
      const second = sh.run("echo second", { signal: ac.signal });
      ac.abort();
      assertEquals((await first).stdout, "first\n");
      const r = await second;
      assertEquals(
        [r.aborted, r.timedOut, r.code, r.success, r.stdout, r.error],
        [true, null, null, false, "", null],
      );
      assert(!sh.closed);
      assertEquals((await sh.run("echo still")).stdout, "still\n");
    },
  );
  await t.step("aborted while running: the shell is closed", async () => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 200);
    const r = await sh.run("echo begun; sleep 30", { signal: ac.signal });
    clearTimeout(timer);
    assertEquals(
      [r.aborted, r.timedOut, r.code, r.stdout],
      [true, null, null, "begun\n"],
    );
    assert(sh.closed);
    await assertRejects(() => sh.run("true"), FiwiError, "was aborted");
  });
});

Deno.test("closing a shell during a run resolves the run as aborted", async () => {
  const sh = await localNode().openShell("local-close");
  const running = sh.run("echo begun; sleep 30");
  const queued = sh.run("echo never");
  const timer = setTimeout(() => sh.close(), 200);
  const r = await running;
  clearTimeout(timer);
  assertEquals(
    [r.aborted, r.timedOut, r.code, r.stdout],
    [true, null, null, "begun\n"],
  );
  await assertRejects(() => queued, FiwiError, "has ended");
  await sh.close();
});

Deno.test("shell runs and expect reject bad input", async () => {
  await using sh = await localNode().openShell("local-input");
  await assertRejects(() => sh.run(""), ConfigurationError);
  await assertRejects(
    () => sh.run("true", { timeout: -1 }),
    ConfigurationError,
    "Invalid timeout",
  );
  await assertRejects(
    () => sh.expect(42 as unknown as string),
    TypeError,
    "Invalid pattern",
  );
  assert(!sh.closed);
});

Deno.test("runScript() and expectPattern() build what a run writes and expect seeks", () => {
  assertEquals(
    runScript("echo 'a'", "S"),
    `{ command eval 'echo '\\''a'\\'''\n} </dev/null\n` +
      `printf '%s %d\\n' S "$?"; printf '%s\\n' S >&2\n`,
  );
  assertEquals(expectPattern("a.b*").source, "a\\.b\\*");
  const re = expectPattern(/x+/gy);
  assertEquals([re.source, re.flags], ["x+", ""]);
});

/** An admission that records its releases. */
function recordingAdmission(): Admission & {
  released: boolean[];
  lose(): void;
} {
  const lost = new AbortController();
  const released: boolean[] = [];
  return {
    released,
    lost: lost.signal,
    lose: () => lost.abort(),
    release(started) {
      released.push(started);
    },
  };
}

Deno.test("untilStarted() keeps the connect timeout on the watchdog's clock", async (t) => {
  const wait = (clock: ManualClock, admission: Admission | null) => ({
    node: "n1",
    shell: "s1",
    connectTimeout: 1000,
    admission,
    clock,
  });
  await t.step("no start line: a confirmed connect TimeoutError", async () => {
    const clock = new ManualClock();
    let settled = false;
    const p = untilStarted(new Promise(() => {}), wait(clock, null));
    p.catch(() => {}).finally(() => settled = true);
    await clock.advance(999);
    assertEquals(settled, false);
    await clock.advance(1 + CONFIRM_MS);
    const e = await assertRejects(() => p, TimeoutError);
    assertEquals(e.kind, "connect");
    assertEquals(
      e.message,
      'The connect timeout of 1000 ms expired opening shell "s1" on node "n1"',
    );
  });
  await t.step(
    "the start line in time: admission released as started",
    async () => {
      const clock = new ManualClock();
      const admission = recordingAdmission();
      const ready = Promise.withResolvers<void>();
      const p = untilStarted(ready.promise, wait(clock, admission));
      await clock.advance(500);
      ready.resolve();
      await p;
      assertEquals(admission.released, [true]);
      assertEquals(clock.sleeping, 0, "the watchdog stopped");
    },
  );
  await t.step(
    "a master found hung: a ConnectionError, so it is retried",
    async () => {
      const clock = new ManualClock();
      const admission = recordingAdmission();
      const p = untilStarted(new Promise(() => {}), wait(clock, admission));
      admission.lose();
      await assertRejects(() => p, ConnectionError, "stopped answering");
      await settle();
      assertEquals(clock.sleeping, 0, "the watchdog stopped");
    },
  );
});

Deno.test("openShell() goes through the target's admission", async (t) => {
  const node = localNode("admitted");
  const calls: number[] = [];
  const admission = recordingAdmission();
  let admit: NonNullable<ShellNode["admit"]> = (_signal, connectTimeout) => {
    calls.push(connectTimeout);
    return Promise.resolve(admission);
  };
  const target: ShellNode = {
    name: node.name,
    transport: node.transport,
    connectTimeout: node.connectTimeout,
    prepare: () => node.prepare(),
    transportArgv: (c) => node.transportArgv(c),
    admit: (signal, ms) => admit(signal, ms),
  };
  await t.step(
    "admitted with its connect timeout, released as started",
    async () => {
      await using sh = await openShell(target, "s", { connectTimeout: 4321 });
      assertEquals(calls, [4321]);
      assertEquals(admission.released, [true, false]);
      assertEquals((await sh.run("echo in")).stdout, "in\n");
    },
  );
  await t.step(
    "an abort while waiting for a slot rejects with its reason",
    async () => {
      admit = (signal) =>
        new Promise((resolve) =>
          signal.addEventListener("abort", () => resolve(null), { once: true })
        );
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error("no slot")), 50);
      await assertRejects(
        () => openShell(target, "s", { signal: ac.signal }),
        Error,
        "no slot",
      );
      clearTimeout(timer);
    },
  );
});

Deno.test({ name: "node.openShell() over ssh", ignore }, async (t) => {
  await using rig = await startLoopbackRig();
  await using node = rig.node({ silent: true });

  await t.step(
    "cd, export and shell variables persist across run()",
    async () => {
      await using sh = await node.openShell("worker1");
      await sh.run("cd /tmp");
      assertEquals((await sh.run("pwd")).stdout, "/tmp\n");
      await sh.run("export MODE=fast; count=3");
      const r = await sh.run('echo "$MODE $count"; sh -c \'echo "$MODE"\'');
      assertEquals(r.stdout, "fast 3\nfast\n");
    },
  );

  await t.step("named shells on one node are independent", async () => {
    await using a = await node.openShell("a");
    await using b = await node.openShell("b");
    await a.run("cd /tmp; export ONLY_A=1");
    await b.run("cd /");
    assertEquals((await a.run("pwd")).stdout, "/tmp\n");
    assertEquals((await b.run("pwd")).stdout, "/\n");
    assertEquals((await b.run('echo "[${ONLY_A-}]"')).stdout, "[]\n");
    assert(a.remotePid !== b.remotePid);
  });

  await t.step(
    "run() returns the command's own status and exact output",
    async () => {
      await using sh = await node.openShell("exact");
      const r = await sh.run("printf 'no newline'; echo oops >&2; (exit 7)");
      assertEquals([r.code, r.success, r.stdout, r.stderr], [
        7,
        false,
        "no newline",
        "oops\n",
      ]);
      const syntax = await sh.run("if then");
      assertEquals(syntax.code, 2);
      assert(syntax.stderr.length > 0);
      // Neither the syntax error nor a stdin reader ended the shell.
      assertEquals((await sh.run("cat; echo after")).stdout, "after\n");
      const quoted = await sh.run(`printf '%s\\n' "it's" '$HOME' "a\\\\b"`);
      assertEquals(quoted.stdout, "it's\n$HOME\na\\b\n");
    },
  );

  await t.step("runs are queued and answered in call order", async () => {
    await using sh = await node.openShell("queue");
    const results = await Promise.all(
      [1, 2, 3, 4].map((i) => sh.run(`sleep 0.0${5 - i}; echo ${i}`)),
    );
    assertEquals(results.map((r) => r.stdout), ["1\n", "2\n", "3\n", "4\n"]);
  });

  await t.step(
    "a command that exits the shell ends it with its status",
    async () => {
      await using sh = await node.openShell("quitter");
      const r = await sh.run("exit 3");
      assertEquals(r.code, 3);
      assert(sh.closed);
      await assertRejects(() => sh.run("true"), FiwiError, "has ended");
    },
  );

  await t.step("send() and expect() drive an interactive program", async () => {
    await using sh = await node.openShell("repl");
    await sh.send(
      `printf 'ready> '; while read -r l; do echo "got $l"; printf 'ready> '; done\n`,
    );
    assertEquals(await sh.expect(/ready> /, { timeout: 5000 }), "ready> ");
    await sh.send("hello\n");
    assertEquals(
      await sh.expect("ready> ", { timeout: 5000 }),
      "got hello\nready> ",
    );
  });

  await t.step("send() and expect() drive python3 -i", async () => {
    const has = await rig.sh("command -v python3");
    if (has.code !== 0) return;
    await using sh = await node.openShell("python");
    // -S: no site hooks, so no ~/.python_history is left on the node.
    await sh.send("python3 -S -i -c ''\n");
    await sh.expect(/>>> /, { timeout: 10_000 });
    await sh.send("print(6 * 7)\n");
    const out = await sh.expect(/>>> /, { timeout: 10_000 });
    assertEquals(out, "42\n>>> ");
    // Closing ends python with the shell; a run() right after exit() could
    // be read by python's own stdin buffer before it exits.
  });

  await t.step(
    "expect() times out cleanly and the shell stays usable",
    async () => {
      await using sh = await node.openShell("patient");
      await sh.send("echo partial\n");
      const t0 = performance.now();
      const e = await assertRejects(
        () => sh.expect(/never printed/, { timeout: 300 }),
        TimeoutError,
      );
      assertEquals(e.kind, "io");
      assert(performance.now() - t0 < 3000);
      assert(!sh.closed);
      assertEquals((await sh.run("echo still here")).stdout, "still here\n");
      // The text seen before the timeout is still there to match.
      assertEquals(
        await sh.expect("partial\n", { timeout: 1000 }),
        "partial\n",
      );
    },
  );

  await t.step("closing kills what the shell started", async () => {
    await using sh = await node.openShell("spawner");
    const m = marker();
    await sh.run(`sleep ${m} & sh -c 'sleep ${m}' &`);
    // sleep, sh -c 'sleep <m>' and its sleep, once the shells have forked.
    const left = () => countCarrying(m, rig);
    assertEquals(await settlesTo(left, 3, GONE_WITHIN), 3);
    await sh.close();
    await sh.close();
    assertEquals(await settlesToZero(left), 0);
  });

  await t.step(
    "a run timeout resolves with timedOut, closes the shell and kills the command",
    async () => {
      await using sh = await node.openShell("slow");
      const m = marker();
      const r = await sh.run(`echo begun; sleep ${m}`, { timeout: 300 });
      assertEquals(
        [r.timedOut, r.code, r.success, r.aborted, r.stdout],
        ["command", null, false, false, "begun\n"],
      );
      assertInstanceOf(r.error, TimeoutError);
      assertEquals((r.error as TimeoutError).kind, "command");
      assert(sh.closed);
      assertEquals(await settlesToZero(() => countCarrying(m, rig)), 0);
    },
  );

  await t.step("a name is unique while its shell is open", async () => {
    const first = await node.openShell("unique");
    await assertRejects(
      () => node.openShell("unique"),
      FiwiError,
      "already open",
    );
    await first.close();
    await using again = await node.openShell("unique");
    assertEquals((await again.run("echo ok")).stdout, "ok\n");
  });

  await t.step(
    "an unreachable node rejects with the connection's error",
    async () => {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      await using down = rig.node({ port, controlMaster: false });
      const e = await assertRejects(
        () => down.openShell("nowhere", { retry: false }),
        ConnectionError,
      );
      assertInstanceOf(e, ConnectionError);
    },
  );
});

Deno.test({
  name: "openShell() stops retrying when its signal aborts",
  ignore,
}, async () => {
  // Nothing listens on port 1: every attempt is refused, and the retry
  // would wait 10 s before the next one.
  await using node = new SshNode({
    name: "refused",
    host: "127.0.0.1",
    port: 1,
    controlMaster: false,
  });
  const ac = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ac.abort(new Error("stop opening")), 300);
  const e = await assertRejects(() =>
    node.openShell("never", { signal: ac.signal, retry: { delays: [10_000] } })
  );
  assertEquals((e as Error).message, "stop opening");
  assert(performance.now() - t0 < 3000, "the abort ended the retry wait");
});
