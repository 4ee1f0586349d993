/**
 * The rig file's schema: checks parsed YAML key by key and turns it into
 * node options, throwing a {@linkcode RigFileError} at the exact line and
 * column of the first problem (unknown key with the closest known one,
 * wrong type, bad duration, unsafe host, missing host, bad name).
 *
 * @module
 */

import { RigFileError } from "../errors.ts";
import type { SshNodeOptions } from "../node/node.ts";
import { validateNodeOptions } from "../node/_node_options.ts";
import { validateVarName } from "../node/node_values.ts";
import {
  parseRelay,
  validateHost,
  validatePort,
  validateSshOptions,
  validateUser,
} from "../transport/validate.ts";
import { shown } from "../rigfile/duration.ts";
import type { LocatedYaml, PathStep } from "../rigfile/_yaml_positions.ts";
import type { PowerSwitch } from "../hardware/_power_tools.ts";
import type { SerialConfig } from "../hardware/serial.ts";
import { checkPower, checkSerial } from "../hardware/_rig_hardware.ts";
import {
  Checker,
  closest,
  LEASE_KEYS,
  NAME_RE,
  SETTING_KEYS,
  type Settings,
  STATE_KEYS,
} from "../rigfile/_rig_checker.ts";

/** One node of a rig, checked. */
export interface NodeEntry {
  /** Node options for `new SshNode`. */
  options: SshNodeOptions;
  /** Groups the node belongs to. */
  groups: string[];
  /** Path of the node's key in the file. */
  path: PathStep[];
  /** The switch that powers the node (`power:`), if any. */
  power?: PowerSwitch;
  /** The serial port its console is wired to (`serial:`), if any. */
  serial?: SerialConfig;
  /** The node of the rig it is reached through (`gateway:`), and where that was said. */
  gateway?: { name: string; path: PathStep[] };
}

/** One rig of the file, checked. */
export interface RigEntry {
  /** Rig name. */
  name: string;
  /** Free text. */
  description: string;
  /** Nodes in file order. */
  nodes: NodeEntry[];
  /** The rig-wide settings (file and rig defaults, rig relay), for ad-hoc hosts. */
  defaults: Settings;
  /** The lease store (`leases:`): a SQLite file path or a postgres:// URL. */
  leases?: string;
  /** Whether every node needs a lease (`requireLease:`). */
  requireLease: boolean;
  /** The state store file (`state:`), when the rig or its defaults name one. */
  state?: string;
  /** The cap on live ControlMasters (`maxMasters:`), when given. */
  maxMasters?: number;
}

/** The lease keys as given so far: the rig's own over its defaults over the file's. */
interface LeaseSettings {
  leases?: string;
  /** The state store (`state:`): not a lease key, but inherited the same way. */
  state?: string;
  /** The cap on live masters (`maxMasters:`): inherited the same way. */
  maxMasters?: number;
  requireLease?: boolean;
}

/** The whole file, checked. */
export interface RigFileData {
  /** The rig used when none is named, if the file says. */
  defaultRig?: string;
  /** Rigs in file order. */
  rigs: Map<string, RigEntry>;
}

const NODE_KEYS = [
  ...Object.keys(SETTING_KEYS),
  "host",
  "groups",
  "power",
  "serial",
];
const RIG_KEYS = [
  "description",
  "relay",
  "relayMode",
  "gateway",
  "defaults",
  "nodes",
  ...Object.keys(LEASE_KEYS),
  ...Object.keys(STATE_KEYS),
];
/** Keys of the file's and a rig's `defaults`. */
const DEFAULTS_KEYS = [
  ...Object.keys(SETTING_KEYS),
  ...Object.keys(LEASE_KEYS),
  ...Object.keys(STATE_KEYS),
];
const TOP_KEYS = ["default", "defaults", "rigs"];

/**
 * Check a parsed rig file and return its rigs. `file` names the file in
 * errors and anchors relative paths; `home` expands `~`.
 */
