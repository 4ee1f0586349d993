// Power switching: each tool's command line and output parser (pure tables),
// the rig file's power: and serial: keys, rig.power() against stand-ins of
// uhubctl, ykushcmd, usbrelay and sispmctl on a loopback via node, a DUT
// whose power is its own sshd, node.waitReachable(), and `fiwi power`.
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  ConnectionError,
  parseRig,
  Rig,
  RigFileError,
  type SshNode,
} from "../mod.ts";
import {
  parsePowerState,
  powerArgv,
  type PowerSwitch,
  powerSwitchProblem,
} from "../src/rig/_power_tools.ts";
import { countLocal, skipReason, startLoopbackRig } from "./_loopback.ts";
import { startPowerLab, TOOLS } from "./_power_lab.ts";

const skip = skipReason();
const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("powerArgv() builds each tool's documented command line", () => {
  const cases: [PowerSwitch, "on" | "off" | "status", string[]][] = [
    [{ via: "pi", tool: "uhubctl", id: "1-1.4", port: 2 }, "off", [
      "uhubctl",
      "-l",
      "1-1.4",
      "-p",
      "2",
      "-a",
      "off",
    ]],
    [{ via: "pi", tool: "uhubctl", id: "1-1", port: 3 }, "status", [
      "uhubctl",
      "-l",
      "1-1",
      "-p",
      "3",
    ]],
    [{ via: "pi", tool: "ykushcmd", id: "YK21345", port: 1 }, "on", [
      "ykushcmd",
      "-s",
      "YK21345",
      "-u",
      "1",
    ]],
    [{ via: "pi", tool: "ykushcmd", port: 3 }, "off", ["ykushcmd", "-d", "3"]],
    [{ via: "pi", tool: "ykushcmd", port: 2 }, "status", [
      "ykushcmd",
      "-g",
      "2",
    ]],
    [{ via: "pi", tool: "usbrelay", id: "PSUIS", port: 2 }, "on", [
      "usbrelay",
      "PSUIS_2=1",
    ]],
    [{ via: "pi", tool: "usbrelay", id: "PSUIS", port: 2 }, "status", [
      "usbrelay",
    ]],
    [
      { via: "pi", tool: "sispmctl", id: "01:01:51:f6:a3", port: 4 },
      "off",
      ["sispmctl", "-D", "01:01:51:f6:a3", "-f", "4"],
    ],
    [
      { via: "pi", tool: "sispmctl", port: 1, command: "/opt/bin/sispmctl" },
      "status",
      ["/opt/bin/sispmctl", "-g", "1"],
    ],
  ];
  for (const [sw, action, argv] of cases) {
    assertEquals(powerArgv(sw, action), argv, `${sw.tool} ${action}`);
  }
});

Deno.test("parsePowerState() reads each tool's own output for the right port", () => {
  const uhub: PowerSwitch = { via: "pi", tool: "uhubctl", id: "1-1", port: 3 };
  const hub =
    "Current status for hub 1-1 [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]";
  const cases: [PowerSwitch, string, string][] = [
    [
      uhub,
      `${hub}\n  Port 3: 0503 power highspeed enable connect [0403:6001 FTDI]\n`,
      "on",
    ],
    [
      uhub,
      `${hub}\n  Port 3: 0503 power highspeed enable connect\nSent power off request\nNew status for hub 1-1 [..]\n  Port 3: 0000 off\n`,
      "off",
    ],
    [uhub, `${hub}\n  Port 3: 02a0 power 5gbps Rx.Detect\n`, "on"],
    [uhub, `${hub}\n  Port 2: 0000 off\n`, "unknown"],
    [uhub, "No compatible devices detected at location 1-1!\n", "unknown"],
    [
      { via: "pi", tool: "ykushcmd", port: 2 },
      "\n\nDownstream port 2 is ON\n\n",
      "on",
    ],
    [
      { via: "pi", tool: "ykushcmd", port: 2 },
      "\n\nDownstream port 2 is OFF\n\n",
      "off",
    ],
    [
      { via: "pi", tool: "ykushcmd", port: 1 },
      "\n\nDownstream port 2 is ON\n\n",
      "unknown",
    ],
    [
      { via: "pi", tool: "usbrelay", id: "PSUIS", port: 2 },
      "PSUIS_1=1\nPSUIS_2=0\n",
      "off",
    ],
    [
      { via: "pi", tool: "usbrelay", id: "PSUIS", port: 1 },
      "PSUIS_1=1\nPSUIS_2=0\n",
      "on",
    ],
    [
      { via: "pi", tool: "usbrelay", id: "OTHER", port: 1 },
      "PSUIS_1=1\n",
      "unknown",
    ],
    [
      { via: "pi", tool: "sispmctl", port: 1 },
      "Status of outlet 1:\ton\n",
      "on",
    ],
    [
      { via: "pi", tool: "sispmctl", port: 4 },
      "Status of outlet 4:\toff\n",
      "off",
    ],
  ];
  for (const [sw, out, want] of cases) {
    assertEquals(parsePowerState(sw, out), want, `${sw.tool}: ${out}`);
  }
});

