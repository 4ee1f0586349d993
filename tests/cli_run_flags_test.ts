// `fiwi run`'s pdsh/clush habits, as a user meets them: the real command
// against the loopback rig (nodes told apart by the address they reached),
// -S (largest remote exit code), -N (no prefix), --diff, -u (command
// timeout), -b through the library's dshbak printer, and a dead node's
// message from ssh itself in every output. The -S rule alone is a table.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  collate,
  ConnectionError,
  formatGroups,
  type RunResult,
  TimeoutError,
} from "../mod.ts";
import { maxExitCode } from "../scripts/_runs.ts";
import { type Finished, fiwi } from "./_cli_harness.ts";
import { fakeResult } from "./_fake_result.ts";
import { type LoopbackRig, skipHere, startLoopbackRig } from "./_loopback.ts";

/**
 * n1 and n3 on the first address, n2 on the second, `dead` where nothing
 * listens.
 */
function rigYaml(rig: LoopbackRig): string {
  return `defaults:
  user: ${rig.user}
${rig.port === undefined ? "" : `  port: ${rig.port}\n`}  sshConfig: ${
    rig.sshConfig || "null"
  }
rigs:
  loop:
    nodes:
      n1: { host: ${rig.hosts[0]}, vars: { slot: "it's 1" } }
      n2: { host: ${rig.hosts[1]}, vars: { slot: "$(two)" } }
      n3: ${rig.hosts[0]}
      dead: { host: 127.0.0.1, port: 1 }
`;
}

/** A shell snippet: `$at` is 1 on the first address, 2 on the second. */
function byAddress(rig: LoopbackRig, then: string): string {
  return `set -- $SSH_CONNECTION; if [ "$3" = "${
    rig.hosts[1]
  }" ]; then at=2; else at=1; fi; ${then}`;
}

Deno.test("run -S: the largest remote exit code; no code of its own counts 255; stopped nodes do not count", () => {
  const refused = new ConnectionError('Cannot reach node "d": refused');
  const timeout = new TimeoutError("command", "The command timeout expired");
  const failed = (code: number | null, more: Partial<RunResult> = {}) =>
    fakeResult({ code, success: false, ...more });
  const table: [string, RunResult[], number][] = [
    ["all ok", [fakeResult(), fakeResult()], 0],
    ["nothing ran", [], 0],
    ["3 and 7", [failed(3), fakeResult(), failed(7)], 7],
    ["unreachable", [failed(3), failed(255, { error: refused })], 255],
    [
      "timed out",
      [failed(null, {
        timedOut: "command",
        error: timeout,
        signal: "SIGTERM",
      })],
      255,
    ],
    ["killed by a signal", [failed(null, { signal: "SIGKILL" })], 255],
    [
      "stopped by --fail-fast",
      [failed(4), failed(null, { aborted: true, signal: "SIGTERM" })],
      4,
    ],
  ];
  for (const [what, results, want] of table) {
    assertEquals(maxExitCode(results), want, what);
  }
});

