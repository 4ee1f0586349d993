/**
 * The command line of each power-switching tool and the parser of its
 * output: pure functions, one row per tool. Each follows the tool's own
 * documented syntax (uhubctl `-l LOC -p PORT -a on|off`, ykushcmd
 * `[-s SERIAL] -u|-d|-g PORT`, usbrelay `SERIAL_N=1|0`, sispmctl
 * `[-D SERIAL] -o|-f|-g OUTLET`), so a rig needs nothing but the tool on
 * its `via` node.
 *
 * @module
 */

import { shellQuote } from "../transport/quote.ts";
import {
  POWER_TOOLS,
  type PowerToolName,
  type PowerToolSpec,
} from "./power_devices.ts";

/** A node's `power:` entry: which switch on which node powers it. */
export interface PowerSwitch {
  /** The rig node the switch is plugged into, where the tool runs. */
  via: string;
  /** The tool that drives the switch. */
  tool: PowerToolName;
  /** Which switch: hub location, board or strip serial (see `POWER_TOOLS`). */
  id?: string;
  /** Which port, relay or outlet of the switch. */
  port: number;
  /** The tool's path on the `via` node (default: the tool's name). */
  command?: string;
}

/** What a tool is asked to do: a switch, or to read the state back. */
export type ToolAction = "on" | "off" | "status";

/** A port's power as the tool reports it. */
export type PowerState = "on" | "off" | "unknown";

/** The tool names, for messages and checks. */
export const POWER_TOOL_NAMES = Object.keys(POWER_TOOLS) as PowerToolName[];

/** The row of `tool`, or undefined for an unknown tool. */
export function powerTool(tool: string): PowerToolSpec | undefined {
  return Object.hasOwn(POWER_TOOLS, tool)
    ? POWER_TOOLS[tool as PowerToolName]
    : undefined;
}

/** What is wrong with a switch description: the key at fault and why. */
export interface PowerSwitchProblem {
  /** The `power:` key whose value is wrong. */
  key: "tool" | "port" | "id";
  /** One line naming the value and what to do. */
  message: string;
}

/** The first problem of a switch description, or null when it is usable. */
export function powerSwitchProblem(
  sw: PowerSwitch,
): PowerSwitchProblem | null {
  const spec = powerTool(sw.tool);
  if (!spec) {
    return {
      key: "tool",
      message: `Unknown power tool ${JSON.stringify(sw.tool)}: use ${
        POWER_TOOL_NAMES.map((t) => `"${t}"`).join(", ")
      }`,
    };
  }
  const [min, max] = spec.ports;
  if (!Number.isInteger(sw.port) || sw.port < min || sw.port > max) {
    return {
      key: "port",
      message: `Power port ${
        JSON.stringify(sw.port)
      } is out of range for ${sw.tool}: give a ${spec.portMeaning} from ${min} to ${max}`,
    };
  }
  if (spec.idRequired && !sw.id) {
    return {
      key: "id",
      message: `Power tool ${sw.tool} needs "id": ${spec.idMeaning}`,
    };
  }
  if (sw.id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:#_-]*$/.test(sw.id)) {
    return {
      key: "id",
      message: `Invalid power id ${
        JSON.stringify(sw.id)
      }: use letters, digits, ".", "-", ":", "#" and "_"`,
    };
  }
  return null;
}

/** One key per physical switch: actions behind the same key run one at a time. */
export function switchKey(sw: PowerSwitch): string {
  return `${sw.via}\0${sw.tool}\0${sw.id ?? ""}`;
}

/** The switch in words, for messages: `uhubctl hub "1-1" on "pi1"`. */
export function describeSwitch(sw: PowerSwitch): string {
  const id = sw.id ? ` "${sw.id}"` : "";
  return `${sw.tool}${id} port ${sw.port} on "${sw.via}"`;
}

/** The program to run: `command`, or the tool's own name. */
export function toolProgram(sw: PowerSwitch): string {
  return sw.command ?? sw.tool;
}

/**
 * How long one call of the switch's tool may run, in ms: the tool's own
 * bound (`POWER_TOOLS`), or `limit` when that is shorter (`limit` 0 or
 * undefined: none).
 */
export function toolTimeout(sw: PowerSwitch, limit?: number): number {
  const own = powerTool(sw.tool)?.timeout ?? 30_000;
  return limit !== undefined && limit > 0 ? Math.min(own, limit) : own;
}

/** The argv of `action` for the switch, in the tool's documented syntax. */
export function powerArgv(sw: PowerSwitch, action: ToolAction): string[] {
  const program = toolProgram(sw);
  const port = String(sw.port);
  switch (sw.tool) {
    case "uhubctl":
      return [
        program,
        "-l",
        sw.id ?? "",
        "-p",
        port,
        ...(action === "status" ? [] : ["-a", action]),
      ];
    case "ykushcmd": {
      const flag = { on: "-u", off: "-d", status: "-g" }[action];
      return [program, ...(sw.id ? ["-s", sw.id] : []), flag, port];
    }
    case "usbrelay":
      // Without arguments it lists every relay as SERIAL_N=0|1.
      return action === "status"
        ? [program]
        : [program, `${sw.id}_${port}=${action === "on" ? 1 : 0}`];
    case "sispmctl": {
      const flag = { on: "-o", off: "-f", status: "-g" }[action];
      return [program, ...(sw.id ? ["-D", sw.id] : []), flag, port];
    }
  }
}

/** {@linkcode powerArgv} as a command line for the `via` node's shell. */
export function powerCommand(sw: PowerSwitch, action: ToolAction): string {
  return powerArgv(sw, action).map(shellQuote).join(" ");
}

/** The shell test that the tool exists on the `via` node. */
export function toolCheckCommand(sw: PowerSwitch): string {
  return `command -v ${shellQuote(toolProgram(sw))}`;
}

/**
 * The port's state in the tool's output (stdout). The last report of the
 * port wins: uhubctl prints the state before and after a switch.
 */
export function parsePowerState(sw: PowerSwitch, stdout: string): PowerState {
  let state: PowerState = "unknown";
  for (const line of stdout.split("\n")) {
    const found = parseLine(sw, line.trim());
    if (found) state = found;
  }
  return state;
}

function parseLine(sw: PowerSwitch, line: string): PowerState | null {
  switch (sw.tool) {
    case "uhubctl": {
      // "Port 2: 0503 power highspeed enable connect [..]" / "Port 2: 0000 off"
      const m = /^Port (\d+): [0-9a-f]{4}\b(.*)$/.exec(line);
      if (!m || Number(m[1]) !== sw.port) return null;
      const words = m[2].replace(/\[.*\]/, "").split(/\s+/);
      if (words.includes("off")) return "off";
      return words.includes("power") ? "on" : null;
    }
    case "ykushcmd": {
      const m = /^Downstream port (\d+) is (ON|OFF)$/i.exec(line);
      if (!m || Number(m[1]) !== sw.port) return null;
      return m[2].toLowerCase() as PowerState;
    }
    case "usbrelay": {
      const m = /^(.+)_(\d+)=([01])$/.exec(line);
      if (!m || m[1] !== sw.id || Number(m[2]) !== sw.port) return null;
      return m[3] === "1" ? "on" : "off";
    }
    case "sispmctl": {
      const m = /^Status of outlet (\d+):\s*(on|off|0|1)$/i.exec(line);
      if (!m || Number(m[1]) !== sw.port) return null;
      return /^(on|1)$/i.test(m[2]) ? "on" : "off";
    }
  }
}