Deno.test("powerSwitchProblem() names the key at fault for unknown tools, ports out of range and missing ids", () => {
  const at = (sw: PowerSwitch) => powerSwitchProblem(sw)?.key ?? null;
  assertEquals(at({ via: "p", tool: "uhubctl", id: "1-1", port: 14 }), null);
  assertEquals(at({ via: "p", tool: "uhubctl", id: "1-1", port: 15 }), "port");
  assertEquals(at({ via: "p", tool: "ykushcmd", port: 4 }), "port");
  assertEquals(at({ via: "p", tool: "usbrelay", port: 1 }), "id");
  assertEquals(at({ via: "p", tool: "sispmctl", id: "a b", port: 1 }), "id");
  assertEquals(at({ via: "p", tool: "pdu" as "uhubctl", port: 1 }), "tool");
  assertMatch(
    powerSwitchProblem({ via: "p", tool: "ykushcmd", port: 0 })!.message,
    /^Power port 0 is out of range for ykushcmd: give a downstream port from 1 to 3$/,
  );
});

const RIG_HEAD = "rigs:\n  lab:\n    nodes:\n      pi1: 10.0.0.2\n";

Deno.test("parseRig() reads power: and serial: and refuses bad ones at their line and column", async (t) => {
  const rig = parseRig(
    RIG_HEAD +
      '      dut1:\n        host: 10.0.0.11\n        power: { via: pi1, tool: uhubctl, id: "1-1", port: 2 }\n' +
      "        serial: { via: pi1, port: /dev/ttyUSB0, baud: 115200 }\n",
    { file: "r.yaml" },
  );
  assertEquals(rig.powerSwitches.get("dut1"), {
    via: "pi1",
    tool: "uhubctl",
    id: "1-1",
    port: 2,
  });
  assertEquals(rig.serialPorts.get("dut1"), {
    via: "pi1",
    port: "/dev/ttyUSB0",
    baud: 115200,
  });
  const bad: [string, string, string][] = [
    [
      "power: { via: pi1, tool: uhubctl, id: 1-1, prot: 2 }",
      "typo",
      'r.yaml:7:52: Unknown key "prot" in the power of node "dut1": did you mean "port"?',
    ],
    [
      "power: { via: pi2, tool: uhubctl, id: 1-1, port: 2 }",
      "via",
      'r.yaml:7:23: Via "pi2" is not a node of rig "lab": did you mean "pi1"?',
    ],
    [
      "power: { via: pi1, tool: uhubctrl, id: 1-1, port: 2 }",
      "tool",
      'r.yaml:7:34: Unknown power tool "uhubctrl": did you mean "uhubctl"?',
    ],
    [
      "power: { via: pi1, tool: ykushcmd, port: 5 }",
      "port",
      'r.yaml:7:50: Power port 5 is out of range for ykushcmd: give a downstream port from 1 to 3 (node "dut1")',
    ],
    [
      "power: { via: pi1, tool: usbrelay, port: 1 }",
      "id",
      'r.yaml:7:9: Power tool usbrelay needs "id": the relay board serial, e.g. "PSUIS" (node "dut1")',
    ],
    [
      "power: { via: dut1, tool: ykushcmd, port: 1 }",
      "self",
      'r.yaml:7:23: Node "dut1" cannot be its own via: name the node its switch or serial adapter is plugged into',
    ],
    [
      "serial: { via: pi1, port: /dev/ttyUSB0, baud: 12345 }",
      "baud",
      "r.yaml:7:55: Invalid baud 12345: use a rate stty knows, e.g. 9600, 57600 or 115200",
    ],
    [
      "serial: { via: pi1, baud: 9600 }",
      "port",
      'r.yaml:7:9: The serial of node "dut1" has no "port": add it',
    ],
  ];
  for (const [line, name, message] of bad) {
    await t.step(name, () => {
      const e = assertThrows(
        () =>
          parseRig(
            `${RIG_HEAD}      dut1:\n        host: 10.0.0.11\n        ${line}\n`,
            {
              file: "r.yaml",
            },
          ),
        RigFileError,
      );
      assertEquals(e.message, message);
    });
  }
});

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
      const results = await power.power("a,b,c", "cycle", { offTime: 400 });
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
    const node = new (await import("../mod.ts")).SshNode({
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
