/**
 * Rig inventory: `rigs.yaml` describes named rigs of nodes (host, user,
 * transport, relay, groups, console, timeouts); {@linkcode loadRig} reads
 * one rig as ready {@linkcode SshNode}s and {@linkcode Rig.select} picks
 * nodes with a clush-style node set (names, `@group`, globs, ranges, hosts
 * outside the rig; `,` `!` `&` `^` left to right).
 *
 * A bad file is refused as a whole, before anything runs, with a
 * {@linkcode RigFileError} naming the file, line and column; at most 1 MiB
 * of it is read, and it must be UTF-8 without tabs in its indentation.
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
import { SshNode, type SshNodeOptions } from "../node/node.ts";
import {
  checkRigFile,
  type NodeEntry,
  type RigFileData,
} from "./_rig_schema.ts";
import { parseAdHocHost, selectNames } from "../nodeset/nodeset.ts";
import type { Settings } from "../rigfile/_rig_checker.ts";
import type { PowerSwitch } from "../hardware/_power_tools.ts";
import {
  type PowerAction,
  powerNodes,
  type PowerOptions,
  type PowerResult,
} from "../hardware/power.ts";
import type { SerialConfig } from "../hardware/serial.ts";
import {
  parseYamlWithPositions,
  YamlSyntaxError,
} from "../rigfile/_yaml_positions.ts";
import { checkRigTextSize, readRigText } from "../rigfile/_rig_text.ts";
import {
  type Lease,
  type LeaseRequest,
  type LeaseStore,
  openLeaseStore,
} from "../lease/lease.ts";

/**
 * The file {@linkcode loadRig} reads when given no path.
 *
 * @example
 * ```ts
 * import { DEFAULT_RIG_FILE } from "../../mod.ts";
 * console.log(DEFAULT_RIG_FILE); // "rigs.yaml", read from the working directory
 * ```
 */
export const DEFAULT_RIG_FILE = "rigs.yaml";

