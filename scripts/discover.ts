/**
 * `fiwi discover`: power, USB and serial inventory of every node,
 * gathered by a POSIX sh probe fed to `sh -s` (nothing to install on the
 * node). Prints a table per node, or one JSON object per node as it is
 * probed and a summary (`--json`), and can write the
 * whole inventory as YAML (`--write FILE`).
 *
 * @module
 */

import { stringify } from "jsr:@std/yaml@^1";
import { ConfigurationError, discover, type NodeInventory } from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
  userPath,
} from "./_cli.ts";
import { formatTable, type Output } from "./_output.ts";

export const SPEC: CliSpec = {
  name: "discover",
  summary:
    "Inventory every node: USB devices, serial ports, power supplies, known power switches.",
  options: [
    {
      name: "write",
      arg: "FILE",
      help: "also write the inventory to FILE as YAML",
    },
    {
      name: "timeout",
      short: "u",
      arg: "DURATION",
      help: "limit per node (default 30s)",
    },
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "most nodes probed at once (default 64; per gateway too)",
    },
    {
      name: "root",
      arg: "DIR",
      help: "read DIR/sys and DIR/dev on the nodes instead of /sys and /dev",
    },
  ],
  notes:
    "Power switches are recognised from the table in src/power_devices.ts (USB relays, switchable hubs, power strips).",
  examples: [
    "fiwi discover",
    "fiwi discover --nodes @duts --write inventory.yaml",
    "fiwi discover --json | jq 'select(.node) | .powerControl'",
  ],
};

function dash(v: string | number | undefined): string {
  return v === undefined || v === "" ? "-" : String(v);
}

function printInventory(inv: NodeInventory, out: Output): void {
  const about = [inv.hostname, inv.kernel].filter((x) => x).join(", ");
  out.out(`${inv.node}${about ? ` (${about})` : ""}`);
  if (!inv.ok) {
    out.out(`  FAILED: ${inv.error}`);
    return;
  }
  const control = new Map(inv.powerControl.map((c) => [c.usbPort, c]));
  if (inv.usb.length === 0) out.out("  USB: none");
  else {
    const rows = [[
      "  USB",
      "ID",
      "MANUFACTURER",
      "PRODUCT",
      "SERIAL",
      "POWER CONTROL",
    ]];
    for (const u of inv.usb) {
      const c = control.get(u.port);
      rows.push([
        `  ${u.port}`,
        `${u.vendorId}:${u.productId}`,
        dash(u.manufacturer),
        dash(u.product),
        dash(u.serial),
        c ? `${c.kind} (${c.tool})` : "",
      ]);
    }
    for (const line of formatTable(rows)) out.out(line);
  }
  if (inv.serial.length === 0) out.out("  SERIAL: none");
  else {
    const rows = [["  SERIAL", "USB", "BY-ID"]];
    for (const s of inv.serial) {
      rows.push([
        `  ${s.device}`,
        s.usbPort ? `${s.usbPort}${s.usbId ? ` (${s.usbId})` : ""}` : "-",
        dash(s.byId),
      ]);
    }
    for (const line of formatTable(rows)) out.out(line);
  }
  if (inv.power.length === 0) out.out("  POWER: none");
  else {
    const rows = [["  POWER", "TYPE", "STATE"]];
    for (const p of inv.power) {
      const state = [
        p.online === undefined ? "" : p.online ? "online" : "offline",
        p.status ?? "",
        p.capacity !== undefined ? `${p.capacity}%` : "",
        p.voltage !== undefined ? `${p.voltage} V` : "",
      ].filter((x) => x).join(", ");
      rows.push([`  ${p.name}`, dash(p.type), dash(state)]);
    }
    for (const line of formatTable(rows)) out.out(line);
  }
}

async function discoverNodes(ctx: CliContext): Promise<number> {
  const { flags, out, json, selectNodes, interrupt } = ctx;
  const cmdTimeout = durationFlag(flags, "timeout");
  const root = flags.root as string | undefined;
  const write = flags.write === undefined
    ? undefined
    : userPath(String(flags.write));
  const { nodes } = await selectNodes();
  let inventories: NodeInventory[];
  let done = 0;
  let failed = 0;
  try {
    out.progress(0, 0, nodes.length, "probing");
    inventories = await discover(nodes, {
      root,
      cmdTimeout,
      concurrency: intFlag(flags, "fanout", 1),
      signal: interrupt,
      onInventory: (inv) => {
        done++;
        if (!inv.ok) failed++;
        if (json) out.out(JSON.stringify(inv));
        out.progress(done, failed, nodes.length, "probing");
      },
    });
  } finally {
    out.clearProgress();
  }
  if (json) {
    const ok = inventories.filter((i) => i.ok).length;
    out.out(JSON.stringify({
      summary: {
        nodes: inventories.length,
        ok,
        failed: inventories.length - ok,
      },
    }));
  } else {
    inventories.forEach((inv, i) => {
      if (i > 0) out.out("");
      printInventory(inv, out);
    });
  }
  if (write) {
    // Plain data only: undefined fields are dropped, not written as null.
    const data = JSON.parse(JSON.stringify(inventories));
    try {
      await Deno.writeTextFile(write, stringify(data));
    } catch (e) {
      throw new ConfigurationError(
        `Cannot write the inventory to "${write}": ${(e as Error).message}`,
        { cause: e },
      );
    }
    out.err(
      `Wrote the inventory of ${inventories.length} node${
        inventories.length === 1 ? "" : "s"
      } to ${write}`,
    );
  }
  if (interrupt.aborted) return interrupt.exitCode ?? 130;
  return inventories.every((i) => i.ok) ? 0 : 1;
}

/** `fiwi discover`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, discoverNodes);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
