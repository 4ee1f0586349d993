/**
 * Per-node values in a command: `{name}`, `{host}`, `{user}`, `{device}`,
 * `{devip}` and the keys of the node's `vars` stand for that node's own
 * value, shell-quoted, so `"ping -c1 {devip}"` becomes `ping -c1 10.0.0.7`
 * on one node and `ping -c1 10.0.0.8` on the next.
 *
 * Only a `{key}` (a name: letters, digits and `_`, not a digit first) is a
 * placeholder. Every other brace is the shell's and stays as written:
 * `awk '{print $1}'`, `find . -exec ls {} +`, `${HOME}` (a `$` before the
 * brace makes it a shell expansion), `{a,b}`. `{{key}}` is the literal
 * text `{key}`. A command without `{` is returned as is. A key the node
 * does not know, or a value it does not have, is a
 * {@linkcode ConfigurationError} thrown before anything runs, so a typo
 * never reaches a node's shell.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { expandNodeValues } from "./node_values.ts";
 * const node = { name: "n1", host: "10.0.0.1", vars: { slot: "3" } };
 * assertEquals(expandNodeValues("echo {name} {slot}", node), "echo n1 3");
 * assertEquals(expandNodeValues("awk '{print $1}'", node), "awk '{print $1}'");
 * assertEquals(expandNodeValues("echo {{name}}", node), "echo {name}");
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { formatNodeList } from "../nodeset/fold.ts";
import { shellQuote } from "../transport/quote.ts";

/** The keys every node has (its `vars` add their own). */
export const NODE_VALUE_KEYS: readonly string[] = [
  "name",
  "host",
  "user",
  "device",
  "devip",
];

/** A name a `vars` key may have: a shell-variable-like identifier. */
const VAR_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * What the scan stops at: a shell expansion `${…}` (left alone), an
 * escaped `{{key}}` (the literal `{key}`), or a placeholder `{key}`.
 */
const TOKEN_RE =
  /\$\{[^}]*\}|\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * What {@linkcode expandNodeValues} reads of a node: an `SshNode` has it,
 * and so does a plain object.
 */
export interface ValuesNode {
  /** `{name}`. */
  readonly name: string;
  /** `{host}`. */
  readonly host: string;
  /** `{user}`; `null` or absent: the node has no user of its own. */
  readonly user?: string | null;
  /** `{device}`. */
  readonly device?: string;
  /** `{devip}`. */
  readonly devip?: string;
  /** `{key}` for each key. */
  readonly vars?: Readonly<Record<string, string>>;
}

/** One piece of a parsed command: literal text, or a key to look up. */
type Part = string | { key: string };

/**
 * Refuse a `vars` key that could not be written as `{key}` or that hides a
 * built-in value: a {@linkcode ConfigurationError} naming it.
 *
 * @param key the name to check
 * @param where where it was given, for the message (e.g. ` for node "n1"`)
 */
export function validateVarName(key: string, where = ""): void {
  if (!VAR_NAME_RE.test(key)) {
    throw new ConfigurationError(
      `Invalid vars key ${
        JSON.stringify(key)
      }${where}: use letters, digits and "_", not a digit first`,
    );
  }
  if (NODE_VALUE_KEYS.includes(key)) {
    throw new ConfigurationError(
      `Invalid vars key "${key}"${where}: {${key}} is a built-in value, choose another name`,
    );
  }
}

/**
 * Check a node's `vars`: a mapping of valid names to strings. Throws
 * {@linkcode ConfigurationError} naming the node and the bad entry.
 *
 * @param vars the `vars` option as given
 * @param node the node's name, for the message
 */
export function validateVars(vars: unknown, node: string): void {
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) {
    throw new ConfigurationError(
      `Invalid vars for node "${node}": give a mapping of names to text`,
    );
  }
  for (const [key, value] of Object.entries(vars)) {
    validateVarName(key, ` for node "${node}"`);
    if (typeof value !== "string") {
      throw new ConfigurationError(
        `Invalid value of vars key "${key}" for node "${node}": give text, not ${typeof value}`,
      );
    }
  }
}

/** Split a command into literal text and the keys it names. Never throws. */
function parseCommand(command: string): Part[] {
  const parts: Part[] = [];
  let text = "";
  let last = 0;
  for (const m of command.matchAll(TOKEN_RE)) {
    text += command.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[2] === undefined) {
      text += m[1] === undefined ? m[0] : `{${m[1]}}`;
      continue;
    }
    if (text) parts.push(text);
    text = "";
    parts.push({ key: m[2] });
  }
  text += command.slice(last);
  if (text) parts.push(text);
  return parts;
}

