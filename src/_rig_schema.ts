/**
 * The rig file's schema: checks parsed YAML key by key and turns it into
 * node options, throwing a {@linkcode RigFileError} at the exact line and
 * column of the first problem (unknown key with the closest known one,
 * wrong type, bad duration, unsafe host, missing host, bad name).
 *
 * @module
 */

import { dirname, isAbsolute, join } from "jsr:@std/path@^1";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { ConfigurationError, RigFileError } from "./errors.ts";
import { SshNode, type SshNodeOptions } from "./node.ts";
import {
  parseRelay,
  validateHost,
  validatePort,
  validateSshOptions,
  validateUser,
} from "./transport.ts";
import { parseDuration, shown } from "./_duration.ts";
import type { LocatedYaml, PathStep } from "./_yaml_positions.ts";

/** One node of a rig, checked. */
export interface NodeEntry {
  /** Node options for `new SshNode`. */
  options: SshNodeOptions;
  /** Groups the node belongs to. */
  groups: string[];
  /** Path of the node's key in the file. */
  path: PathStep[];
}

/** One rig of the file, checked. */
export interface RigEntry {
  /** Rig name. */
  name: string;
  /** Free text. */
  description: string;
  /** Nodes in file order. */
  nodes: NodeEntry[];
}

/** The whole file, checked. */
export interface RigFileData {
  /** The rig used when none is named, if the file says. */
  defaultRig?: string;
  /** Rigs in file order. */
  rigs: Map<string, RigEntry>;
}

type Kind =
  | "text"
  | "path"
  | "boolean"
  | "port"
  | "duration"
  | "relay"
  | "options"
  | readonly string[];

/** Keys a node, a rig's `defaults` and the top-level `defaults` accept. */
const SETTING_KEYS: Record<string, Kind> = {
  user: "text",
  port: "port",
  transport: ["ssh", "ush", "local"],
  relay: "relay",
  relayMode: ["nested", "jump"],
  ushPath: "text",
  controlMaster: "boolean",
  silent: "boolean",
  console: "boolean",
  consoleCommand: "text",
  device: "text",
  devip: "text",
  sshConfig: "path",
  identityFile: "path",
  sshOptions: "options",
  hostKeyCheck: ["default", "accept-new", "off"],
  connectTimeout: "duration",
  ioTimeout: "duration",
  cmdTimeout: "duration",
};
const NODE_KEYS = [...Object.keys(SETTING_KEYS), "host", "groups"];
const RIG_KEYS = ["description", "relay", "relayMode", "defaults", "nodes"];
const TOP_KEYS = ["default", "defaults", "rigs"];

/** Node, group and rig names: safe in prefixes, patterns and file names. */
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

type Setting = { value: unknown; path: PathStep[] };
type Settings = Map<string, Setting>;

/** Checks one parsed file; every method throws at the first problem. */
class Checker {
  constructor(
    readonly file: string,
    readonly doc: LocatedYaml,
    readonly home: string | undefined,
  ) {}

  failKey(path: readonly PathStep[], what: string): never {
    const { line, column } = this.doc.keyAt(path);
    throw new RigFileError(this.file, line, column, what);
  }

  failValue(path: readonly PathStep[], what: string): never {
    const { line, column } = this.doc.valueAt(path);
    throw new RigFileError(this.file, line, column, what);
  }

  mapping(
    value: unknown,
    path: PathStep[],
    what: string,
  ): Record<string, unknown> {
    if (value === null || value === undefined) return {};
    if (typeof value !== "object" || Array.isArray(value)) {
      this.failValue(
        path,
        `Invalid ${what} ${shown(value)}: give a mapping of keys`,
      );
    }
    return value as Record<string, unknown>;
  }

  knownKeys(
    map: Record<string, unknown>,
    path: PathStep[],
    allowed: readonly string[],
    where: string,
  ): void {
    for (const key of Object.keys(map)) {
      if (allowed.includes(key)) continue;
      const hint = closest(key, allowed);
      this.failKey(
        [...path, key],
        `Unknown key "${key}" in ${where}` +
          (hint
            ? `: did you mean "${hint}"?`
            : `: known keys are ${allowed.map((k) => `"${k}"`).join(", ")}`),
      );
    }
  }

  name(value: string, path: PathStep[], kind: string): void {
    if (!NAME_RE.test(value)) {
      this.failKey(
        path,
        `Invalid ${kind} name ${
          JSON.stringify(value)
        }: use letters, digits, ".", "_" and "-" (not first)`,
      );
    }
  }

  /** Check every setting key of `map` and record it with its path. */
  settings(
    map: Record<string, unknown>,
    path: PathStep[],
    into: Settings,
  ): void {
    for (const [key, value] of Object.entries(map)) {
      const kind = SETTING_KEYS[key];
      if (!kind) continue; // the caller has rejected unknown keys
      const p = [...path, key];
      into.set(key, { value: this.convert(kind, key, value, p), path: p });
    }
  }