/**
 * The rig used when no rig file exists: this machine, no SSH. It is the
 * same as the `local` rig of the repository's `rigs.yaml`.
 *
 * @example
 * ```ts
 * import { BUILTIN_RIG_YAML, parseRig } from "../../mod.ts";
 * const rig = parseRig(BUILTIN_RIG_YAML);
 * console.log(rig.nodes.map((n) => n.name)); // ["local"]
 * ```
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

/**
 * One rig: its nodes, groups, and node-set selection.
 *
 * @example
 * ```ts
 * import { parseRig } from "../../mod.ts";
 * const rig = parseRig(
 *   "rigs:\n  lab:\n    nodes:\n      n1: { host: localhost, transport: local, groups: [duts] }\n",
 * );
 * console.log(rig.select("@duts").map((n) => n.name)); // ["n1"]
 * ```
 */
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
  /** Settings of hosts selected outside the rig (the rig's defaults). */
  readonly adHocDefaults: Readonly<Partial<SshNodeOptions>>;
  /** The lease store (`leases:`): a SQLite file path or a postgres:// URL. */
  readonly leases?: string;
  /** Whether nothing may run on a node without a lease (`requireLease:`). */
  readonly requireLease: boolean;
  /** The state store file (`state:`), when the rig file names one. */
  readonly state?: string;
  /**
   * The cap on live ControlMasters the rig file asks for (`maxMasters:`);
   * `fiwi` applies it with `setMaxMasters` unless `--max-masters` is given.
   */
  readonly maxMasters?: number;
  #adHoc = new Map<string, SshNode>();
  #store: Promise<LeaseStore> | undefined;

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
      adHocDefaults?: Partial<SshNodeOptions>;
      leases?: string;
      requireLease?: boolean;
      state?: string;
      maxMasters?: number;
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
    this.adHocDefaults = options.adHocDefaults ?? {};
    if (options.leases !== undefined) this.leases = options.leases;
    this.requireLease = options.requireLease ?? false;
    if (options.state !== undefined) this.state = options.state;
    if (options.maxMasters !== undefined) this.maxMasters = options.maxMasters;
  }

  /** The node called `name`, or undefined. */
  node(name: string): SshNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  /**
   * Nodes a clush-style node set selects (see src/nodeset/nodeset.ts): names,
   * `@group`, globs (`dut*`), ranges (`dut[01-64/8]`), `all`, hosts outside
   * the rig (`[user@]host[:port]`), combined left to right with `,` union,
   * `!` difference, `&` intersection and `^` symmetric difference. Rig
   * nodes come in rig order, then the other hosts, as nodes named by their
   * text with the rig's defaults (the same node for the same text). Throws
   * {@linkcode ConfigurationError} when an item matches no node.
   */
  select(pattern: string): SshNode[] {
    const byName = new Map(this.nodes.map((n) => [n.name, n]));
    const names = selectNames(pattern, {
      rig: this.name,
      names: [...byName.keys()],
      groups: this.groups,
    });
    return names.map((n) => byName.get(n) ?? this.#adHocNode(n));
  }

  /** The node for a host outside the rig, made once per text. */
  #adHocNode(text: string): SshNode {
    const known = this.#adHoc.get(text);
    if (known) return known;
    const { host, user, port } = parseAdHocHost(text)!;
    const node = new SshNode({
      ...this.adHocDefaults,
      name: text,
      host,
      // Without user@ and a rig-wide user, ssh's config decides, as for
      // `ssh host` (not "root", SshNode's own default).
      user: user ?? this.adHocDefaults.user ?? null,
      ...(port !== undefined && { port }),
    });
    node.validate();
    this.#adHoc.set(text, node);
    return node;
  }

  /**
   * Switch the power of the selected nodes (a pattern as for
   * {@linkcode Rig.select}, or nodes) with the switch of each node's
   * `power:` entry, or read its state (`"status"`). Resolves with one
   * {@linkcode PowerResult} per node; rejects before anything is switched
   * for a node without `power:`, a tool missing on its `via` node or an
   * unreachable `via` node. See src/hardware/power.ts.
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

  /**
   * The rig's lease store (`leases:`), opened on first use and closed by
   * {@linkcode Rig.close}; null when the rig names none. Rejects with
   * {@linkcode ConfigurationError} when it cannot be opened.
   */
  leaseStore(): Promise<LeaseStore | null> {
    if (this.leases === undefined) return Promise.resolve(null);
    if (!this.#store) {
      const opening = openLeaseStore(this.leases);
      // A store that failed to open is tried afresh next time.
      opening.catch(() => {
        if (this.#store === opening) this.#store = undefined;
      });
      this.#store = opening;
    }
    return this.#store;
  }

  /**
   * Take a lease on nodes of this rig (a pattern as for
   * {@linkcode Rig.select}, or nodes or node names) in the rig's store; see
   * {@linkcode LeaseStore.take}. {@linkcode ConfigurationError} when the
   * rig has no `leases:`.
   *
   * @example
   * ```ts
   * import { parseRig } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using rig = parseRig(
   *   `rigs:\n  lab:\n    leases: ${dir}/leases.db\n    nodes:\n      n1: { transport: local }\n`,
   * );
   * await using lease = await rig.lease("n1", { for: 60_000, note: "flashing" });
   * console.log(lease.nodes); // ["n1"]
   * ```
   */
  async lease(
    nodes: readonly (string | SshNode)[] | string,
    options: Omit<LeaseRequest, "nodes">,
  ): Promise<Lease> {
    const names = typeof nodes === "string"
      ? this.select(nodes).map((n) => n.name)
      : nodes.map((n) => typeof n === "string" ? n : n.name);
    const store = await this.leaseStore();
    if (store === null) {
      throw new ConfigurationError(
        `Rig "${this.name}" has no lease store: add "leases: <SQLite file or postgres:// URL>" to it in "${this.file}"`,
      );
    }
    return store.take({ ...options, nodes: names });
  }

  /**
   * Close every node's ControlMaster (and console), ad-hoc hosts too, and
   * the lease store if it was opened (leases taken stay until they expire
   * or are dropped).
   */
  async close(): Promise<void> {
    const all = [...this.nodes, ...this.#adHoc.values()];
    const store = this.#store;
    this.#store = undefined;
    await Promise.all([
      ...all.map((n) => n.close()),
      store?.then((s) => s.close(), () => {}),
    ]);
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

/**
 * Node options from the rig-wide settings, for hosts outside the rig. A
 * host given by address is reached over the network: a rig-wide `local`
 * transport does not apply to it.
 */
/**
 * The rig's nodes, each gateway made before the nodes behind it (the
 * checker has refused unknown gateways and cycles).
 */
function makeNodes(entries: readonly NodeEntry[]): SshNode[] {
  const byName = new Map(entries.map((n) => [n.options.name, n]));
  const made = new Map<string, SshNode>();
  const make = (n: NodeEntry): SshNode => {
    const known = made.get(n.options.name);
    if (known) return known;
    const gateway = n.gateway ? make(byName.get(n.gateway.name)!) : undefined;
    const node = new SshNode({ ...n.options, ...(gateway && { gateway }) });
    node.validate();
    made.set(n.options.name, node);
    return node;
  };
  return entries.map(make);
}

function adHocDefaults(settings: Settings): Partial<SshNodeOptions> {
  const out: Record<string, unknown> = {};
  for (const [key, { value }] of settings) {
    // A host outside the rig is reached directly, never through a gateway.
    if (key === "gateway") continue;
    if (value !== null && !(key === "transport" && value === "local")) {
      out[key] = value;
    }
  }
  return out as Partial<SshNodeOptions>;
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
 *
 * @example
 * ```ts
 * import { parseRig } from "../../mod.ts";
 * const rig = parseRig("rigs:\n  lab:\n    nodes:\n      n1: { host: localhost, transport: local }\n");
 * console.log(rig.nodes[0].name); // "n1"
 * ```
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
  const nodes = makeNodes(entry.nodes);
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
    adHocDefaults: adHocDefaults(entry.defaults),
    powerSwitches,
    serialPorts,
    file,
    description: entry.description,
    groups,
    rigNames,
    ...(entry.leases !== undefined && { leases: entry.leases }),
    requireLease: entry.requireLease,
    ...(entry.state !== undefined && { state: entry.state }),
    ...(entry.maxMasters !== undefined && { maxMasters: entry.maxMasters }),
  });
}

/**
 * Read a rig file and build one rig of it.
 *
 * @param path the file (default `./rigs.yaml`; when that does not exist,
 *   the built-in `local` rig: this machine, no SSH)
 * @param name the rig (default: the file's `default`, or its only rig)
 *
 * @example
 * ```ts
 * import { loadRig } from "../../mod.ts";
 * const file = await Deno.makeTempFile({ suffix: ".yaml" });
 * await Deno.writeTextFile(file, "rigs:\n  lab:\n    nodes:\n      n1: { host: localhost, transport: local }\n");
 * const rig = await loadRig(file, "lab");
 * console.log(rig.nodes.map((n) => n.name)); // ["n1"]
 * await Deno.remove(file);
 * ```
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