Deno.test({
  name: "fiwi run: -S, -N, --diff, -u and -b on the loopback rig",
  ignore: skipHere("fiwi run flags", "second-address"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_run_flags_" });
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, rigYaml(rig));
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    const run = (...args: string[]): Promise<Finished> =>
      fiwi(["run", "--no-log", ...args], { cwd, env });
    try {
      await t.step("-S exits with the largest remote exit code", async () => {
        const cmd = byAddress(rig, "[ $at = 1 ] && exit 3; exit 7");
        const maxed = await run("-S", "-w", "n[1-2]", cmd);
        assertEquals(maxed.code, 7, maxed.stderr);
        assertMatch(
          maxed.stderr,
          /^exit 3: n1\nexit 7: n2\n0\/2 nodes ok in /m,
        );
        const plain = await run("-w", "n[1-2]", cmd);
        assertEquals(plain.code, 1, "without -S: 1, some node failed");
        const ok = await run("-S", "-w", "n[1-2]", "true");
        assertEquals(ok.code, 0, ok.stderr);
      });

      await t.step(
        "per-node values: {name} and vars: arrive quoted; an unknown key stops the run before any node",
        async () => {
          const r = await run("-w", "n[1-2]", "echo {name} {slot} '{x,y}'");
          assertEquals(r.code, 0, r.stderr);
          assertEquals(r.stdout.split("\n").sort(), [
            "",
            "n1: n1 it's 1 {x,y}",
            "n2: n2 $(two) {x,y}",
          ]);
          const bad = await run("-w", "n[1-2]", "echo ran; echo {rack}");
          assertEquals([bad.code, bad.stdout], [2, ""]);
          assertMatch(
            bad.stderr,
            /^run: Unknown key "rack" in the command for node "n1": .*; 1 more node fails too: n2\n$/,
          );
        },
      );

      await t.step("-N prints the lines alone, stdout and stderr", async () => {
        const r = await run(
          "-N",
          "-w",
          "n[1-2]",
          byAddress(rig, "echo out$at; echo err$at >&2"),
        );
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout.split("\n").sort(), ["", "out1", "out2"]);
        assertEquals(
          r.stderr.split("\n").filter((l) => l.startsWith("err")).sort(),
          ["err1", "err2"],
        );
        const prefixed = await run("-w", "n1", "echo x");
        assertEquals(prefixed.stdout, "n1: x\n");
      });

      await t.step(
        "--diff shows each output against the most common one",
        async () => {
          const cmd = byAddress(
            rig,
            "echo a; [ $at = 2 ] && echo B || echo b; echo c",
          );
          const r = await run("--diff", "-w", "n[1-3]", cmd);
          assertEquals(r.code, 0, r.stderr);
          assertEquals(
            r.stdout,
            "--- n[1,3] (2 nodes)\n+++ n2\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
          );
          assertMatch(r.stderr, /^ok: n\[1-3\] \(exit 0, /m);
          const same = await run("--diff", "-w", "n[1-3]", "echo same");
          assertEquals([same.code, same.stdout], [0, ""], same.stderr);
          const both = await run("--diff", "-b", "true");
          assertEquals([both.code, both.stdout], [2, ""]);
          assertEquals(
            both.stderr,
            'run: Give either "--diff" or "-b", not both\n',
          );
        },
      );

      await t.step(
        "-u stops the command; -S counts the timeout as 255",
        async () => {
          const t0 = performance.now();
          const r = await run("-S", "-u", "1s", "-w", "n1", "sleep 30");
          assert(performance.now() - t0 < 20_000, "stopped long before 30 s");
          assertEquals(r.code, 255, r.stderr);
          assertMatch(
            r.stderr,
            /^command timeout: n1\n {2}The command timeout of 1000 ms expired on node "n1" running "sleep 30"\n/m,
          );
          const long = await run("--timeout", "1s", "-w", "n1", "sleep 30");
          assertEquals(long.code, 1, long.stderr);
          // A value is the next word, even one that looks like an option.
          const bad = await run("-u", "-5s", "true");
          assertEquals([bad.code, bad.stdout], [2, ""]);
          assertEquals(
            bad.stderr,
            'run: Invalid --timeout "-5s": give a duration of 0 or more, like "30s"\n',
          );
        },
      );

      await t.step(
        "-b prints what formatGroups() prints; -N drops the headers",
        async () => {
          const cmd = byAddress(rig, "echo same; [ $at = 2 ] && echo other");
          const r = await run("-b", "-w", "n[1-3]", cmd);
          assertEquals(r.code, 1, r.stderr);
          const groups = collate([
            fakeResult({ node: "n1", stdout: "same\n" }),
            fakeResult({ node: "n2", stdout: "same\nother\n" }),
            fakeResult({ node: "n3", stdout: "same\n" }),
          ]);
          assertEquals(r.stdout, formatGroups(groups));
          assertEquals(
            r.stdout,
            "----------------\nn[1,3]\n----------------\nsame\n" +
              "----------------\nn2\n----------------\nsame\nother\n",
          );
          const bare = await run("-b", "-N", "-w", "n[1-3]", cmd);
          assertEquals(bare.stdout, "same\nsame\nother\n");
        },
      );

      await t.step(
        "a dead node: ssh's own message in the summary, in -b and in --json, and 255 under -S",
        async () => {
          const said =
            'Cannot reach node "dead": ssh: connect to host 127.0.0.1 port 1: Connection refused';
          const r = await run("-S", "-w", "n1,dead", "echo up");
          assertEquals(r.code, 255, r.stderr);
          assertEquals(r.stdout, "n1  : up\n");
          assertMatch(r.stderr, /^exit 0: n1\nunreachable: dead\n/m);
          assertEquals(
            r.stderr.split("\n").filter((l) => l.startsWith("  ")),
            [`  ${said}`],
          );
          assert(!r.stderr.includes("exit code 255"), r.stderr);
          const json = await run("--json", "-w", "dead", "true");
          const [record] = json.stdout.trim().split("\n").map((l) =>
            JSON.parse(l)
          );
          assertEquals(record.error.message, said);
          const collated = await run("-b", "-w", "dead", "true");
          assertMatch(
            collated.stdout,
            /^dead\n-+\nssh: connect to host 127\.0\.0\.1 port 1: Connection refused\n$/m,
          );
          assertEquals(
            collated.stderr.split("\n").filter((l) => l.startsWith("  ")),
            [`  ${said}`],
          );
        },
      );
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