/** The value of `key` on `node`, or a ConfigurationError saying why not. */
function valueOf(node: ValuesNode, key: string): string | ConfigurationError {
  const vars = node.vars ?? {};
  const builtIn = NODE_VALUE_KEYS.includes(key);
  const value = builtIn
    ? (node as unknown as Record<string, unknown>)[key]
    : Object.hasOwn(vars, key)
    ? vars[key]
    : undefined;
  if (typeof value === "string") return value;
  if (builtIn) {
    const why = key === "user" && node.user === null
      ? "its user is left to ssh's config"
      : `give it "${key}:" in the rig file`;
    return new ConfigurationError(
      `Key "${key}" in the command has no value for node "${node.name}": ${why}`,
    );
  }
  const known = [...NODE_VALUE_KEYS, ...Object.keys(vars)];
  return new ConfigurationError(
    `Unknown key "${key}" in the command for node "${node.name}": known keys are ${
      known.join(", ")
    } (write "{{${key}}}" for the literal text)`,
  );
}

/** The parsed command for one node, or the first error. */
function render(
  parts: readonly Part[],
  node: ValuesNode,
): string | ConfigurationError {
  let out = "";
  for (const part of parts) {
    if (typeof part === "string") {
      out += part;
      continue;
    }
    const value = valueOf(node, part.key);
    if (typeof value !== "string") return value;
    out += shellQuote(value);
  }
  return out;
}

/**
 * `command` with each `{key}` replaced by `node`'s value, shell-quoted
 * (`{{key}}` is the literal `{key}`; other braces are the shell's). Keys: `name`, `host`, `user`,
 * `device`, `devip`, and the keys of `node.vars`. A command without `{`
 * comes back unchanged.
 *
 * Throws {@linkcode ConfigurationError} for a key the node does not know (the message
 * names the key, the node and the known keys), and for a built-in key the
 * node has no value for (`{device}` on a node without `device`).
 *
 * @param command the command, with `{key}` placeholders
 * @param node the node whose values fill them
 * @returns the command for that node
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { expandNodeValues, SshNode } from "../../mod.ts";
 * const node = new SshNode({
 *   name: "dut1",
 *   host: "10.0.0.11",
 *   device: "board a",
 *   vars: { role: "it's; rm -rf /" },
 * });
 * assertEquals(
 *   expandNodeValues("echo {name} {device} {role}", node),
 *   `echo dut1 'board a' 'it'\\''s; rm -rf /'`,
 * );
 * ```
 */
export function expandNodeValues(command: string, node: ValuesNode): string {
  if (!command.includes("{")) return command;
  const result = render(parseCommand(command), node);
  if (typeof result !== "string") throw result;
  return result;
}

/**
 * `command` expanded for every node ({@linkcode expandNodeValues}), in node
 * order: the check to make before a run, since it reads the command once
 * and throws before returning when any node fails. The
 * {@linkcode ConfigurationError} is the first node's, and names the other
 * nodes that fail too.
 *
 * @param command the command, with `{key}` placeholders
 * @param nodes the nodes, in the order the commands are wanted
 * @returns one command per node
 *
 * @example
 * ```ts
 * import { assertEquals, assertThrows } from "jsr:@std/assert@^1";
 * import { ConfigurationError, expandNodeValuesAll } from "../../mod.ts";
 * const nodes = [
 *   { name: "a", host: "10.0.0.1", vars: { slot: "1" } },
 *   { name: "b", host: "10.0.0.2", vars: { slot: "2" } },
 * ];
 * assertEquals(expandNodeValuesAll("flash --slot {slot}", nodes), [
 *   "flash --slot 1",
 *   "flash --slot 2",
 * ]);
 * assertThrows(() => expandNodeValuesAll("echo {rack}", nodes), ConfigurationError);
 * ```
 */
export function expandNodeValuesAll(
  command: string,
  nodes: readonly ValuesNode[],
): string[] {
  if (!command.includes("{")) return nodes.map(() => command);
  const parts = parseCommand(command);
  const results = nodes.map((node) => render(parts, node));
  const failed = nodes.filter((_, i) => typeof results[i] !== "string");
  if (failed.length === 0) return results as string[];
  const first = results.find((r) => typeof r !== "string") as Error;
  if (failed.length === 1) throw first;
  const others = formatNodeList(failed.slice(1).map((n) => n.name));
  throw new ConfigurationError(
    `${first.message}; ${
      failed.length === 2
        ? "1 more node fails"
        : `${failed.length - 1} more nodes fail`
    } too: ${others}`,
    { cause: first },
  );
}
