/**
 * Serial consoles for `fiwi consoles`: every selected node with `serial:`
 * in the rig file gets a console stream read on its `via` node
 * ({@linkcode openSerialConsole}). Its lines carry the node's own name, so
 * they print and log like the node's other console lines.
 *
 * @module
 */

import {
  type ConsoleStream,
  type Line,
  openSerialConsole,
  type Rig,
  type SshNode,
} from "../mod.ts";

/** Open the serial console of each of `nodes` that has `serial:`; lines go to `onLine`. */
export function openSerialConsoles(
  rig: Rig,
  nodes: readonly SshNode[],
  onLine: (line: Line) => void,
): ConsoleStream[] {
  const consoles: ConsoleStream[] = [];
  for (const node of nodes) {
    const serial = rig.serialPorts.get(node.name);
    const via = serial && rig.node(serial.via);
    if (!serial || !via) continue;
    consoles.push(
      openSerialConsole(node.name, via, serial, { silent: true, onLine }),
    );
  }
  return consoles;
}

/** Close every serial console and wait until its reader has ended on the `via` node. */
export async function closeSerialConsoles(
  consoles: readonly ConsoleStream[],
): Promise<void> {
  await Promise.all(consoles.map((c) => c.close()));
}
