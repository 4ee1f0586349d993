/**
 * Known power-control devices: USB relays, switchable hubs and power strips
 * that `discover` recognises by USB vendor and product id (and, where an id
 * is shared by unrelated devices, by product name). Add a row to teach it a
 * new one; `source` says where the ids come from.
 *
 * @module
 */

/** What a power-control device does. */
export type PowerDeviceKind = "usb-relay" | "switchable-hub" | "power-strip";

/** One row of {@linkcode POWER_DEVICES}. */
export interface PowerDeviceSpec {
  /** USB vendor id, 4 lowercase hex digits. */
  vendorId: string;
  /** USB product id, 4 lowercase hex digits. */
  productId: string;
  /** Only devices whose product string matches (for shared ids). */
  productMatch?: RegExp;
  /** What it does. */
  kind: PowerDeviceKind;
  /** Human name. */
  name: string;
  /** Tool that drives it. */
  tool: string;
  /** Where the ids come from. */
  source: string;
}

/**
 * The table: first matching row wins.
 *
 * @example
 * ```ts
 * import { POWER_DEVICES } from "../../mod.ts";
 * console.log(POWER_DEVICES.filter((d) => d.kind === "usb-relay").length > 0); // true
 * ```
 */
export const POWER_DEVICES: readonly PowerDeviceSpec[] = [
  // HID relay boards ("USBRelay1".."USBRelay8") share the V-USB id
  // 16c0:05df with other hobby HID devices: the product string decides.
  {
    vendorId: "16c0",
    productId: "05df",
    productMatch: /^USBRelay\d/,
    kind: "usb-relay",
    name: "dcttech HID USB relay board",
    tool: "usbrelay / hidusb-relay-cmd",
    source: "usb-relay-hid project; lsusb of USBRelay2 boards",
  },
  ...(["0042", "f2f7", "f11b", "f0cd"] as const).map((productId, i) => ({
    vendorId: "04d8",
    productId,
    kind: "switchable-hub" as const,
    name: ["YKUSH (beta)", "Yepkit YKUSH", "Yepkit YKUSH3", "Yepkit YKUSH XS"][
      i
    ],
    tool: "ykushcmd",
    source: "Yepkit ykush / pykush vendor and product ids",
  })),
  ...(["fd10", "fd11", "fd12", "fd13", "fd15"] as const).map((productId) => ({
    vendorId: "04b4",
    productId,
    kind: "power-strip" as const,
    name: "Gembird / Energenie SiS-PM power outlet",
    tool: "sispmctl",
    source: "sispmctl supported product ids",
  })),
  // Hubs with per-port power switching (uhubctl's compatibility list).
  {
    vendorId: "2109",
    productId: "2811",
    kind: "switchable-hub",
    name: "VIA VL812 hub (e.g. AmazonBasics HU3641V1/HU3770V1)",
    tool: "uhubctl",
    source: "uhubctl README, compatible hubs",
  },
  {
    vendorId: "2109",
    productId: "2817",
    kind: "switchable-hub",
    name: "VIA VL817 hub (e.g. AmazonBasics HU9002V1)",
    tool: "uhubctl",
    source: "uhubctl README, compatible hubs",
  },
  {
    vendorId: "0424",
    productId: "9514",
    kind: "switchable-hub",
    name: "SMSC LAN9514 hub (Beagleboard-xM, Raspberry Pi B+/2B/3B)",
    tool: "uhubctl",
    source: "uhubctl README, compatible hubs",
  },
  {
    vendorId: "2001",
    productId: "f103",
    kind: "switchable-hub",
    name: "D-Link DUB-H7 (silver)",
    tool: "uhubctl",
    source: "uhubctl README, compatible hubs",
  },
];

/**
 * The first row matching a USB device, or undefined.
 *
 * @example
 * ```ts
 * import { findPowerDevice } from "../../mod.ts";
 * const relay = findPowerDevice({ vendorId: "16c0", productId: "05df", product: "USBRelay2" });
 * console.log(relay?.kind); // "usb-relay"
 * ```
 */
export function findPowerDevice(
  device: { vendorId: string; productId: string; product?: string },
): PowerDeviceSpec | undefined {
  const v = device.vendorId.toLowerCase();
  const p = device.productId.toLowerCase();
  return POWER_DEVICES.find((d) =>
    d.vendorId === v && d.productId === p &&
    (!d.productMatch || d.productMatch.test(device.product ?? ""))
  );
}

/** The power-switching tools fiwi drives, by the name a rig file uses. */
export type PowerToolName = "uhubctl" | "ykushcmd" | "usbrelay" | "sispmctl";

/** What a rig file's `power:` needs for one tool. */
export interface PowerToolSpec {
  /** Lowest and highest port (hub port, relay or outlet number). */
  ports: readonly [number, number];
  /** Whether `id` must be given. */
  idRequired: boolean;
  /** What `id` names for this tool, for messages. */
  idMeaning: string;
  /** What `port` names for this tool, for messages. */
  portMeaning: string;
  /**
   * Longest one call of the tool may run, in ms, unless the caller's
   * timeout is shorter: a tool that hangs (a wedged USB bus, a HID device
   * that never answers) is stopped then instead of holding the rig.
   */
  timeout: number;
}

/**
 * The tools and their limits, from each tool's documentation: uhubctl
 * switches up to 14 ports of the hub at a location; a YKUSH board has 3
 * downstream ports; HID relay boards have up to 8 relays; SiS-PM strips
 * have up to 4 outlets. Each answers within seconds when the switch is
 * there; `timeout` bounds a call that does not.
 *
 * @example
 * ```ts
 * import { POWER_TOOLS } from "../../mod.ts";
 * console.log(Object.keys(POWER_TOOLS)); // ["uhubctl", "ykushcmd", "usbrelay", "sispmctl"]
 * ```
 */
export const POWER_TOOLS: Readonly<Record<PowerToolName, PowerToolSpec>> = {
  uhubctl: {
    ports: [1, 14],
    idRequired: true,
    idMeaning: 'the hub location, e.g. "1-1.4" (uhubctl -l)',
    portMeaning: "hub port",
    // It scans every hub on the bus and waits for the port to settle.
    timeout: 30_000,
  },
  ykushcmd: {
    ports: [1, 3],
    idRequired: false,
    idMeaning: "the board serial number (ykushcmd -s); default: the only board",
    portMeaning: "downstream port",
    timeout: 15_000,
  },
  usbrelay: {
    ports: [1, 8],
    idRequired: true,
    idMeaning: 'the relay board serial, e.g. "PSUIS"',
    portMeaning: "relay",
    timeout: 15_000,
  },
  sispmctl: {
    ports: [1, 4],
    idRequired: false,
    idMeaning:
      "the power strip serial number (sispmctl -D); default: the first strip",
    portMeaning: "outlet",
    timeout: 15_000,
  },
};
