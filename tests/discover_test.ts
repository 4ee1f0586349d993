// Discovery: the POSIX sh probe run for real (local sh, and over ssh on the
// loopback rig) against the fixture sysfs tree, the merge of its records,
// and the power-device table.
import { assert, assertEquals } from "jsr:@std/assert@^1";
import {
  discover,
  findPowerDevice,
  type NodeInventory,
  POWER_DEVICES,
  SshNode,
} from "../mod.ts";
import { parseProbeOutput, probeCommand } from "../src/discover/discover.ts";
import { skipHere, skipReason, startLoopbackRig } from "./_loopback.ts";

const FIXTURE = new URL("./fixtures/sysroot", import.meta.url).pathname;

/** What the fixture tree holds, as the merged inventory must show it. */
function assertFixtureInventory(inv: NodeInventory): void {
  assertEquals(inv.ok, true, inv.error ?? "");
  assertEquals(
    inv.usb.map((u) => [u.port, `${u.vendorId}:${u.productId}`, u.hub]),
    [
      ["1-1", "2109:2817", true],
      ["1-1.1", "16c0:05df", false],
      ["1-1.2", "0403:6001", false],
      ["1-1.3", "04d8:f2f7", false],
      ["1-2", "2e8a:000a", false],
    ],
    "root hub usb1 left out, ports in numeric order",
  );
  assertEquals(inv.usb[2], {
    port: "1-1.2",
    vendorId: "0403",
    productId: "6001",
    manufacturer: "FTDI",
    product: "FT232R USB UART",
    serial: "A50285BI",
    bus: 1,
    device: 4,
    speed: "12",
    hub: false,
  });
  assertEquals(inv.serial, [
    {
      device: "/dev/ttyACM0",
      byId: "/dev/serial/by-id/usb-Raspberry_Pi_Pico_E6614864D3417F2F-if00",
      usbPort: "1-2",
      usbId: "2e8a:000a",
    },
    {
      device: "/dev/ttyUSB0",
      byId: "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
      usbPort: "1-1.2",
      usbId: "0403:6001",
    },
  ]);
  assertEquals(inv.power, [
    { name: "AC", type: "Mains", online: true },
    {
      name: "BAT0",
      type: "Battery",
      status: "Discharging",
      capacity: 87,
      voltage: 12.1,
      manufacturer: "SMP",
      model: "5B10W13975",
    },
  ]);
  assertEquals(
    inv.powerControl.map((c) => [c.kind, c.usbPort, c.tool, c.serial]),
    [
      ["switchable-hub", "1-1", "uhubctl", undefined],
      ["usb-relay", "1-1.1", "usbrelay / hidusb-relay-cmd", undefined],
      ["switchable-hub", "1-1.3", "ykushcmd", "YK21345"],
    ],
  );
  assert(inv.hostname && inv.hostname.length > 0, "hostname reported");
  assert(inv.kernel?.startsWith("Linux"), `kernel: ${inv.kernel}`);
}

Deno.test("discover() runs the sh probe on a local node against the fixture tree", async () => {
  const node = new SshNode({
    name: "here",
    host: "localhost",
    transport: "local",
    silent: true,
  });
  const seen: string[] = [];
  const [inv] = await discover([node], {
    root: FIXTURE,
    onInventory: (i) => seen.push(i.node),
  });
  assertEquals(inv.node, "here");
  assertFixtureInventory(inv);
  assertEquals(seen, ["here"]);
});

