/**
 * Discovery: what is plugged into each node. A POSIX sh probe (nothing to
 * install on the node) reads sysfs and /dev; its records are merged per node
 * into USB devices, serial ports, power supplies, and the power-control
 * devices among them that the table in `power_devices.ts` knows.
 *
 * @example
 * ```ts
 * import { discover, SshNode } from "../../mod.ts";
 * const here = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const [inventory] = await discover([here], { root: "tests/fixtures/sysroot" });
 * console.log(inventory.powerControl.map((d) => `${d.name} at ${d.usbPort}`));
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { DEFAULT_CONCURRENCY, mapPool } from "../fanout/pool.ts";
import { routeOf } from "../fanout/_fan_out.ts";
import type { SshNode } from "../node/node.ts";
import { describeOutcome } from "../process/outcome.ts";
import type { RunOptions } from "../process/session.ts";
import { shellQuote } from "../transport/quote.ts";
import {
  findPowerDevice,
  type PowerDeviceKind,
} from "../hardware/power_devices.ts";
import { PROBE_SCRIPT, PROBE_VERSION } from "./_probe.sh.ts";

/** A USB device (root hubs left out). */
export interface UsbDevice {
  /** Port path, e.g. `1-1.2` (bus 1, port 1, then port 2 of that hub). */
  port: string;
  /** Vendor id, 4 hex digits. */
  vendorId: string;
  /** Product id, 4 hex digits. */
  productId: string;
  /** Manufacturer string, when the device has one. */
  manufacturer?: string;
  /** Product string. */
  product?: string;
  /** Serial number string. */
  serial?: string;
  /** Bus number. */
  bus?: number;
  /** Device number on the bus. */
  device?: number;
  /** Speed in Mbit/s as the kernel reports it ("480", "1.5"). */
  speed?: string;
  /** True for a hub (device class 09). */
  hub: boolean;
}

/** A serial port with a USB parent. */
export interface SerialPort {
  /** Device node, e.g. `/dev/ttyUSB0`. */
  device: string;
  /** Stable name under /dev/serial/by-id, when udev made one. */
  byId?: string;
  /** Port path of its USB device. */
  usbPort?: string;
  /** Vendor:product of that USB device. */
  usbId?: string;
}

/** A power supply from /sys/class/power_supply. */
export interface PowerSupply {
  /** Kernel name, e.g. `AC`, `BAT0`. */
  name: string;
  /** Mains, Battery, USB, UPS … */
  type?: string;
  /** Whether it supplies power now (mains, USB). */
  online?: boolean;
  /** Charging, Discharging, Full … (batteries). */
  status?: string;
  /** Charge in percent (batteries). */
  capacity?: number;
  /** Voltage in volts. */
  voltage?: number;
  /** Manufacturer string. */
  manufacturer?: string;
  /** Model string. */
  model?: string;
}

/** A known power-control device found on a node. */
export interface PowerControl {
  /** Relay, switchable hub or power strip. */
  kind: PowerDeviceKind;
  /** Name from the table. */
  name: string;
  /** Tool that drives it. */
  tool: string;
  /** Its USB port path. */
  usbPort: string;
  /** Vendor:product. */
  usbId: string;
  /** Serial number string, when it has one. */
  serial?: string;
  /** Its serial port, for relays driven over a tty. */
  serialDevice?: string;
}

/** Everything discovered on one node. */
export interface NodeInventory {
  /** Node name. */
  node: string;
  /** The probe ran and its output was understood. */
  ok: boolean;
  /** Why not, when not. */
  error: string | null;
  /** The node's own host name. */
  hostname?: string;
  /** Kernel name and release. */
  kernel?: string;
  /** USB devices by port path. */
  usb: UsbDevice[];
  /** Serial ports with a USB parent. */
  serial: SerialPort[];
  /** Power supplies. */
  power: PowerSupply[];
  /** Known power-control devices among the USB devices. */
  powerControl: PowerControl[];
}

/** Options of {@linkcode discover}. */
export interface DiscoverOptions {
  /**
   * Directory that stands for `/` on every node: the probe reads
   * `<root>/sys` and `<root>/dev` (tests point it at a fixture tree).
   */
  root?: string;
  /** Stop every probe. */
  signal?: AbortSignal;
  /**
   * Most nodes probed at once (default {@linkcode DEFAULT_CONCURRENCY}, as
   * `runAll`, and per gateway too); a whole number >= 1.
   */
  concurrency?: number;
  /** Wall-clock limit per node in ms (default 30 s). */
  cmdTimeout?: number;
  /** Retry policy for connection failures (default: `rexec`'s; false: one attempt). */
  retry?: RunOptions["retry"];
  /** Called with each node's inventory as soon as it is known. */
  onInventory?: (inventory: NodeInventory) => void;
}

/** The command and stdin that run the probe (`sh -s`, script on stdin). */
export function probeCommand(root?: string): { cmd: string; stdin: string } {
  if (root !== undefined) {
    if (typeof root !== "string" || root === "" || /[\n\0]/.test(root)) {
      throw new ConfigurationError(
        `Invalid discovery root ${JSON.stringify(root)}: give a directory path`,
      );
    }
  }
  const env = root ? `FIWI_SYSROOT=${shellQuote(root)} ` : "";
  return { cmd: `${env}sh -s`, stdin: PROBE_SCRIPT };
}

/** The object without its undefined fields (they mean "not reported"). */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined),
  ) as T;
}

