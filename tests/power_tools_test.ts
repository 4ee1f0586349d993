// The pure side of power switching: each tool's command line and output
// parser (tables from the tools' documentation and real output), the
// switch checks, and the rig file's power: and serial: keys with their
// errors at file:line:column.
import {
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  parseRig,
  Rig,
  RigFileError,
  SshNode,
} from "../mod.ts";
import {
  parsePowerState,
  powerArgv,
  type PowerSwitch,
  powerSwitchProblem,
} from "../src/hardware/_power_tools.ts";

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

Deno.test("rig.power() refuses an unknown tool, a port out of range or a via outside the rig before running anything", async () => {
  const nodes = ["pi1", "a"].map((name) =>
    new SshNode({ name, host: "localhost", transport: "local" })
  );
  const rigWith = (sw: PowerSwitch) =>
    new Rig("lab", nodes, {
      file: "lab.yaml",
      powerSwitches: new Map([["a", sw]]),
    });
  const cases: [PowerSwitch, string][] = [
    [
      { via: "pi1", tool: "pdu" as PowerSwitch["tool"], port: 1 },
      'Power switch of node "a": Unknown power tool "pdu": use "uhubctl", "ykushcmd", "usbrelay", "sispmctl"',
    ],
    [
      { via: "pi1", tool: "usbrelay", id: "PSUIS", port: 9 },
      'Power switch of node "a": Power port 9 is out of range for usbrelay: give a relay from 1 to 8',
    ],
    [
      { via: "pi7", tool: "sispmctl", port: 1 },
      'Power switch of node "a" is on "pi7", which is not a node of the rig: name one in lab.yaml',
    ],
  ];
  for (const [sw, message] of cases) {
    await assertRejects(
      () => rigWith(sw).power("a", "on"),
      ConfigurationError,
      message,
    );
  }
  await assertRejects(
    () => rigWith(cases[0][0]).power("a", "reboot" as "on"),
    ConfigurationError,
    'Invalid power action "reboot": use "on", "off", "cycle" or "status"',
  );
});
