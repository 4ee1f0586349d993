// Power switching on the loopback rig: rig.power() against stand-ins of
// uhubctl, ykushcmd, usbrelay and sispmctl on a via node, a DUT whose power
// is its own sshd, node.waitReachable(), and `fiwi power` (the pure side is
// in power_tools_test.ts).
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertInstanceOf,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  ConnectionError,
  type PowerSwitch,
  Rig,
  SshNode,
} from "../mod.ts";
import { countLocal, skipReasonFor, startLoopbackRig } from "./_loopback.ts";
import { startPowerLab, TOOLS } from "./_power_lab.ts";

// The tool stand-ins and the DUT's sshd live in the rig's local temp dir.
const skip = skipReasonFor("power tests", "node-is-local");
const ROOT = new URL("../", import.meta.url).pathname;

/** A rig of a via node and nodes powered through it, on the loopback rig. */
function labRig(
  via: SshNode,
  nodes: SshNode[],
  switches: [string, Omit<PowerSwitch, "via">][],
): Rig {
  return new Rig("lab", [via, ...nodes], {
    file: "lab.yaml",
    powerSwitches: new Map(
      switches.map(([name, sw]) => [name, { via: via.name, ...sw }]),
    ),
  });
}

const INITIAL: Record<(typeof TOOLS)[number], [string, string]> = {
  uhubctl: ["1-1", "1-1 1 on\n1-1 2 on\n1-1 3 on\n1-1 4 on"],
  ykushcmd: ["YK21345", "YK21345 1 on\nYK21345 2 on\nYK21345 3 on"],
  usbrelay: ["PSUIS", "PSUIS 1 on\nPSUIS 2 on"],
  sispmctl: ["01:01:51:f6:a3", "01:01:51:f6:a3 1 on\n01:01:51:f6:a3 2 on"],
};

Deno.test({
  name:
    "rig.power() switches each tool's stand-in off, on, through a cycle, and reads it back",
  ignore: skip !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    await using lab = await startPowerLab(rig);
    const via = rig.node({ name: "pi1" });
    const dut = rig.node({ name: "dut1", index: 1 });
    try {
      for (const tool of TOOLS) {
        await t.step(tool, async () => {
          const [id, lines] = INITIAL[tool];
          await lab.setState(tool, lines.split("\n"));
          const power = labRig(via, [dut], [["dut1", {
            tool,
            id,
            port: 2,
            command: lab.tool(tool),
          }]]);
          const key = `${id} 2`;
          const off = await power.power("dut1", "off");
          assertEquals(
            [off[0].state, off[0].success, off[0].error],
            ["off", true, null],
          );
          assertEquals((await lab.state(tool))[key], "off");
          assertEquals((await lab.state(tool))[`${id} 1`], "on");
          const status = await power.power("dut1", "status");
          assertEquals([status[0].state, status[0].success], ["off", true]);
          const on = await power.power([dut], "on");
          assertEquals([on[0].state, on[0].success], ["on", true]);
          assertEquals((await lab.state(tool))[key], "on");
          const before = (await lab.events()).length;
          const cycle = await power.power("dut1", "cycle", { offTime: 300 });
          assertEquals([cycle[0].state, cycle[0].success], ["on", true]);
          const [down, up] = (await lab.events()).slice(before);
          assertEquals([down.state, up.state], ["off", "on"]);
          assertGreaterOrEqual(up.at - down.at, 300);
          assertEquals((await lab.state(tool))[key], "on");
        });
      }
    } finally {
      await via.close();
    }
  },
});

Deno.test({
  name:
    "rig.power() switches nodes behind one switch one at a time and different switches in parallel",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    await using lab = await startPowerLab(rig);
    await lab.setState("uhubctl", ["1-1 1 on", "1-1 2 on", "2-1 1 on"]);
    const via = rig.node({ name: "pi1" });
    const [a, b, c] = ["a", "b", "c"].map((name) => rig.node({ name }));
    const cmd = lab.tool("uhubctl");
    const power = labRig(via, [a, b, c], [
      ["a", { tool: "uhubctl", id: "1-1", port: 1, command: cmd }],
      ["b", { tool: "uhubctl", id: "1-1", port: 2, command: cmd }],
      ["c", { tool: "uhubctl", id: "2-1", port: 1, command: cmd }],
    ]);
    try {
      const reported: string[] = [];
      const results = await power.power("a,b,c", "cycle", {
        offTime: 400,
        onResult: (r) => reported.push(r.node),
      });
      // Each result is reported once, as it is final: c's switch is not
      // behind a's and b's, so c is done before b.
      assertEquals(reported.length, 3);
      assert(reported.indexOf("c") < reported.indexOf("b"));
      assertEquals(results.map((r) => [r.node, r.success]), [
        ["a", true],
        ["b", true],
        ["c", true],
      ]);
      const ev = await lab.events();
      const at = (id: string, port: number, state: string) =>
        ev.find((e) => e.id === id && e.port === port && e.state === state)!
          .at;
      // Hub 1-1: b goes off only after a is back on.
      assertGreaterOrEqual(at("1-1", 2, "off"), at("1-1", 1, "on"));
      // Hub 2-1 does not wait for hub 1-1.
      assert(at("2-1", 1, "off") < at("1-1", 1, "on"));
    } finally {
      await via.close();
    }
  },
});