export function checkRigFile(
  file: string,
  doc: LocatedYaml,
  home?: string,
): RigFileData {
  const c: Checker = new Checker(file, doc, home);
  const dup = doc.duplicates[0];
  if (dup) {
    const name = dup.path.at(-1);
    const isNode = dup.path.length === 4 && dup.path[0] === "rigs" &&
      dup.path[2] === "nodes";
    throw new RigFileError(
      file,
      dup.again.line,
      dup.again.column,
      isNode
        ? `Duplicate node name "${name}" in rig "${
          dup.path[1]
        }": first defined at line ${dup.first.line}`
        : `Duplicate key "${name}": first given at line ${dup.first.line}`,
    );
  }
  if (doc.data === null) {
    throw new RigFileError(
      file,
      1,
      1,
      `The file is empty: add a "rigs:" mapping`,
    );
  }
  const top = c.mapping(doc.data, [], "file content");
  c.knownKeys(top, [], TOP_KEYS, "the file");
  const globals: Settings = new Map();
  const globalMap = c.mapping(top.defaults, ["defaults"], "defaults");
  c.knownKeys(globalMap, ["defaults"], DEFAULTS_KEYS, "defaults");
  checkSettings(c, globalMap, ["defaults"], globals);
  const globalLeases: LeaseSettings = {};
  checkLeaseKeys(c, globalMap, ["defaults"], globalLeases);

  if (top.rigs === undefined || top.rigs === null) {
    throw new RigFileError(
      file,
      1,
      1,
      `The file has no "rigs:" mapping: add one with at least one rig`,
    );
  }
  const rigsMap = c.mapping(top.rigs, ["rigs"], "rigs");
  const rigs = new Map<string, RigEntry>();
  for (const [rigName, rigValue] of Object.entries(rigsMap)) {
    rigs.set(rigName, checkRig(c, rigName, rigValue, globals, globalLeases));
  }
  if (rigs.size === 0) {
    c.failValue(["rigs"], `rigs is empty: add at least one rig`);
  }

  const defaultRig = top.default;
  if (defaultRig !== undefined) {
    if (typeof defaultRig !== "string") {
      c.failValue(
        ["default"],
        `Invalid default ${shown(defaultRig)}: give a rig name`,
      );
    }
    if (!rigs.has(defaultRig)) {
      const hint = closest(defaultRig, [...rigs.keys()]);
      c.failValue(
        ["default"],
        `Default rig "${defaultRig}" is not defined under rigs` +
          (hint ? `: did you mean "${hint}"?` : ""),
      );
    }
  }
  return { defaultRig, rigs };
}

/**
 * The settings of `map` into `into` (see {@linkcode Checker.settings}), each
 * `vars:` name first checked at its own place by the node layer's rule.
 */
function checkSettings(
  c: Checker,
  map: Record<string, unknown>,
  path: PathStep[],
  into: Settings,
): void {
  const vars = map.vars;
  if (typeof vars === "object" && vars !== null && !Array.isArray(vars)) {
    for (const key of Object.keys(vars)) {
      c.guardKey([...path, "vars", key], () => validateVarName(key));
    }
  }
  c.settings(map, path, into);
}

/**
 * The lease keys of `map` into `into`, converted; `null` clears a more
 * general one (`leases: null` in a rig: no leases for it).
 */
function checkLeaseKeys(
  c: Checker,
  map: Record<string, unknown>,
  path: PathStep[],
  into: LeaseSettings,
): void {
  for (const [key, kind] of Object.entries({ ...LEASE_KEYS, ...STATE_KEYS })) {
    if (!(key in map)) continue;
    const k = key as keyof LeaseSettings;
    if (map[key] === null) delete into[k];
    else {
      (into as Record<string, unknown>)[k] = c.convert(
        kind,
        key,
        map[key],
        [...path, key],
      );
    }
  }
}

