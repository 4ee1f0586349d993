/**
 * Rig inventory: `rigs.yaml` describes named rigs of nodes (host, user,
 * transport, relay, groups, console, timeouts); {@linkcode loadRig} reads
 * one rig as ready {@linkcode SshNode}s and {@linkcode Rig.select} picks
 * nodes by name, `@group`, glob, numeric range or comma list.
 *
 * A bad file is refused as a whole, before anything runs, with a
 * {@linkcode RigFileError} naming the file, line and column.
 *
 * ```yaml
 * default: lab
 * defaults:
 *   user: root
 *   connectTimeout: 5s
 * rigs:
 *   lab:
 *     relay: admin@10.0.0.1
 *     nodes:
 *       dut1: { host: 10.0.0.11, groups: [duts], console: true }
 *       dut2: 10.0.0.12
 * ```
 *
 * @example
 * ```ts
 * import { parseRig } from "../../mod.ts";
 * const rig = parseRig(
 *   "rigs:\n  here:\n    nodes:\n      me: { transport: local }\n",
 *   { file: "inline.yaml" },
 * );
 * console.log(rig.select("all").map((n) => n.name)); // ["me"]
 * ```
 *
 * @module
 */

import { ConfigurationError, RigFileError } from "../errors.ts";
import { SshNode } from "../node/node.ts";
import { checkRigFile, type RigFileData } from "./_rig_schema.ts";
import { selectNames } from "./nodeset.ts";
import type { PowerSwitch } from "./_power_tools.ts";
import {
  type PowerAction,
  powerNodes,
  type PowerOptions,
  type PowerResult,
} from "./power.ts";
import type { SerialConfig } from "./serial.ts";
import { parseYamlWithPositions, YamlSyntaxError } from "./_yaml_positions.ts";
import { checkRigTextSize, readRigText } from "./_rig_text.ts";

/** The file {@linkcode loadRig} reads when given no path. */
export const DEFAULT_RIG_FILE = "rigs.yaml";

/**
 * The rig used when no rig file exists: this machine, no SSH. It is the
 * same as the `local` rig of the repository's `rigs.yaml`.
 */
export const BUILTIN_RIG_YAML = `default: local
rigs:
  local:
    description: This machine, no SSH needed
    nodes:
      local:
        transport: local
        groups: [controller]
        console: true
        consoleCommand: dmesg -w 2>/dev/null || journalctl -k -f -n 0
`;

/** Options of {@linkcode parseRig}. */
export interface ParseRigOptions {
  /** Name of the file in errors; relative paths in it are relative to its directory. */
  file?: string;
  /** The rig to use (default: the file's `default`, or its only rig). */
  name?: string;
  /** Home directory for `~/` in paths (default: env HOME). */
  home?: string;
}

/** One rig: its nodes, groups, and node-set selection. */
export class Rig implements AsyncDisposable {
  /** Rig name. */
  readonly name: string;
  /** The file it came from (`"<built-in>"` for the embedded local rig). */
  readonly file: string;
  /** Free text from the file. */
  readonly description: string;
  /** Nodes in file order. */
  readonly nodes: SshNode[];
  /** Group name to member node names, in file order. */
  readonly groups: ReadonlyMap<string, readonly string[]>;
  /** Every rig name the file defines. */
  readonly rigNames: readonly string[];
  /** Node name to the switch that powers it (`power:` in the file). */
  readonly powerSwitches: ReadonlyMap<string, PowerSwitch>;
  /** Node name to the serial port its console is wired to (`serial:`). */
  readonly serialPorts: ReadonlyMap<string, SerialConfig>;

  /**
   * A rig of ready nodes; {@linkcode loadRig} and {@linkcode parseRig}
   * build one from a file.
   *
   * @param name rig name
   * @param nodes nodes in order (names unique)
   * @param options where it came from, its groups and description
   */
  constructor(
    name: string,
    nodes: SshNode[],
    options: {
      file?: string;
      description?: string;
      groups?: ReadonlyMap<string, readonly string[]>;
      rigNames?: readonly string[];
      powerSwitches?: ReadonlyMap<string, PowerSwitch>;
      serialPorts?: ReadonlyMap<string, SerialConfig>;
    } = {},
  ) {
    this.name = name;
    this.nodes = nodes;
    this.file = options.file ?? "<inline>";
    this.description = options.description ?? "";
    this.groups = options.groups ?? new Map();
    this.rigNames = options.rigNames ?? [name];
    this.powerSwitches = options.powerSwitches ?? new Map();
    this.serialPorts = options.serialPorts ?? new Map();
  }