Deno.test({
  name:
    "rig.power() switches nothing when a via node is unreachable, a tool is missing or a node has no power:",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    await using lab = await startPowerLab(rig);
    await lab.setState("uhubctl", ["1-1 1 on", "1-1 2 on"]);
    const via = rig.node({ name: "pi1" });
    const dead = rig.node({ name: "pi9", port: 1, connectTimeout: 3000 });
    const [a, b, c] = ["a", "b", "c"].map((name) => rig.node({ name }));
    const power = new Rig("lab", [via, dead, a, b, c], {
      file: "lab.yaml",
      powerSwitches: new Map<string, PowerSwitch>([
        ["a", {
          via: "pi1",
          tool: "uhubctl",
          id: "1-1",
          port: 1,
          command: lab.tool("uhubctl"),
        }],
        ["b", {
          via: "pi1",
          tool: "uhubctl",
          id: "1-1",
          port: 2,
          command: `${lab.dir}/missing/uhubctl`,
        }],
        ["c", { via: "pi9", tool: "sispmctl", port: 1 }],
      ]),
    });
    try {
      const missing = await assertRejects(
        () => power.power("a,b", "off"),
        ConfigurationError,
      );
      assertEquals(
        missing.message,
        `Power tool "${lab.dir}/missing/uhubctl" is missing on "pi1" for the uhubctl "1-1" port 2 on "pi1" that powers node "b": install it there or give its path as "command:"; nothing was switched`,
      );
      const unreachable = await assertRejects(
        () => power.power("a,c", "off"),
        ConnectionError,
      );
      assertMatch(
        unreachable.message,
        /^Cannot reach "pi9" to run the sispmctl port 1 on "pi9" that powers node "c": .+; nothing was switched$/,
      );
      const none = await assertRejects(
        () => power.power("a,pi1", "cycle"),
        ConfigurationError,
      );
      assertEquals(
        none.message,
        'Node "pi1" has no power switch: add "power: { via, tool, id, port }" to it in lab.yaml',
      );
      assertEquals(await lab.state("uhubctl"), {
        "1-1 1": "on",
        "1-1 2": "on",
      });
      assertEquals(await lab.events(), []);
    } finally {
      await via.close();
    }
  },
});

Deno.test({
  name:
    "a DUT powered by the uhubctl stand-in: off makes it unreachable, on with wait returns once it answers, cycle with wait does both",
  ignore: skip !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    await using lab = await startPowerLab(rig, {
      dut: { tool: "uhubctl", id: "1-1", port: 1 },
    });
    await lab.setState("uhubctl", ["1-1 1 off"]);
    const via = rig.node({ name: "pi1" });
    const dut = lab.dut();
    const power = labRig(via, [dut], [["dut", {
      tool: "uhubctl",
      id: "1-1",
      port: 1,
      command: lab.tool("uhubctl"),
    }]]);
    try {
      await t.step("on with wait", async () => {
        const [r] = await power.power("dut", "on", {
          wait: true,
          timeout: 20_000,
        });
        assertEquals([r.success, r.state, r.error], [true, "on", null]);
        assert(r.reachableAfterMs !== null && r.reachableAfterMs >= 0);
        assertEquals(
          (await dut.rexec("echo up", { retry: false })).stdout,
          "up\n",
        );
      });
      await t.step("off", async () => {
        const [r] = await power.power("dut", "off", { wait: true });
        assertEquals([r.success, r.state, r.reachableAfterMs], [
          true,
          "off",
          null,
        ]);
        assertEquals(await lab.dutRunning(), false);
        const run = await dut.rexec("true", { retry: false });
        assertEquals([run.started, run.success], [false, false]);
        assertInstanceOf(run.error, ConnectionError);
      });
      await t.step(
        "waitReachable() gives up at its timeout and leaves no client",
        async () => {
          const t0 = performance.now();
          assertEquals(
            await dut.waitReachable({ timeout: 1500, interval: 200 }),
            false,
          );
          assertGreaterOrEqual(performance.now() - t0, 1500);
          assertEquals(await countLocal(`-p ${lab.dutPort} `), 0);
        },
      );
      await t.step("waitReachable() ends when its signal aborts", async () => {
        const abort = new AbortController();
        const waiting = dut.waitReachable({
          signal: abort.signal,
          interval: 100,
        });
        setTimeout(() => abort.abort(), 300);
        assertEquals(await waiting, false);
      });
      await t.step("cycle with wait", async () => {
        const before = (await lab.events()).length;
        const [r] = await power.power("dut", "cycle", {
          wait: true,
          offTime: 500,
          timeout: 20_000,
        });
        assertEquals([r.success, r.state], [true, "on"]);
        assert(r.reachableAfterMs !== null);
        const [down, up] = (await lab.events()).slice(before);
        assertEquals([down.state, up.state], ["off", "on"]);
        assertGreaterOrEqual(up.at - down.at, 500);
        assertEquals(await lab.dutRunning(), true);
        assertEquals(
          (await dut.rexec("echo again", { retry: false })).stdout,
          "again\n",
        );
      });
    } finally {
      await dut.close();
      await via.close();
    }
    assertEquals(await countLocal(`-p ${lab.dutPort} `), 0);
  },
});