function checkRig(
  c: Checker,
  name: string,
  value: unknown,
  globals: Settings,
  globalLeases: LeaseSettings,
): RigEntry {
  const path: PathStep[] = ["rigs", name];
  c.name(name, path, "rig");
  const map = c.mapping(value, path, `rig "${name}"`);
  c.knownKeys(map, path, RIG_KEYS, `rig "${name}"`);
  const settings: Settings = new Map(globals);
  const defaultsMap = c.mapping(
    map.defaults,
    [...path, "defaults"],
    "defaults",
  );
  c.knownKeys(
    defaultsMap,
    [...path, "defaults"],
    DEFAULTS_KEYS,
    `the defaults of rig "${name}"`,
  );
  checkSettings(c, defaultsMap, [...path, "defaults"], settings);
  const leases: LeaseSettings = { ...globalLeases };
  checkLeaseKeys(c, defaultsMap, [...path, "defaults"], leases);
  checkLeaseKeys(c, map, path, leases);
  // The rig's own relay keys are the most specific rig-wide settings.
  for (const key of ["relay", "relayMode", "gateway"]) {
    if (key in map) c.settings({ [key]: map[key] }, path, settings);
  }
  let description = "";
  if (map.description !== undefined && map.description !== null) {
    if (typeof map.description !== "string") {
      c.failValue(
        [...path, "description"],
        `Invalid description ${shown(map.description)}: give text`,
      );
    }
    description = map.description;
  }
  if (map.nodes === undefined || map.nodes === null) {
    c.failKey(path, `Rig "${name}" has no nodes: add a "nodes:" mapping`);
  }
  const nodesMap = c.mapping(map.nodes, [...path, "nodes"], "nodes");
  // Listed once: a list per node made big rigs quadratic.
  const rigNodes = Object.keys(nodesMap);
  const nodes = Object.entries(nodesMap).map(([nodeName, nodeValue]) =>
    checkNode(c, name, nodeName, nodeValue, settings, rigNodes)
  );
  if (nodes.length === 0) {
    c.failValue(
      [...path, "nodes"],
      `Rig "${name}" has no nodes: add at least one`,
    );
  }
  checkGateways(c, name, nodes);
  if (leases.requireLease && leases.leases === undefined) {
    c.failKey(
      path,
      `Rig "${name}" requires a lease but names no lease store: add "leases: <SQLite file or postgres:// URL>"`,
    );
  }
  return {
    name,
    description,
    nodes,
    defaults: settings,
    ...(leases.leases !== undefined && { leases: leases.leases }),
    requireLease: leases.requireLease ?? false,
    ...(leases.state !== undefined && { state: leases.state }),
    ...(leases.maxMasters !== undefined && { maxMasters: leases.maxMasters }),
  };
}

