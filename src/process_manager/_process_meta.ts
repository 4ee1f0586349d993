/**
 * Types of the process manager, the parsing of what the node reports about
 * a process, and the checks on start options. Pure: no I/O.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import type { SshNode } from "../node/node.ts";

/**
 * How an exit was learned: `monitor`, the status the node-side monitor
 * recorded (the process ended by itself or someone else ended it); `quit`,
 * it ended within the timeout after {@linkcode ProcessManager.kill} sent
 * QUIT; `kill`, it needed KILL; `lost`, it is gone and no status was
 * recorded (the monitor died too, the node rebooted): the code is null.
 */
export type ExitSource = "monitor" | "quit" | "kill" | "lost";

/** A process's exit code and how it was learned. */
export interface ExitStatus {
  /** Exit code; 128 + n for a process ended by signal n; null when lost. */
  code: number | null;
  /** How the code was learned. */
  source: ExitSource;
}

/** What {@linkcode ProcessManager.onExit} callbacks receive. */
export interface ProcessExit extends ExitStatus {
  /** Process id. */
  id: string;
  /** Node name. */
  node: string;
  /** The name given at start. */
  name: string;
  /** The role given at start. */
  role: string | null;
}

/** Options of {@linkcode ProcessManager.start}. */
export interface StartOptions {
  /** Readable name; the id starts with it (default "proc"). */
  name?: string;
  /** Role, for {@linkcode ProcessManager.killAll} ordering. */
  role?: string;
  /** Log file on the node (default: next to the metadata, `<id>.log`). */
  logFile?: string;
  /** Environment variables for the command. */
  env?: Record<string, string>;
}

/** One managed process. */
export interface ProcessInfo {
  /** Process id (unique on its node). */
  id: string;
  /** Name given at start. */
  name: string;
  /** Role given at start. */
  role: string | null;
  /** The node it runs on. */
  node: SshNode;
  /** The command line. */
  cmd: string;
  /** Pid of the command (its process group when `group`). */
  pid: number;
  /** Pid of the node-side monitor that records the exit status. */
  monitorPid: number;
  /** True when the command leads its own process group (setsid). */
  group: boolean;
  /** Host name as the node reports it. */
  host: string;
  /** Remote user. */
  user: string;
  /** Start time, as the node's clock had it (1 s resolution). */
  startedAt: Date;
  /** Absolute path of the log file on the node. */
  logFile: string;
  /** Exit status, once known. */
  exit: ExitStatus | null;
}

/** Options of {@linkcode ProcessManager.kill}. */
export interface KillOptions {
  /** ms to wait after QUIT, and again after KILL (default 5000). */
  timeout?: number;
}

/** Options of {@linkcode ProcessManager.killAll}. */
export interface KillAllOptions extends KillOptions {
  /** Roles to stop first, in this order; the rest go last, together. */
  order?: string[];
}

/** Options of {@linkcode ProcessManager}. */
export interface ProcessManagerOptions {
  /** Report exits as they happen with a watcher per node (default true). */
  watch?: boolean;
  /** ms between the node-side watcher's checks (default 250). */
  watchInterval?: number;
}

const SAFE_NAME = /^[A-Za-z0-9_.-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Validate start options; throws {@linkcode ConfigurationError}.
 *
 * @example
 * ```ts
 * import { assertEquals, assertThrows } from "jsr:@std/assert@^1";
 * import { checkStart } from "./_process_meta.ts";
 * assertEquals(checkStart({ role: "server" }), {
 *   name: "proc",
 *   role: "server",
 *   env: {},
 * });
 * assertThrows(() => checkStart({ name: "two words" }));
 * ```
 */
export function checkStart(
  options: StartOptions,
): { name: string; role: string | null; env: Record<string, string> } {
  const name = options.name ?? "proc";
  if (typeof name !== "string" || !SAFE_NAME.test(name)) {
    throw new ConfigurationError(
      `Invalid process name ${
        JSON.stringify(name)
      }: use letters, digits, ".", "_" or "-"`,
    );
  }
  const role = options.role ?? null;
  if (role !== null && (typeof role !== "string" || role.trim() === "")) {
    throw new ConfigurationError(
      `Invalid role ${JSON.stringify(role)}: give a non-empty string`,
    );
  }
  if (options.logFile !== undefined && !/^[^\0\n]+$/.test(options.logFile)) {
    throw new ConfigurationError(
      `Invalid logFile ${
        JSON.stringify(options.logFile)
      }: give a path on one line`,
    );
  }
  const env = options.env ?? {};
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k) || typeof v !== "string" || v.includes("\0")) {
      throw new ConfigurationError(
        `Invalid environment variable ${JSON.stringify(k)}=${
          JSON.stringify(v)
        }: use a shell variable name and a string value`,
      );
    }
  }
  return { name, role, env };
}