Deno.test({
  name: "waitReachable() rejects bad options",
  async fn() {
    const node = new SshNode({
      name: "here",
      host: "localhost",
      transport: "local",
    });
    await assertRejects(
      () => node.waitReachable({ timeout: -1 }),
      ConfigurationError,
      "Invalid waitReachable timeout -1",
    );
    await assertRejects(
      () => node.waitReachable({ interval: NaN }),
      ConfigurationError,
      "Invalid waitReachable interval NaN",
    );
    assertEquals(await node.waitReachable({ timeout: 5000 }), true);
  },
});

async function fiwiPower(args: string[], cwd: string, controlDir: string) {
  const task = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks
    .power as string;
  const flags = task.replace(/^deno run /, "").replace(
    / scripts\/power\.ts$/,
    "",
  )
    .split(" ");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      ...flags,
      `${ROOT}scripts/power.ts`,
      ...args,
    ],
    cwd,
    env: { FIWI_CONTROL_DIR: controlDir, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

Deno.test({
  name:
    "fiwi power: on --wait, status and off on the DUT exit 0; a node without power: exits 2 with one line naming it",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    await using lab = await startPowerLab(rig, {
      dut: { tool: "uhubctl", id: "1-1", port: 1 },
    });
    await lab.setState("uhubctl", ["1-1 1 off"]);
    const file = `${rig.dir}/rigs.yaml`;
    await Deno.writeTextFile(
      file,
      [
        "rigs:",
        "  lab:",
        `    defaults: { user: ${rig.user}, sshConfig: ssh_config }`,
        "    nodes:",
        `      pi1: { host: 127.0.0.1, port: ${rig.port} }`,
        `      dut: { host: 127.0.0.1, port: ${lab.dutPort}, power: { via: pi1, tool: uhubctl, id: "1-1", port: 1, command: ${
          lab.tool("uhubctl")
        } } }`,
        `      bare: { host: 127.0.0.1, port: ${rig.port} }`,
        "",
      ].join("\n"),
    );
    const cm = `${rig.dir}/cm`;
    const common = ["--rig", file, "--no-log"];
    const on = await fiwiPower(
      ["on", "-w", "dut", "--wait", "--timeout", "20s", "--json", ...common],
      rig.dir,
      cm,
    );
    assertEquals(on.code, 0, on.stderr);
    const [record, summary] = on.stdout.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals([record.node, record.action, record.state, record.success], [
      "dut",
      "on",
      "on",
      true,
    ]);
    assert(typeof record.reachableAfterMs === "number");
    assertEquals(summary, { summary: { nodes: 1, ok: 1 } });
    const status = await fiwiPower(
      ["status", "-w", "dut", ...common],
      rig.dir,
      cm,
    );
    assertEquals([status.code, status.stdout], [0, "dut  on\n"]);
    const off = await fiwiPower(["off", "-w", "dut", ...common], rig.dir, cm);
    assertEquals([off.code, off.stdout], [0, "dut  off\n"]);
    assertEquals(await lab.dutRunning(), false);
    const bare = await fiwiPower(
      ["cycle", "-w", "bare", ...common],
      rig.dir,
      cm,
    );
    assertEquals(bare.code, 2);
    assertEquals(
      bare.stderr,
      `power: Node "bare" has no power switch: add "power: { via, tool, id, port }" to it in ${file}\n`,
    );
    const usage = await fiwiPower(["reboot", ...common], rig.dir, cm);
    assertEquals([usage.code, usage.stderr], [
      2,
      'power: Unknown action "reboot": use "on", "off", "cycle" or "status"\n',
    ]);
  },
});
