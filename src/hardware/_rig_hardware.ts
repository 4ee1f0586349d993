/**
 * The rig file's lab-hardware keys of a node: `power: { via, tool, id,
 * port, command }` and `serial: { via, port, baud }`, checked like every
 * other key (file:line:column, the closest known key or value) and with
 * `via` naming a node of the same rig.
 *
 * @module
 */

import { shown } from "../rigfile/duration.ts";
import {
  POWER_TOOL_NAMES,
  type PowerSwitch,
  powerSwitchProblem,
  powerTool,
} from "./_power_tools.ts";
import type { PowerToolName } from "./power_devices.ts";
import { BAUD_RATES, type SerialConfig } from "./serial.ts";
import { type Checker, closest } from "../rigfile/_rig_checker.ts";
import type { PathStep } from "../rigfile/_yaml_positions.ts";

const POWER_KEYS = ["via", "tool", "id", "port", "command"];
const SERIAL_KEYS = ["via", "port", "baud"];

/** The node names of the rig being checked, and the node itself. */
export interface HardwareContext {
  /** The node that has the key. */
  node: string;
  /** Every node name of its rig. */
  rigNodes: readonly string[];
  /** The rig's name, for messages. */
  rig: string;
}

function checkVia(
  c: Checker,
  path: PathStep[],
  value: unknown,
  ctx: HardwareContext,
): string {
  if (typeof value !== "string" || value.trim() === "") {
    c.failValue(
      path,
      `Invalid via ${
        shown(value)
      }: give the name of a node of rig "${ctx.rig}"`,
    );
  }
  if (value === ctx.node) {
    c.failValue(
      path,
      `Node "${ctx.node}" cannot be its own via: name the node its switch or serial adapter is plugged into`,
    );
  }
  if (!ctx.rigNodes.includes(value)) {
    const hint = closest(value, ctx.rigNodes);
    c.failValue(
      path,
      `Via "${value}" is not a node of rig "${ctx.rig}"` +
        (hint ? `: did you mean "${hint}"?` : ": name one of its nodes"),
    );
  }
  return value;
}

function requireKeys(
  c: Checker,
  path: PathStep[],
  map: Record<string, unknown>,
  keys: string[],
  what: string,
): void {
  for (const key of keys) {
    if (map[key] === undefined || map[key] === null) {
      c.failKey(
        path,
        `${what} of node "${path.at(-2)}" has no "${key}": add it`,
      );
    }
  }
}

/** Check a node's `power:` value at `path`; returns the switch. */
export function checkPower(
  c: Checker,
  path: PathStep[],
  value: unknown,
  ctx: HardwareContext,
): PowerSwitch {
  const map = c.mapping(value, path, "power");
  c.knownKeys(map, path, POWER_KEYS, `the power of node "${ctx.node}"`);
  requireKeys(c, path, map, ["via", "tool", "port"], "The power");
  const via = checkVia(c, [...path, "via"], map.via, ctx);
  const tool = map.tool;
  if (typeof tool !== "string" || !powerTool(tool)) {
    const hint = typeof tool === "string"
      ? closest(tool, POWER_TOOL_NAMES)
      : null;
    c.failValue(
      [...path, "tool"],
      `Unknown power tool ${shown(tool)}` +
        (hint
          ? `: did you mean "${hint}"?`
          : `: use ${POWER_TOOL_NAMES.map((t) => `"${t}"`).join(", ")}`),
    );
  }
  const sw: PowerSwitch = {
    via,
    tool: tool as PowerToolName,
    port: map.port as number,
  };
  if (map.id !== undefined && map.id !== null) {
    sw.id = c.convert("text", "id", map.id, [...path, "id"]) as string;
  }
  if (map.command !== undefined && map.command !== null) {
    sw.command = c.convert("text", "command", map.command, [
      ...path,
      "command",
    ]) as string;
  }
  const problem = powerSwitchProblem(sw);
  if (problem) {
    const message = `${problem.message} (node "${ctx.node}")`;
    if (problem.key in map) c.failValue([...path, problem.key], message);
    c.failKey(path, message);
  }
  return sw;
}

/** Check a node's `serial:` value at `path`; returns the port. */
export function checkSerial(
  c: Checker,
  path: PathStep[],
  value: unknown,
  ctx: HardwareContext,
): SerialConfig {
  const map = c.mapping(value, path, "serial");
  c.knownKeys(map, path, SERIAL_KEYS, `the serial of node "${ctx.node}"`);
  requireKeys(c, path, map, ["via", "port", "baud"], "The serial");
  const via = checkVia(c, [...path, "via"], map.via, ctx);
  const port = map.port;
  if (typeof port !== "string" || !/^\/[A-Za-z0-9._/+:@-]+$/.test(port)) {
    c.failValue(
      [...path, "port"],
      `Invalid serial port ${
        shown(port)
      }: give the device path on "${via}", e.g. "/dev/ttyUSB0"`,
    );
  }
  const baud = map.baud;
  if (typeof baud !== "number" || !BAUD_RATES.includes(baud)) {
    c.failValue(
      [...path, "baud"],
      `Invalid baud ${
        shown(baud)
      }: use a rate stty knows, e.g. 9600, 57600 or 115200`,
    );
  }
  return { via, port, baud };
}
