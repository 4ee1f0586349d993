/**
 * Shared plumbing of the `fiwi` subcommands: argument parsing with
 * `--help`, the common options (`--rig`, `--rig-name`, the selection `-w`,
 * `-x`, `--hostfile`, `--pick`, the connection options `-l`, `-t`,
 * `--retries`, `--json`, `--log`, `--no-log`), paths relative to the
 * user's working directory, exit codes (0 all ok, 1 some failed, 2 usage or configuration error, in
 * one line without a stack trace; 130/143/129 interrupted), the central
 * log, colours and the live progress line (both only on a terminal, colours
 * never with `NO_COLOR`), and Ctrl-C / SIGTERM / SIGHUP.
 *
 * @module
 */

import { isAbsolute, join } from "jsr:@std/path@^1";
import { disposeSync, getLogger } from "npm:@logtape/logtape@^2";
import {
  BUILTIN_RIG_YAML,
  ConfigurationError,
  DEFAULT_MAX_MASTERS,
  DEFAULT_RIG_FILE,
  FiwiError,
  loadRig,
  parseRig,
  type Rig,
  setMaxMasters,
  type SshNode,
} from "../mod.ts";
import {
  type CentralLog,
  DEFAULT_LOG_FILES,
  DEFAULT_LOG_SIZE,
  defaultLogFile,
  invocationId,
  type LogSettings,
  parseSize,
  setupLogging,
} from "./_log.ts";
import { Output, writeAllSync } from "./_output.ts";
import { closeLeaseStore, guardNodes } from "./_lease.ts";
import { StateRecorder } from "./_state.ts";
import { type Interrupt, interruptSignal } from "./_signals.ts";
import {
  applyOverrides,
  connectOverrides,
  pickRandom,
  selectFrom,
  selectionOf,
} from "./_select.ts";

export {
  type CliSpec,
  durationFlag,
  helpText,
  intFlag,
  normalizeArgs,
  optionsOf,
  type OptionSpec,
  parseCli,
  type ParsedArgs,
  UsageError,
} from "./_args.ts";
import {
  type CliSpec,
  helpText,
  intFlag,
  parseCli,
  type ParsedArgs,
  stateUse,
  UsageError,
} from "./_args.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // not permitted: the default applies
  }
}

/** The repository root: where `deno task` runs its commands. */
const TASK_DIR = new URL("../", import.meta.url).protocol === "file:"
  ? decodeURIComponent(new URL("..", import.meta.url).pathname)
  : null;

/**
 * The user's working directory. `deno task` runs a task in the directory of
 * its deno.json and records where the user was in INIT_CWD; that is only
 * believed when this process runs in the task's directory (INIT_CWD is
 * inherited by everything a task starts).
 */
export function userCwd(): string {
  const cwd = Deno.cwd();
  const init = env("INIT_CWD");
  if (
    init && TASK_DIR && cwd.replace(/\/$/, "") === TASK_DIR.replace(/\/$/, "")
  ) {
    return init;
  }
  return cwd;
}

/** `path` resolved against the user's working directory. */
export function userPath(path: string): string {
  return isAbsolute(path) ? path : join(userCwd(), path);
}

/** Everything a subcommand body gets. */
export interface CliContext {
  /** Parsed options. */
  flags: ParsedArgs["flags"];
  /** Every value of each repeatable option (`-w`, `-x`, `--hostfile`). */
  lists: ParsedArgs["lists"];
  /** Positional arguments. */
  rest: string[];
  /** Terminal output. */
  out: Output;
  /** `--json` was given. */
  json: boolean;
  /**
   * Aborted by the first Ctrl-C, SIGTERM or SIGHUP; `exitCode` is what the
   * subcommand should exit with then.
   */
  interrupt: Interrupt;
  /**
   * Records in the state store (`_state.ts`) once `selectNodes` has chosen
   * the nodes; absent for a subcommand that does not record.
   */
  state?: StateRecorder;
  /**
   * Load the rig and select the nodes the command line names: every `-w`
   * (or `nodes` instead, when given) and `--hostfile` joined, `-x` left
   * out, `--pick` applied (see `_select.ts`); then, for a subcommand that
   * connects, `-l`, `--connect-timeout` and `--retries` applied to each
   * node (as a variant of it). Nodes are made silent: the command logs what
   * it prints. ControlMasters stay up after the command for their
   * `controlPersist`; `fiwi close` ends them.
   */
  selectNodes(options?: SelectOptions): Promise<{ rig: Rig; nodes: SshNode[] }>;
}