function byPort(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * Merge the probe's records into one node's inventory. Lines that are not
 * records are ignored; a missing or unknown version line is an error.
 */
export function parseProbeOutput(node: string, text: string): NodeInventory {
  const records = new Map<string, Map<string, Map<string, string>>>();
  for (const line of text.split("\n")) {
    const [kind, id, key, ...rest] = line.split("\t");
    if (key === undefined) continue;
    const kinds = records.get(kind) ?? new Map<string, Map<string, string>>();
    records.set(kind, kinds);
    const fields = kinds.get(id) ?? new Map<string, string>();
    kinds.set(id, fields);
    fields.set(key, rest.join("\t"));
  }
  const probe = records.get("probe")?.get("-");
  const hostname = probe?.get("hostname");
  const kernel = probe?.get("kernel");
  const inventory: NodeInventory = {
    node,
    ok: true,
    error: null,
    ...(hostname ? { hostname } : {}),
    ...(kernel ? { kernel } : {}),
    usb: [],
    serial: [],
    power: [],
    powerControl: [],
  };
  if (probe?.get("version") !== PROBE_VERSION) {
    return {
      ...inventory,
      ok: false,
      error: `The probe's output was not understood (version ${
        JSON.stringify(probe?.get("version") ?? null)
      }, expected "${PROBE_VERSION}")`,
    };
  }
  const num = (v: string | undefined) =>
    v === undefined || v === "" || Number.isNaN(Number(v))
      ? undefined
      : Number(v);

  for (const [port, f] of records.get("usb") ?? []) {
    // Root hubs ("usb1") are the controller itself, not something plugged in.
    if (port.startsWith("usb")) continue;
    inventory.usb.push(compact({
      port,
      vendorId: f.get("idVendor") ?? "",
      productId: f.get("idProduct") ?? "",
      manufacturer: f.get("manufacturer") || undefined,
      product: f.get("product") || undefined,
      serial: f.get("serial") || undefined,
      bus: num(f.get("busnum")),
      device: num(f.get("devnum")),
      speed: f.get("speed") || undefined,
      hub: f.get("bDeviceClass") === "09",
    }));
  }
  inventory.usb.sort((a, b) => byPort(a.port, b.port));
  const usbAt = new Map(inventory.usb.map((u) => [u.port, u]));

  const ttyPort = new Map<string, string>();
  for (const [tty, f] of records.get("tty") ?? []) {
    const port = f.get("usbport");
    if (port) ttyPort.set(tty, port);
  }
  const serialByTty = new Map<string, SerialPort>();
  for (const [link, f] of records.get("serial") ?? []) {
    const tty = f.get("target");
    if (!tty) continue;
    serialByTty.set(tty, { device: `/dev/${tty}`, byId: link });
  }
  for (const tty of ttyPort.keys()) {
    if (!serialByTty.has(tty)) serialByTty.set(tty, { device: `/dev/${tty}` });
  }
  for (const [tty, sp] of serialByTty) {
    const usbPort = ttyPort.get(tty);
    const u = usbPort ? usbAt.get(usbPort) : undefined;
    if (usbPort) sp.usbPort = usbPort;
    if (u) sp.usbId = `${u.vendorId}:${u.productId}`;
  }
  inventory.serial = [...serialByTty.values()].sort((a, b) =>
    byPort(a.device, b.device)
  );

  for (const [name, f] of records.get("power") ?? []) {
    const microvolts = num(f.get("voltage_now"));
    const online = f.get("online");
    inventory.power.push(compact({
      name,
      type: f.get("type") || undefined,
      online: online === undefined ? undefined : online === "1",
      status: f.get("status") || undefined,
      capacity: num(f.get("capacity")),
      voltage: microvolts === undefined
        ? undefined
        : Math.round(microvolts / 1000) / 1000,
      manufacturer: f.get("manufacturer") || undefined,
      model: f.get("model_name") || undefined,
    }));
  }
  inventory.power.sort((a, b) => byPort(a.name, b.name));

  for (const u of inventory.usb) {
    const spec = findPowerDevice(u);
    if (!spec) continue;
    const tty = inventory.serial.find((s) => s.usbPort === u.port);
    inventory.powerControl.push({
      kind: spec.kind,
      name: spec.name,
      tool: spec.tool,
      usbPort: u.port,
      usbId: `${u.vendorId}:${u.productId}`,
      ...(u.serial ? { serial: u.serial } : {}),
      ...(tty ? { serialDevice: tty.device } : {}),
    });
  }
  return inventory;
}

/**
 * Run the probe on every node, at most `concurrency` at a time (and as many
 * again behind each gateway), and merge each node's records. One inventory
 * per node, in node order; a node that cannot be probed has `ok: false` and
 * the reason in `error` (the run's {@linkcode describeOutcome} sentence).
 * Rejects only for bad input.
 *
 * @example
 * ```ts
 * import { discover, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const [inventory] = await discover([node]);
 * console.log(inventory.node, inventory.usb.length);
 * ```
 */
export async function discover(
  nodes: readonly SshNode[],
  options: DiscoverOptions = {},
): Promise<NodeInventory[]> {
  const { cmd, stdin } = probeCommand(options.root);
  const one = async (
    node: SshNode,
    signal: AbortSignal,
  ): Promise<NodeInventory> => {
    const r = await node.rexec(cmd, {
      stdin,
      cmdTimeout: options.cmdTimeout ?? 30_000,
      signal,
      ...(options.retry !== undefined ? { retry: options.retry } : {}),
    });
    if (r.success) return parseProbeOutput(node.name, r.stdout);
    const outcome = describeOutcome(r);
    const why = r.error || r.aborted
      ? outcome.sentence
      : `The probe failed with ${outcome.key}: ${
        r.stderr.trim().split("\n").at(-1) ?? ""
      }`;
    return { ...parseProbeOutput(node.name, ""), ok: false, error: why };
  };
  return await mapPool(nodes, async (node, signal) => {
    const inventory = await one(node, signal);
    options.onInventory?.(inventory);
    return inventory;
  }, {
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    signal: options.signal,
    routeOf,
  });
}
