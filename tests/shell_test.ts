// Persistent shells on the loopback rig (and one on the local transport).
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
} from "jsr:@std/assert@^1";
import { ConnectionError, FiwiError, SshNode, TimeoutError } from "../mod.ts";
import { ShellOutput } from "../src/shell/_shell_output.ts";
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
  const node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
  });
  await using sh = await node.openShell("local1");
  await sh.run("cd /tmp && x=41");
  const r = await sh.run('echo "$PWD $((x + 1))"');
  assertEquals([r.stdout, r.code], ["/tmp 42\n", 0]);
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
    "a run timeout rejects, closes the shell and kills the command",
    async () => {
      await using sh = await node.openShell("slow");
      const m = marker();
      const e = await assertRejects(
        () => sh.run(`sleep ${m}`, { timeout: 300 }),
        TimeoutError,
      );
      assertEquals(e.kind, "command");
      assert(sh.closed);
      await sh.close();
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