/**
 * What {@linkcode CliContext.selectNodes} is asked for besides the command
 * line. For a subcommand that checks leases (`CliSpec.checksLeases`), the
 * nodes it touches are checked against the rig's lease store (`_lease.ts`)
 * before it returns: a node another owner holds (or, with `requireLease`,
 * one without a lease of this owner) is refused in one line, exit 2,
 * unless `--force`, which is recorded.
 */
export interface SelectOptions {
  /** Node patterns that replace the `-w` values. */
  nodes?: readonly string[];
  /**
   * The nodes the subcommand touches, of those selected (default: all):
   * only they are checked, and leased with `hold`.
   */
  touches?: (node: SshNode, rig: Rig) => boolean;
  /**
   * Take a lease on the nodes touched for this long (ms) instead of
   * checking them, renewed in the background and dropped when the
   * subcommand ends (`--lease`).
   */
  hold?: number;
}

/** One line for an error that ends the command, and its exit code. */
export function describeFailure(
  name: string,
  e: unknown,
): { line: string; code: number } {
  if (e instanceof FiwiError) {
    return { line: `${name}: ${e.message}`, code: e.exitCode };
  }
  if (
    e instanceof Deno.errors.NotCapable ||
    e instanceof Deno.errors.PermissionDenied
  ) {
    return {
      line: `${name}: Not permitted: ${
        (e as Error).message
      } (widen the --allow-* flags of the install line or deno.json task)`,
      code: 2,
    };
  }
  return {
    line: `${name}: Unexpected error: ${(e as Error)?.message ?? String(e)}`,
    code: 1,
  };
}

/**
 * The log settings the flags and FIWI_LOG_SIZE / FIWI_LOG_FILES ask for.
 * Without `--log`, a subcommand that connects logs to the default file
 * (XDG_STATE_HOME) and one that does not (`connects` false) logs nowhere.
 */
export function logSettings(
  flags: ParsedArgs["flags"],
  connects = true,
): LogSettings {
  if (flags.log !== undefined && flags["no-log"]) {
    throw new UsageError('Give either "--log FILE" or "--no-log", not both');
  }
  const size = env("FIWI_LOG_SIZE");
  const maxSize = size === undefined ? DEFAULT_LOG_SIZE : parseSize(size);
  if (typeof maxSize === "string") {
    throw new ConfigurationError(`Invalid FIWI_LOG_SIZE "${size}": ${maxSize}`);
  }
  const files = env("FIWI_LOG_FILES");
  const maxFiles = files === undefined ? DEFAULT_LOG_FILES : Number(files);
  if (!/^\d+$/.test(files ?? "0") || maxFiles < 1 || maxFiles > 1000) {
    throw new ConfigurationError(
      `Invalid FIWI_LOG_FILES "${files}": give a whole number from 1 to 1000`,
    );
  }
  const given = flags.log as string | undefined;
  const path = flags["no-log"] || (given === undefined && !connects)
    ? null
    : given === undefined
    ? defaultLogFile(env)
    : userPath(given);
  return {
    path,
    isDefault: given === undefined,
    maxSize,
    maxFiles,
    id: invocationId(),
  };
}

/** Load the rig `--rig` names, or ./rigs.yaml, or the built-in local rig. */
async function loadUserRig(flags: ParsedArgs["flags"]): Promise<Rig> {
  const name = flags["rig-name"] as string | undefined;
  if (flags.rig !== undefined) {
    return await loadRig(userPath(String(flags.rig)), name);
  }
  const file = userPath(DEFAULT_RIG_FILE);
  const found = await Deno.stat(file).then(() => true, () => false);
  return found
    ? await loadRig(file, name)
    : parseRig(BUILTIN_RIG_YAML, { file: "<built-in>", name });
}

/** What a node selector needs of its invocation. */
interface SelectorContext {
  interrupt: AbortSignal;
  out: Output;
  /** Leases taken for the invocation (`hold`): dropped when it ends. */
  held: AsyncDisposableStack;
  /** Records the invocation, from its selection on. */
  state?: StateRecorder;
}

