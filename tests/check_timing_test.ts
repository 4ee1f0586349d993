// `fiwi check` on a probe that timed out: the message names the limit that
// ran out, with the value the run used, so it agrees with the time column
// (the run's duration). A node whose output is late stands in for a loaded
// one: deterministic, unlike load.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { SshNode, TimeoutError } from "../mod.ts";
import { type ProbeLimits, verdict } from "../scripts/check.ts";
import { fiwi } from "./_cli_harness.ts";
import { fakeResult } from "./_fake_result.ts";

const LIMITS: ProbeLimits = { connect: 15_000, io: 5_000, command: 10_000 };

Deno.test("check's verdict names the timeout that fired, with the limit the probe ran with", async (t) => {
  const node = new SshNode({ name: "n2", host: "10.0.0.2" });
  const timedOut = (kind: "connect" | "command" | "io", durationMs: number) =>
    fakeResult({
      node: "n2",
      success: false,
      code: null,
      signal: "SIGTERM",
      timedOut: kind,
      error: new TimeoutError(kind, `The ${kind} timeout expired`),
      durationMs,
    });

  await t.step("the command limit: never more than the time taken", () => {
    const c = verdict(node, timedOut("command", 10_012), LIMITS);
    assertEquals([c.problem, c.ms], ["command", 10_012]);
    assertEquals(c.detail, '"echo fiwi-check-ok" did not finish within 10.0 s');
  });

  await t.step("silence: the io limit, not the command's", () => {
    const c = verdict(node, timedOut("io", 5_230), LIMITS);
    assertEquals([c.problem, c.ms], ["command", 5_230]);
    assertEquals(
      c.detail,
      '"echo fiwi-check-ok" printed nothing for 5.00 s (ioTimeout)',
    );
    assertMatch(String(c.hint), /raise "ioTimeout"/);
  });

  await t.step(
    "a start line after the connect limit ran out: a late login",
    () => {
      const c = verdict(node, timedOut("connect", 7_470), {
        ...LIMITS,
        connect: 7_000,
      });
      assertEquals(
        [c.problem, c.reachable, c.auth, c.command, c.ms],
        ["timeout", true, true, null, 7_470],
      );
      assertEquals(
        c.hint,
        "No login within 7.00 s as root@10.0.0.2: the node may be down, unreachable, or stuck before the shell starts",
      );
    },
  );
});

Deno.test("fiwi check on a node that goes silent names its ioTimeout, which the time column covers", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_check_timing_" });
  try {
    // The node's shell: the start line (stderr) at once, stdout 5 s late.
    await Deno.mkdir(`${cwd}/bin`);
    await Deno.writeTextFile(
      `${cwd}/bin/sh`,
      '#!/bin/sh\n/bin/sh "$@" | { sleep 5; exec cat; }\n',
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      "rigs:\n  here:\n    nodes:\n      slow: { transport: local, ioTimeout: 1s }\n",
    );
    const r = await fiwi(["check", "--no-log", "--json"], {
      cwd,
      env: { PATH: `${cwd}/bin:${Deno.env.get("PATH")}` },
    });
    assertEquals(r.code, 1, r.stderr);
    const [c] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals([c.node, c.problem, c.command], ["slow", "command", false]);
    assertEquals(
      c.detail,
      '"echo fiwi-check-ok" printed nothing for 1.00 s (ioTimeout)',
    );
    assert(c.ms >= 1000, `time ${c.ms} ms is under the 1 s limit it names`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