  convert(kind: Kind, key: string, value: unknown, path: PathStep[]): unknown {
    if (Array.isArray(kind)) {
      if (typeof value !== "string" || !kind.includes(value)) {
        this.failValue(
          path,
          `Invalid ${key} ${shown(value)}: use ${
            kind.map((k) => `"${k}"`).join(", ")
          }`,
        );
      }
      return value;
    }
    switch (kind) {
      case "text":
      case "path": {
        if (typeof value === "number") value = String(value);
        if (typeof value !== "string" || value.trim() === "") {
          this.failValue(
            path,
            `Invalid ${key} ${shown(value)}: give non-empty text`,
          );
        }
        return kind === "path" ? this.path(value as string) : value;
      }
      case "relay":
        if (value === null) return null; // explicit "no relay" for this node
        if (typeof value !== "string") {
          this.failValue(
            path,
            `Invalid relay ${shown(value)}: give text like "user@host"`,
          );
        }
        return value;
      case "boolean":
        if (typeof value !== "boolean") {
          this.failValue(
            path,
            `Invalid ${key} ${shown(value)}: use true or false`,
          );
        }
        return value;
      case "port":
        if (typeof value !== "number" || !Number.isInteger(value)) {
          this.failValue(
            path,
            `Invalid port ${shown(value)}: use a whole number from 1 to 65535`,
          );
        }
        return value;
      case "duration": {
        const ms = parseDuration(value);
        if (typeof ms === "string") {
          this.failValue(path, `Invalid ${key} ${shown(value)}: ${ms}`);
        }
        return ms;
      }
      case "options": {
        const map = this.mapping(value, path, "sshOptions");
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(map)) {
          if (typeof v === "boolean") out[k] = v ? "yes" : "no";
          else if (typeof v === "string" || typeof v === "number") {
            out[k] = String(v);
          } else {
            this.failValue(
              [...path, k],
              `Invalid value ${
                shown(v)
              } for ssh option "${k}": give text or a number`,
            );
          }
        }
        return out;
      }
    }
    return value;
  }

  /** `~/x` is under $HOME; a relative path is relative to the rig file. */
  path(value: string): string {
    if (value === "~" || value.startsWith("~/")) {
      return this.home ? this.home + value.slice(1) : value;
    }
    return isAbsolute(value) ? value : join(dirname(this.file), value);
  }

  /** Like {@linkcode Checker.guard}, pointing at the key. */
  guardKey(path: PathStep[], check: () => void): void {
    try {
      check();
    } catch (e) {
      if (e instanceof ConfigurationError) this.failKey(path, e.message);
      throw e;
    }
  }

  /** Run a transport validator; its error becomes a RigFileError at `path`. */
  guard(path: PathStep[], check: () => void): void {
    try {
      check();
    } catch (e) {
      if (e instanceof ConfigurationError) this.failValue(path, e.message);
      throw e;
    }
  }
}

/** The closest known key, when close enough to be a typo. */
function closest(word: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = levenshteinDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

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
  c.knownKeys(globalMap, ["defaults"], Object.keys(SETTING_KEYS), "defaults");
  c.settings(globalMap, ["defaults"], globals);

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
    rigs.set(rigName, checkRig(c, rigName, rigValue, globals));
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

function checkRig(
  c: Checker,
  name: string,
  value: unknown,
  globals: Settings,
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
    Object.keys(SETTING_KEYS),
    `the defaults of rig "${name}"`,
  );
  c.settings(defaultsMap, [...path, "defaults"], settings);
  // The rig's own relay keys are the most specific rig-wide settings.
  for (const key of ["relay", "relayMode"]) {
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
  const nodes = Object.entries(nodesMap).map(([nodeName, nodeValue]) =>
    checkNode(c, name, nodeName, nodeValue, settings)
  );
  if (nodes.length === 0) {
    c.failValue(
      [...path, "nodes"],
      `Rig "${name}" has no nodes: add at least one`,
    );
  }
  return { name, description, nodes };
}

function checkNode(
  c: Checker,
  rig: string,
  name: string,
  value: unknown,
  inherited: Settings,
): NodeEntry {
  const path: PathStep[] = ["rigs", rig, "nodes", name];
  c.name(name, path, "node");
  // `dut1: 10.0.0.11` is short for `dut1: { host: 10.0.0.11 }`.
  const map = typeof value === "string"
    ? { host: value }
    : c.mapping(value, path, `node "${name}"`);
  const hostPath = typeof value === "string" ? path : [...path, "host"];
  c.knownKeys(map, path, NODE_KEYS, `node "${name}"`);
  const s: Settings = new Map(inherited);
  c.settings(map, path, s);

  const groups: string[] = [];
  if (map.groups !== undefined && map.groups !== null) {
    const list = typeof map.groups === "string" ? [map.groups] : map.groups;
    if (!Array.isArray(list)) {
      c.failValue(
        [...path, "groups"],
        `Invalid groups ${shown(map.groups)}: give a list of names`,
      );
    }
    list.forEach((g, i) => {
      const p = typeof map.groups === "string"
        ? [...path, "groups"]
        : [...path, "groups", i];
      if (typeof g !== "string") {
        c.failValue(p, `Invalid group name ${shown(g)}: give text`);
      }
      if (!NAME_RE.test(g)) {
        c.failValue(
          p,
          `Invalid group name ${
            JSON.stringify(g)
          }: use letters, digits, ".", "_" and "-" (not first)`,
        );
      }
      if (!groups.includes(g)) groups.push(g);
    });
  }

  const get = <T>(key: string): T | undefined =>
    s.get(key)?.value as T | undefined;
  const transport = get<"ssh" | "ush" | "local">("transport") ?? "ssh";
  let host = typeof map.host === "number" ? String(map.host) : map.host;
  if (host === undefined || host === null) {
    if (transport !== "local") {
      c.failKey(path, `Node "${name}" has no host: add "host: <address>"`);
    }
    host = "localhost";
  }
  if (typeof host !== "string") {
    c.failValue(
      hostPath,
      `Invalid host ${shown(host)}: give a host name or IP address`,
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
  const options: SshNodeOptions = { name, host: host as string };
  for (const [key, setting] of s) {
    if (key === "relay") continue;
    (options as unknown as Record<string, unknown>)[key] = setting.value;
  }
  if (relay) options.relay = relay;
  // Whatever the checks above do not cover, the node itself refuses.
  c.guardKey(path, () => new SshNode(options).validate());
  return { options, groups, path };
}
