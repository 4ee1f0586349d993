/**
 * Console tails for the dashboard: the kernel console of every node with
 * `console: true` (`SshNode.openConsoles`) and the serial port of every
 * node with `serial:` (`openSerialConsole`, read on its `via` node). Lines
 * are gathered for a tenth of a second and handed on in one batch per
 * console, so a chatty console costs one event per batch, not per line.
 *
 * @module
 */

import type { Line } from "../process/lines.ts";
import type { ConsoleStream } from "../node/console.ts";
import { SshNode } from "../node/node.ts";
import { openSerialConsole } from "../hardware/serial.ts";
import type { Rig } from "../rig/rig.ts";
import type { ConsoleLine, ConsoleTail } from "./_model.ts";

/** How long lines are gathered before they are handed on. */
const BATCH_MS = 100;

/** One batch of lines of one console. */
export interface ConsoleBatch {
  node: string;
  kind: ConsoleTail["kind"];
  lines: ConsoleLine[];
}

/** Open consoles; closing ends every stream and its remote reader. */
export interface OpenTails {
  close(): Promise<void>;
}

/**
 * Open the kernel and serial consoles of `nodes` (those of them that have
 * one); batches of lines go to `onBatch`.
 */
export async function openTails(
  rig: Rig,
  nodes: readonly SshNode[],
  onBatch: (batch: ConsoleBatch) => void,
): Promise<OpenTails> {
  const pending = new Map<string, ConsoleBatch>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    const batches = [...pending.values()];
    pending.clear();
    for (const b of batches) onBatch(b);
  };
  const collect = (kind: ConsoleTail["kind"]) => (line: Line) => {
    const key = `${line.node}\0${kind}`;
    let b = pending.get(key);
    if (!b) pending.set(key, b = { node: line.node, kind, lines: [] });
    b.lines.push({ at: line.time, text: line.text });
    timer ??= setTimeout(flush, BATCH_MS);
  };
  const kernel = nodes.filter((n) => n.console);
  const serial: ConsoleStream[] = [];
  await SshNode.openConsoles({
    nodes: kernel,
    silent: true,
    onLine: collect("kernel"),
  });
  for (const node of nodes) {
    const port = rig.serialPorts.get(node.name);
    const via = port && rig.node(port.via);
    if (!port || !via) continue;
    serial.push(
      openSerialConsole(node.name, via, port, {
        silent: true,
        onLine: collect("serial"),
      }),
    );
  }
  return {
    async close() {
      await Promise.all([
        ...kernel.map((n) => n.closeConsole()),
        ...serial.map((s) => s.close()),
      ]);
      clearTimeout(timer);
      flush();
    },
  };
}
