/**
 * The rig file's value checks: a {@linkcode Checker} converts each setting
 * to its type (durations, ports, booleans, paths, ssh options), rejects
 * unknown keys with the closest known one, and turns every problem into a
 * {@linkcode RigFileError} at the line and column of the key or value.
 *
 * @module
 */

import { closest } from "../nodeset/nodeset.ts";
import { dirname, isAbsolute, join } from "jsr:@std/path@^1";
import { ConfigurationError, RigFileError } from "../errors.ts";
import { parseDuration, shown } from "./duration.ts";
import type { LocatedYaml, PathStep } from "./_yaml_positions.ts";

/** How a setting's value is checked: a kind, or the list of allowed words. */
export type Kind =
  | "text"
  | "path"
  | "boolean"
  | "port"
  | "duration"
  | "relay"
  | "node"
  | "options"
  | "vars"
  | "store"
  | "count"
  | readonly string[];

/** Keys a node, a rig's `defaults` and the top-level `defaults` accept. */
export const SETTING_KEYS: Record<string, Kind> = {
  user: "text",
  port: "port",
  transport: ["ssh", "ush", "local"],
  relay: "relay",
  relayMode: ["nested", "jump"],
  // Another node of the rig, that fiwi reaches this one through (src/gateway/).
  gateway: "node",
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
  controlPersist: "duration",
  vars: "vars",
};

/**
 * Keys a rig and both `defaults` accept (not nodes): the lease store (a
 * SQLite file relative to the rig file, or a `postgres://` URL) and whether
 * every node needs a lease.
 */
export const LEASE_KEYS: Record<string, Kind> = {
  leases: "store",
  requireLease: "boolean",
};

/**
 * Keys a rig and both `defaults` accept besides the lease keys: the state
 * store file (`state:`, relative to the rig file) and the cap on live
 * ControlMasters (`maxMasters:`), inherited like them.
 */
export const STATE_KEYS: Record<string, Kind> = {
  state: "path",
  // The cap on live ControlMasters (src/connection/_master_cap.ts).
  maxMasters: "count",
};

/** Node, group and rig names: safe in prefixes, patterns and file names. */
export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** A checked setting and where it was given. */
export type Setting = { value: unknown; path: PathStep[] };
/** Settings by key, most specific last written. */
export type Settings = Map<string, Setting>;

/** Checks one parsed file; every method throws at the first problem. */
export class Checker {
  /**
   * @param file the rig file, for errors and relative paths
   * @param doc the parsed file with positions
   * @param home the home directory for `~/`
   */
  constructor(
    readonly file: string,
    readonly doc: LocatedYaml,
    readonly home: string | undefined,
  ) {}

  /** Throw a RigFileError at the key of `path`. */
  failKey(path: readonly PathStep[], what: string): never {
    const { line, column } = this.doc.keyAt(path);
    throw new RigFileError(this.file, line, column, what);
  }

  /** Throw a RigFileError at the value of `path`. */
  failValue(path: readonly PathStep[], what: string): never {
    const { line, column } = this.doc.valueAt(path);
    throw new RigFileError(this.file, line, column, what);
  }

  /** `value` as a mapping (empty for null); anything else is an error. */
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

  /** Refuse the first key of `map` not in `allowed`, naming the closest. */
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

  /** Refuse a node or rig name that is unsafe in patterns and prefixes. */
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

  /**
   * Check every setting key of `map` and record it with its path. A
   * setting replaces the more general one, except `vars`, merged key by key
   * (a node's `vars` add to and override its defaults').
   */
  settings(
    map: Record<string, unknown>,
    path: PathStep[],
    into: Settings,
  ): void {
    for (const [key, value] of Object.entries(map)) {
      const kind = SETTING_KEYS[key];
      if (!kind) continue; // the caller has rejected unknown keys
      const p = [...path, key];
      let converted = this.convert(kind, key, value, p);
      const general = into.get(key)?.value;
      if (kind === "vars" && general) {
        converted = { ...general as object, ...converted as object };
      }
      into.set(key, { value: converted, path: p });
    }
  }

  /** Check one value against its kind and return it converted. */
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
      case "node":
        if (value === null) return null; // explicit "no gateway" for this node
        if (typeof value !== "string" || !NAME_RE.test(value)) {
          this.failValue(
            path,
            `Invalid ${key} ${
              shown(value)
            }: give the name of a node of the rig`,
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
      case "vars":
        return this.vars(value, path);
      case "count":
        if (
          typeof value !== "number" || !Number.isSafeInteger(value) || value < 1
        ) {
          this.failValue(
            path,
            `Invalid ${key} ${shown(value)}: give a whole number >= 1`,
          );
        }
        return value;
      case "store":
        if (
          typeof value !== "string" || value.trim() === "" ||
          (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) &&
            !/^postgres(ql)?:\/\//i.test(value))
        ) {
          this.failValue(
            path,
            `Invalid ${key} ${
              shown(value)
            }: give a SQLite file path or a postgres:// URL`,
          );
        }
        return /^postgres(ql)?:\/\//i.test(value as string)
          ? value
          : this.path(value as string);
    }
    return value;
  }

  /**
   * A `vars:` mapping as text by name: numbers become their text (YAML
   * reads `0x10` as 16: quote to keep it as written). Names are checked by
   * the caller, which knows the rules of the node layer.
   */
  vars(value: unknown, path: PathStep[]): Record<string, string> {
    const map = this.mapping(value, path, "vars");
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(map)) {
      if (typeof v === "string" || typeof v === "number") out[k] = String(v);
      else {
        this.failValue(
          [...path, k],
          `Invalid value ${shown(v)} of var "${k}": give text or a number`,
        );
      }
    }
    return out;
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

/** The closest known key, when close enough to be a typo (one rule for node names and keys). */
export { closest };