  /** The node called `name`, or undefined. */
  node(name: string): SshNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  /**
   * Nodes matching `pattern`, in rig order: a comma list of names,
   * `@group`, globs (`dut*`), numeric ranges (`dut[1-3]`), `all`, and
   * `!item` to leave nodes out. Throws {@linkcode ConfigurationError} when an
   * item matches no node.
   */
  select(pattern: string): SshNode[] {
    const names = selectNames(pattern, {
      rig: this.name,
      names: this.nodes.map((n) => n.name),
      groups: this.groups,
    });
    return names.map((n) => this.node(n)!);
  }

  /**
   * Switch the power of the selected nodes (a pattern as for
   * {@linkcode Rig.select}, or nodes) with the switch of each node's
   * `power:` entry, or read its state (`"status"`). Resolves with one
   * {@linkcode PowerResult} per node; rejects before anything is switched
   * for a node without `power:`, a tool missing on its `via` node or an
   * unreachable `via` node. See src/rig/power.ts.
   */
  power(
    selection: string | readonly SshNode[],
    action: PowerAction,
    options: PowerOptions = {},
  ): Promise<PowerResult[]> {
    const nodes = typeof selection === "string"
      ? this.select(selection)
      : selection;
    return powerNodes(this, nodes, action, options);
  }

  /** Close every node's ControlMaster (and console). */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.close()));
  }

  /** Same as {@linkcode Rig.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function envHome(): string | undefined {
  try {
    return Deno.env.get("HOME") || undefined;
  } catch {
    return undefined;
  }
}

function parseFile(text: string, file: string, home?: string): RigFileData {
  checkRigTextSize(file, text);
  try {
    return checkRigFile(file, parseYamlWithPositions(text), home);
  } catch (e) {
    if (e instanceof YamlSyntaxError) {
      throw new RigFileError(
        file,
        e.pos.line,
        e.pos.column,
        `Invalid YAML: ${e.message}`,
        {
          cause: e,
        },
      );
    }
    throw e;
  }
}

/**
 * Parse rig-file text and build one rig. Throws {@linkcode RigFileError}
 * for anything wrong in the text, {@linkcode ConfigurationError} for an
 * unknown rig name.
 */
export function parseRig(text: string, options: ParseRigOptions = {}): Rig {
  const file = options.file ?? "<inline>";
  const data = parseFile(text, file, options.home ?? envHome());
  const rigNames = [...data.rigs.keys()];
  let name = options.name ?? data.defaultRig;
  if (name === undefined) {
    if (rigNames.length !== 1) {
      throw new RigFileError(
        file,
        0,
        0,
        `The file defines ${rigNames.length} rigs and no default: add "default: <rig>" or choose one of ${
          rigNames.map((r) => `"${r}"`).join(", ")
        }`,
      );
    }
    name = rigNames[0];
  }
  const entry = data.rigs.get(name);
  if (!entry) {
    throw new ConfigurationError(
      `Rig "${name}" is not defined in "${file}": choose one of ${
        rigNames.map((r) => `"${r}"`).join(", ")
      }`,
    );
  }
  const nodes = entry.nodes.map((n) => {
    const node = new SshNode(n.options);
    node.validate();
    return node;
  });
  const groups = new Map<string, string[]>();
  for (const n of entry.nodes) {
    for (const g of n.groups) {
      const members = groups.get(g) ?? [];
      members.push(n.options.name);
      groups.set(g, members);
    }
  }
  const powerSwitches = new Map<string, PowerSwitch>();
  const serialPorts = new Map<string, SerialConfig>();
  for (const n of entry.nodes) {
    if (n.power) powerSwitches.set(n.options.name, n.power);
    if (n.serial) serialPorts.set(n.options.name, n.serial);
  }
  return new Rig(name, nodes, {
    powerSwitches,
    serialPorts,
    file,
    description: entry.description,
    groups,
    rigNames,
  });
}

/**
 * Read a rig file and build one rig of it.
 *
 * @param path the file (default `./rigs.yaml`; when that does not exist,
 *   the built-in `local` rig: this machine, no SSH)
 * @param name the rig (default: the file's `default`, or its only rig)
 */
export async function loadRig(path?: string, name?: string): Promise<Rig> {
  const file = path ?? DEFAULT_RIG_FILE;
  let text: string;
  try {
    text = await readRigText(file);
  } catch (e) {
    if (e instanceof RigFileError) throw e;
    if (path === undefined && e instanceof Deno.errors.NotFound) {
      return parseRig(BUILTIN_RIG_YAML, { file: "<built-in>", name });
    }
    const why = e instanceof Deno.errors.NotFound
      ? "No such file"
      : e instanceof Deno.errors.IsADirectory
      ? "It is a directory"
      : (e as Error).message;
    throw new RigFileError(file, 0, 0, `Cannot read the rig file: ${why}`, {
      cause: e,
    });
  }
  return parseRig(text, { file, name });
}