Deno.test(
  "discover() probes over ssh, through a relay, and reports a node it cannot reach",
  {
    ignore: skipReason() !== null,
  },
  async (t) => {
    await using rig = await startLoopbackRig();
    const direct = rig.node({ name: "direct", index: 0, silent: true });
    const dead = rig.node({
      name: "dead",
      index: 0,
      port: 1,
      silent: true,
      connectTimeout: 5000,
    });
    try {
      await t.step("direct and unreachable nodes in one call", async () => {
        const [a, b] = await discover([direct, dead], {
          root: FIXTURE,
          retry: false,
        });
        assertFixtureInventory(a);
        assertEquals([b.node, b.ok, b.usb.length], ["dead", false, 0]);
        assert(/Cannot reach node "dead"/.test(b.error ?? ""), b.error ?? "");
      });
      await t.step({
        name: "through a nested relay",
        ignore: skipHere("discover() through a nested relay", "relay") ||
          !rig.relayReady,
        fn: async () => {
          const relayed = rig.node({
            name: "relayed",
            index: 1,
            relay: `${rig.user}@${rig.hosts[0]}:${rig.port}`,
            silent: true,
          });
          try {
            const [inv] = await discover([relayed], { root: FIXTURE });
            assertFixtureInventory(inv);
          } finally {
            await relayed.close();
          }
        },
      });
    } finally {
      await direct.close();
      await dead.close();
    }
  },
);

Deno.test("parseProbeOutput() merges records and refuses output it does not know", () => {
  const text = [
    "probe\t-\tversion\t1",
    "probe\t-\thostname\tdut1",
    "some noise the shell printed",
    "usb\t3-2\tidVendor\t04B4",
    "usb\t3-2\tidProduct\tFD13",
    "usb\t3-2\tproduct\tSiS-PM\twith a tab",
    "usb\t3-10\tidVendor\t1a86",
    "usb\t3-10\tidProduct\t7523",
    "tty\tttyUSB3\tusbport\t3-10",
    "power\tusb\ttype\tUSB",
    "power\tusb\tonline\t0",
  ].join("\n");
  const inv = parseProbeOutput("dut1", text);
  assertEquals(inv.hostname, "dut1");
  assertEquals(inv.usb.map((u) => u.port), ["3-2", "3-10"]);
  assertEquals(inv.usb[0].product, "SiS-PM\twith a tab");
  assertEquals(inv.serial, [
    { device: "/dev/ttyUSB3", usbPort: "3-10", usbId: "1a86:7523" },
  ]);
  assertEquals(inv.power[0].online, false);
  assertEquals(
    inv.powerControl.map((c) => [c.kind, c.name, c.usbId]),
    [["power-strip", "Gembird / Energenie SiS-PM power outlet", "04B4:FD13"]],
  );
  const bad = parseProbeOutput("dut2", "sh: 1: syntax error\n");
  assertEquals([bad.ok, bad.usb.length], [false, 0]);
  assertEquals(
    bad.error,
    `The probe's output was not understood (version null, expected "1")`,
  );
});

Deno.test("findPowerDevice() matches ids, and the product name where an id is shared", () => {
  assertEquals(
    findPowerDevice({
      vendorId: "16c0",
      productId: "05df",
      product: "USBRelay8",
    })
      ?.kind,
    "usb-relay",
  );
  assertEquals(
    findPowerDevice({
      vendorId: "16c0",
      productId: "05df",
      product: "Some other V-USB gadget",
    }),
    undefined,
  );
  assertEquals(
    findPowerDevice({ vendorId: "04D8", productId: "F0CD" })?.name,
    "Yepkit YKUSH XS",
  );
  for (const d of POWER_DEVICES) {
    assert(/^[0-9a-f]{4}$/.test(d.vendorId), d.name);
    assert(/^[0-9a-f]{4}$/.test(d.productId), d.name);
    assert(d.source.length > 0 && d.tool.length > 0, d.name);
  }
});

Deno.test("probeCommand() passes the sysfs root quoted and refuses a bad one", () => {
  assertEquals(probeCommand().cmd, "sh -s");
  assertEquals(probeCommand("/tmp/a b").cmd, "FIWI_SYSROOT='/tmp/a b' sh -s");
  let error: unknown = null;
  try {
    probeCommand("bad\nroot");
  } catch (e) {
    error = e;
  }
  assertEquals(
    (error as Error).message,
    'Invalid discovery root "bad\\nroot": give a directory path',
  );
});