function checkNode(
  c: Checker,
  rig: string,
  name: string,
  value: unknown,
  inherited: Settings,
  rigNodes: readonly string[],
): NodeEntry {
  const path: PathStep[] = ["rigs", rig, "nodes", name];
  c.name(name, path, "node");
  // `dut1: 10.0.0.11` is short for `dut1: { host: 10.0.0.11 }`.
  // A number (`dut1: 10.5`) is a host given without quotes: said below.
  const short = typeof value === "string" || typeof value === "number";
  const map = short
    ? { host: value }
    : c.mapping(value, path, `node "${name}"`);
  const hostPath = short ? path : [...path, "host"];
  c.knownKeys(map, path, NODE_KEYS, `node "${name}"`);
  const s: Settings = new Map(inherited);
  checkSettings(c, map, path, s);

  const groups = new Set<string>();
  if (map.groups !== undefined && map.groups !== null) {
    const list = typeof map.groups === "string" ? [map.groups] : map.groups;
    if (!Array.isArray(list)) {
      c.failValue(
        [...path, "groups"],
        `Invalid groups ${shown(map.groups)}: give a list of names`,
      );
    }
    list.forEach((g, i) => {
      const p = () =>
        typeof map.groups === "string"
          ? [...path, "groups"]
          : [...path, "groups", i];
      if (typeof g !== "string") {
        c.failValue(p(), `Invalid group name ${shown(g)}: give text`);
      }
      if (!NAME_RE.test(g)) {
        c.failValue(
          p(),
          `Invalid group name ${
            JSON.stringify(g)
          }: use letters, digits, ".", "_" and "-" (not first)`,
        );
      }
      groups.add(g);
    });
  }

  const get = <T>(key: string): T | undefined =>
    s.get(key)?.value as T | undefined;
  const transport = get<"ssh" | "ush" | "local">("transport") ?? "ssh";
  let host = map.host;
  if (host === undefined || host === null) {
    if (transport !== "local") {
      c.failKey(path, `Node "${name}" has no host: add "host: <address>"`);
    }
    host = "localhost";
  }
  if (typeof host !== "string") {
    c.failValue(
      hostPath,
      `Invalid host ${
        shown(host)
      }: give a host name or IP address as text (quote it in YAML)`,
    );
  }
  const relay = get<string | null>("relay") ?? undefined;
  if (transport !== "local") {
    c.guard(hostPath, () => validateHost(host as string));
    const user = s.get("user");
    if (user) c.guard(user.path, () => validateUser(user.value as string));
    const port = s.get("port");
    if (port) c.guard(port.path, () => validatePort(port.value as number));
    const r = s.get("relay");
    if (r && relay) c.guard(r.path, () => parseRelay(relay));
    const opts = s.get("sshOptions");
    if (opts) {
      c.guard(
        opts.path,
        () => validateSshOptions(opts.value as Record<string, string>),
      );
    }
    const mode = s.get("relayMode");
    if (relay && mode?.value === "jump" && transport !== "ssh") {
      c.failValue(
        mode.path,
        `Relay mode "jump" needs the ssh transport, node "${name}" uses "${transport}": use relayMode "nested"`,
      );
    }
  }
  const gateway = nodeGateway(c, name, path, s, transport, relay);
  const options: SshNodeOptions = { name, host: host as string };
  for (const [key, setting] of s) {
    if (key === "relay" || key === "gateway") continue;
    (options as unknown as Record<string, unknown>)[key] = setting.value;
  }
  if (relay) options.relay = relay;
  // Whatever the checks above do not cover, the node's own check refuses,
  // run on the options alone: a node made here would join the registry.
  c.guardKey(path, () => validateNodeOptions(options));
  const entry: NodeEntry = { options, groups: [...groups], path };
  if (gateway) entry.gateway = gateway;
  const ctx = { node: name, rigNodes, rig };
  if (map.power !== undefined && map.power !== null) {
    entry.power = checkPower(c, [...path, "power"], map.power, ctx);
  }
  if (map.serial !== undefined && map.serial !== null) {
    entry.serial = checkSerial(c, [...path, "serial"], map.serial, ctx);
  }
  return entry;
}

/**
 * The gateway a node is reached through, if any. An inherited gateway
 * naming the node itself is that gateway, reached directly; said on the
 * node itself it is an error, as is a gateway with a relay or another
 * transport than ssh.
 */
function nodeGateway(
  c: Checker,
  name: string,
  nodePath: PathStep[],
  s: Settings,
  transport: string,
  relay: string | undefined,
): NodeEntry["gateway"] {
  const setting = s.get("gateway");
  const gateway = setting?.value as string | null | undefined;
  if (!setting || !gateway) return undefined;
  const own = setting.path.length === nodePath.length + 1 &&
    nodePath.every((step, i) => setting.path[i] === step);
  if (gateway === name) {
    if (!own) return undefined;
    c.failValue(setting.path, `Node "${name}" cannot be its own gateway`);
  }
  if (transport !== "ssh" || relay) {
    c.failValue(
      setting.path,
      `Node "${name}" has gateway "${gateway}": it needs the ssh transport and no relay`,
    );
  }
  return { name: gateway, path: setting.path };
}

/** Every gateway names a node of the rig, and no chain of them loops. */
function checkGateways(c: Checker, rig: string, nodes: NodeEntry[]): void {
  const byName = new Map(nodes.map((n) => [n.options.name, n]));
  for (const n of nodes) {
    if (n.gateway && !byName.has(n.gateway.name)) {
      const near = closest(n.gateway.name, [...byName.keys()]);
      c.failValue(
        n.gateway.path,
        `Unknown gateway "${n.gateway.name}" for node "${n.options.name}": rig "${rig}" has no such node${
          near ? ` (did you mean "${near}"?)` : ""
        }`,
      );
    }
  }
  for (const n of nodes) {
    const chain = [n.options.name];
    for (let g = n.gateway; g; g = byName.get(g.name)!.gateway) {
      chain.push(g.name);
      if (g.name === n.options.name) {
        c.failValue(
          n.gateway!.path,
          `Gateways form a cycle: ${chain.join(" -> ")}`,
        );
      }
      if (chain.length > nodes.length + 1) break;
    }
  }
}