/**
 * Parse `key=value` metadata lines into a {@linkcode ProcessInfo}.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { SshNode } from "../../mod.ts";
 * import { parseMeta } from "./_process_meta.ts";
 * const node = new SshNode({ name: "n1", host: "10.0.0.5" });
 * const info = parseMeta("web-1", node, 'pid=120\nspec={"name":"web"}\n');
 * assertEquals([info.pid, info.name, info.role], [120, "web", null]);
 * ```
 */
export function parseMeta(
  id: string,
  node: SshNode,
  text: string,
): ProcessInfo {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  let spec: { name?: string; role?: string | null; cmd?: string } = {};
  try {
    spec = JSON.parse(kv.get("spec") ?? "{}");
  } catch { /* written by something else: keep what the lines say */ }
  return {
    id,
    name: spec.name ?? id,
    role: spec.role ?? null,
    node,
    cmd: spec.cmd ?? "",
    pid: Number(kv.get("pid")),
    monitorPid: Number(kv.get("monitor")),
    group: kv.get("group") === "1",
    host: kv.get("host") ?? "",
    user: kv.get("user") ?? "",
    startedAt: new Date(Number(kv.get("started") ?? 0) * 1000),
    logFile: kv.get("log") ?? "",
    exit: null,
  };
}

/**
 * Parse `<state> <code>` (running, exited, lost, gone) into an exit.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseState } from "./_process_meta.ts";
 * assertEquals(parseState("running \n"), null);
 * assertEquals(parseState("exited 3\n"), { code: 3, source: "monitor" });
 * ```
 */
export function parseState(line: string): ExitStatus | null {
  const [st, rc] = line.trim().split(" ");
  if (st === "running") return null;
  if (st === "exited" && rc !== undefined && rc !== "") {
    return { code: Number(rc), source: "monitor" };
  }
  return { code: null, source: "lost" };
}

/** One process recorded on a node: its metadata and, if it ended, how. */
export interface ListedProcess {
  /** The metadata (its `exit` is null). */
  info: ProcessInfo;
  /** How it ended, or null while it runs. */
  exit: ExitStatus | null;
}

/**
 * Parse what `listScript` printed (`@@ <id>`, the metadata lines, then
 * `state=<state> <code>` for each process) for the processes on `node`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { SshNode } from "../../mod.ts";
 * import { parseList } from "./_process_meta.ts";
 * const node = new SshNode({ name: "n1", host: "10.0.0.5" });
 * const listed = parseList(node, "@@ a-1\npid=7\nstate=exited 0\n");
 * assertEquals(listed.map((p) => [p.info.id, p.info.pid, p.exit]), [
 *   ["a-1", 7, { code: 0, source: "monitor" }],
 * ]);
 * ```
 */
export function parseList(node: SshNode, text: string): ListedProcess[] {
  return text.split(/^@@ /m).slice(1).map((block) => {
    const nl = block.indexOf("\n");
    const id = block.slice(0, nl);
    const body = block.slice(nl + 1);
    const state = /^state=(.*)$/m.exec(body)?.[1] ?? "lost";
    return { info: parseMeta(id, node, body), exit: parseState(state) };
  });
}

/**
 * Parse a line of `watchScript` (`exit <id> <code>` or `lost <id>`) into the
 * process that ended and how; null for any other line.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseWatchLine } from "./_process_meta.ts";
 * assertEquals(parseWatchLine("exit web-1 0"), {
 *   id: "web-1",
 *   status: { code: 0, source: "monitor" },
 * });
 * assertEquals(parseWatchLine("noise"), null);
 * ```
 */
export function parseWatchLine(
  text: string,
): { id: string; status: ExitStatus } | null {
  const [what, id, rc] = text.split(" ");
  if (what === "exit") {
    return { id, status: { code: Number(rc), source: "monitor" } };
  }
  if (what === "lost") return { id, status: { code: null, source: "lost" } };
  return null;
}