/** `ctx.selectNodes` of one invocation (see {@linkcode SelectOptions}). */
function nodeSelector(
  spec: CliSpec,
  { flags, lists }: Pick<ParsedArgs, "flags" | "lists">,
  { interrupt, out, held, state }: SelectorContext,
): CliContext["selectNodes"] {
  const connects = spec.connects ?? true;
  const checksLeases = spec.checksLeases ?? connects;
  return async (options = {}) => {
    const read = (path: string) => Deno.readTextFile(userPath(path));
    const selection = await selectionOf({ flags, lists }, read, options.nodes);
    const overrides = connects ? connectOverrides(flags) : {};
    const cap = connects ? intFlag(flags, "max-masters", 1) : undefined;
    const rig = await loadUserRig(flags);
    // Before any node is touched: the cap applies to this invocation's masters.
    if (connects) setMaxMasters(cap ?? rig.maxMasters ?? DEFAULT_MAX_MASTERS);
    held.defer(() => closeLeaseStore(rig));
    const all = selectFrom(rig, selection);
    const picked = selection.pick === undefined
      ? all
      : pickRandom(all, selection.pick);
    for (const n of picked) n.silent = true;
    const nodes = applyOverrides(rig, picked, overrides);
    await state?.begin(rig, nodes);
    if (!checksLeases) return { rig, nodes };
    const touched = options.touches
      ? nodes.filter((n) => options.touches!(n, rig))
      : nodes;
    const lease = await guardNodes(rig, touched, {
      force: flags.force === true,
      hold: options.hold,
      signal: interrupt,
      notice: (text) => out.err(`${spec.name}: ${text}`),
    });
    if (lease) {
      held.use(lease);
      held.use(lease.keepRenewing());
    }
    return { rig, nodes };
  };
}

/**
 * Drop what the invocation leased and close the lease stores it opened;
 * a failure is one line on stderr (the lease then ends at its expiry).
 */
async function release(name: string, held: AsyncDisposableStack) {
  try {
    await held.disposeAsync();
  } catch (e) {
    const error = e instanceof SuppressedError ? e.error : e;
    writeAllSync(
      Deno.stderr,
      `${name}: Could not drop the lease: ${
        (error as Error)?.message ?? error
      } (it ends at its expiry)\n`,
    );
  }
}

/**
 * Run a subcommand: parse, `--help`, set up the log and the signals, call
 * `body`, map errors to one line and an exit code. Resolves with the exit
 * code.
 */
export async function runCli(
  spec: CliSpec,
  args: string[],
  body: (ctx: CliContext) => Promise<number>,
): Promise<number> {
  let central: CentralLog | null = null;
  let out: Output | null = null;
  let interrupt: Interrupt | null = null;
  const held = new AsyncDisposableStack();
  let state: StateRecorder | undefined;
  let exit = 1;
  try {
    const { flags, lists, rest } = parseCli(spec, args);
    const connects = spec.connects ?? true;
    if (flags.help) {
      writeAllSync(Deno.stdout, helpText(spec));
      return 0;
    }
    const notices: string[] = [];
    central = await setupLogging(
      logSettings(flags, connects),
      (n) => notices.push(n),
    );
    out = new Output(spec.name, central);
    for (const n of notices) out.err(n);
    const output = out;
    interrupt = interruptSignal({
      beforeExit: () => {
        output.err(`${spec.name}: Interrupted again: exiting at once`);
        output.clearProgress();
        state?.endSync(interrupt?.exitCode ?? 130);
        disposeSync();
      },
    });
    out.log.info("Started fiwi {command} {args} in {cwd}", {
      command: spec.name,
      args,
      cwd: userCwd(),
    });
    if (stateUse(spec) === "record") {
      state = new StateRecorder({
        subcommand: spec.name,
        args,
        rest,
        flags,
        id: central.id,
        resolve: userPath,
        warn: (line) => output.err(`${spec.name}: ${line}`),
      });
    }
    const ctx: CliContext = {
      state,
      flags,
      lists,
      rest,
      out,
      json: flags.json === true,
      interrupt,
      selectNodes: nodeSelector(spec, { flags, lists }, {
        interrupt,
        out,
        held,
        state,
      }),
    };
    const code = exit = await body(ctx);
    out.log.info("Finished fiwi {command}: exit {code}", {
      command: spec.name,
      code,
    });
    return code;
  } catch (e) {
    out?.clearProgress();
    const { line, code } = describeFailure(spec.name, e);
    if (central) {
      getLogger(["fiwi", "cli", spec.name]).error("{line}", { line, error: e });
    }
    writeAllSync(Deno.stderr, line + "\n");
    return exit = code;
  } finally {
    out?.clearProgress();
    await state?.end(exit);
    await release(spec.name, held);
    interrupt?.[Symbol.dispose]();
    await central?.close();
  }
}

/** What every subcommand module exports. */
export interface Subcommand {
  /** Run with `args` (after the subcommand's name); resolves with the exit code. */
  main(args: string[]): Promise<number>;
}
