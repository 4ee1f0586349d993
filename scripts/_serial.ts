/**
 * Serial consoles for `fiwi consoles`: every selected node with `serial:`
 * in the rig file gets a {@linkcode SerialConsole} read on its `via` node
 * (src/hardware/serial.ts). Its lines carry the node's own name, so they print
 * and log like the node's other console lines.
 *
 * @module
 */

import type { Line } from "../src/process/lines.ts";
import type { SshNode } from "../src/node/node.ts";
import type { Rig } from "../src/rig/rig.ts";
import { SerialConsole } from "../src/hardware/serial.ts";

/** Open the serial console of each of `nodes` that has `serial:`; lines go to `onLine`. */
export function openSerialConsoles(
  rig: Rig,
  nodes: readonly SshNode[],
  onLine: (line: Line) => void,
): SerialConsole[] {
  const consoles: SerialConsole[] = [];
  for (const node of nodes) {
    const serial = rig.serialPorts.get(node.name);
    const via = serial && rig.node(serial.via);
    if (!serial || !via) continue;
    const console = new SerialConsole(node.name, via, serial);
    console.open({ silent: true, onLine });
    consoles.push(console);
  }
  return consoles;
}

/** Close every serial console and wait until its reader has ended on the `via` node. */
export async function closeSerialConsoles(
  consoles: readonly SerialConsole[],
): Promise<void> {
  await Promise.all(consoles.map((c) => c.close()));
}
