/**
 * Files to and from a node: {@linkcode push} and {@linkcode pull}, behind
 * `SshNode.push` / `SshNode.pull` (and `pushAll` / `pullAll` for many
 * nodes).
 *
 * Both stream a tar archive through the run's own exec channel, so a
 * transfer goes wherever a command goes: over the warm ControlMaster,
 * through nested and jump relays, over ush, and locally; the node needs
 * only sh, tar and a few busybox tools. A push packs the sources once into
 * a local temp archive (its size must be known: the remote wrapper hands
 * the command exactly that many bytes, then EOF, and keeps the rest of
 * stdin as the lifeline) and streams it to `tar -x` in a hidden temp
 * directory inside the destination; a pull reads `tar -c` from the node's
 * stdout into a local `tar -x` in a temp directory inside
 * `destDir/<node>`. Only then are the entries renamed into place, so a
 * file appears under its final name only when it arrived whole (and, with
 * `verify`, matched its SHA-256). A timeout or an abort stops the run the
 * way it stops `rexec`: the lifeline kills the remote tar and its temp
 * directory is removed.
 *
 * Measured against sftp over the same master for the push of one 100 MB
 * file on loopback: see README.md, "Files to and from nodes".
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.txt`, "hi\n");
 * const result = await node.push(`${dir}/hello.txt`, `${dir}/out`, { verify: true });
 * console.log(result.success, result.files, await Deno.readTextFile(`${dir}/out/hello.txt`));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { join, resolve } from "jsr:@std/path@^1";
import { ConfigurationError, FiwiError, showValue } from "../errors.ts";
import { resolveRetry } from "../process/backoff.ts";
import {
  type RunOptions,
  type RunResult,
  validateTimeout,
} from "../process/run_options.ts";
import { type RunTarget, SshSession } from "../process/session.ts";
import { controlPool, type PoolNode } from "./pool.ts";
import { retryRun } from "./retry.ts";
import {
  archiveStream,
  Extractor,
  firstLines,
  type LocalSource,
  localSources,
  packArchive,
  place,
  refuseDuplicateNames,
  sha256File,
  sourceList,
  summarize,
  tempName,
} from "./_transfer_local.ts";
import {
  batches,
  cleanupCommand,
  type ExpectedHash,
  hashCommand,
  MAX_SCRIPT_BYTES,
  parseHashes,
  pullCommand,
  pushScript,
} from "./_transfer_scripts.ts";

const log = getLogger(["fiwi", "transfer"]);

/** Options of a push or a pull. Times are milliseconds. */
export interface TransferOptions {
  /** Aborting it stops the transfer; nothing is left under a final name. */
  signal?: AbortSignal;
  /** ms until the remote side is known to have begun (default: the node's). */
  connectTimeout?: number;
  /** ms without a byte moving before the transfer is stopped (default: the node's). */
  ioTimeout?: number;
  /** ms of wall clock per remote run (default: the node's). */
  cmdTimeout?: number;
  /** Compare the SHA-256 of every file on both ends (default false). */
  verify?: boolean;
  /** Called with the bytes moved so far (the tar stream) as they move. */
  onProgress?: (bytes: number) => void;
}

/** The outcome of a push or a pull on one node. */
export interface TransferResult {
  /** Node name. */
  node: string;
  /** Everything arrived and was put in place (and verified, if asked). */
  success: boolean;
  /** Entries transferred that are not directories (files and links). */
  files: number;
  /** Bytes of the tar stream moved (contents plus headers). */
  bytes: number;
  /** Which timeout stopped the transfer, if one did. */
  timedOut: "connect" | "command" | "io" | null;
  /** The transfer was stopped by its signal. */
  aborted: boolean;
  /** Why it failed: the connection's error, a timeout, or what the node said. */
  error: FiwiError | null;
  /** Wall-clock duration. */
  durationMs: number;
}

/** What a transfer needs of a node: `SshNode` satisfies it. */
export type TransferTarget = RunTarget & PoolNode;

/** A push's sources packed once, ready to send to any number of nodes. */
export interface PushArchive extends AsyncDisposable {
  /** The local archive file. */
  readonly path: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Top-level names it holds. */
  readonly names: readonly string[];
  /** Entries that are not directories. */
  readonly entries: number;
  /** Hashes to check on the node (empty without `verify`). */
  readonly expect: readonly ExpectedHash[];
}

/**
 * Check transfer options; throws {@linkcode ConfigurationError} naming the
 * bad value.
 */
export function validateTransferOptions(options: TransferOptions): void {
  validateTimeout("connectTimeout", options.connectTimeout);
  validateTimeout("ioTimeout", options.ioTimeout);
  validateTimeout("cmdTimeout", options.cmdTimeout);
  const { verify, onProgress, signal } = options;
  if (verify !== undefined && typeof verify !== "boolean") {
    throw new ConfigurationError(
      `Invalid verify ${showValue(verify)}: give true or false`,
    );
  }
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw new ConfigurationError(
      `Invalid onProgress ${showValue(onProgress)}: give a function`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ConfigurationError(
      `Invalid signal ${showValue(signal)}: give an AbortSignal`,
    );
  }
}

function validateDestDir(destDir: unknown): asserts destDir is string {
  if (
    typeof destDir !== "string" || destDir.trim() === "" ||
    destDir.includes("\0")
  ) {
    throw new ConfigurationError(
      `Invalid destination directory ${
        showValue(destDir)
      }: give a directory path`,
    );
  }
}

/**
 * Pack local `sources` once for pushes into `destDir`: checks every source
 * exists first ({@linkcode ConfigurationError} naming a missing one), hashes
 * the files with `verify`. Dispose it to remove the archive.
 */
export async function packForPush(
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions = {},
): Promise<PushArchive> {
  validateDestDir(destDir);
  validateTransferOptions(options);
  const local = await localSources(sourceList(sources));
  const tree = await summarize(
    local.map((s) => ({ local: join(s.parent, s.name), rel: s.name })),
  );
  const expect: ExpectedHash[] = [];
  if (options.verify) {
    for (const f of tree.files) {
      expect.push({ path: f.path, sha256: await sha256File(f.local) });
    }
  }
  const names = local.map((s) => s.name);
  const length = pushScript(destDir, tempName(), names, expect).length;
  if (length > MAX_SCRIPT_BYTES) {
    throw new ConfigurationError(
      `Too many files to ${
        expect.length ? "verify" : "name"
      } in one push (${tree.entries}): push fewer at a time${
        expect.length ? " or without verify" : ""
      }`,
    );
  }
  return await packed(local, names, tree.entries, expect, options.signal);
}

async function packed(
  local: LocalSource[],
  names: string[],
  entries: number,
  expect: ExpectedHash[],
  signal?: AbortSignal,
): Promise<PushArchive> {
  const path = await Deno.makeTempFile({
    prefix: "fiwi_push_",
    suffix: ".tar",
  });
  try {
    await packArchive(local, path, signal);
    const { size } = await Deno.stat(path);
    return {
      path,
      size,
      names,
      entries,
      expect,
      async [Symbol.asyncDispose]() {
        await Deno.remove(path).catch(() => {});
      },
    };
  } catch (e) {
    await Deno.remove(path).catch(() => {});
    throw e;
  }
}

/** The run options of one remote run of a transfer. */
function runOptions(options: TransferOptions): RunOptions {
  return {
    connectTimeout: options.connectTimeout,
    ioTimeout: options.ioTimeout,
    cmdTimeout: options.cmdTimeout,
    signal: options.signal,
  };
}

/**
 * Run `cmd` on `node` like `rexec` does (retried while the connection
 * fails before it begins, a broken master repaired), with fresh options
 * per attempt: a stream payload can be read only once.
 */
function runWithRetry(
  node: TransferTarget,
  cmd: string,
  options: () => RunOptions,
  signal?: AbortSignal,
): Promise<RunResult> {
  return retryRun(
    async () => {
      await using session = new SshSession(node);
      return await session.postCmd(cmd, options());
    },
    resolveRetry(undefined),
    {
      signal,
      onFailure: node.controlMaster
        ? (result) => controlPool.recover(node, result)
        : undefined,
    },
  );
}

/** A {@linkcode TransferResult} from the run that did the transfer. */
function resultOf(
  node: string,
  run: RunResult | null,
  fields: { files: number; bytes: number; error: FiwiError | null },
  t0: number,
): TransferResult {
  const error = run?.error ?? fields.error;
  return {
    node,
    success: error === null && !run?.aborted,
    files: fields.files,
    bytes: fields.bytes,
    timedOut: run?.timedOut ?? null,
    aborted: run?.aborted ?? false,
    error,
    durationMs: performance.now() - t0,
  };
}

/** What the node said about a failed run, as one error naming node and path. */
function remoteFailure(
  what: string,
  node: string,
  path: string,
  run: RunResult,
): FiwiError | null {
  if (run.success || run.error || run.aborted) return null;
  const said = firstLines(run.stderr) || `exit ${run.code ?? run.signal}`;
  return new FiwiError(`${what} "${path}" on node "${node}" failed: ${said}`);
}

/** How long the cleanup after a stopped push may take. */
const CLEANUP_TIMEOUT_MS = 5_000;

/**
 * Remove what a stopped push left in `destDir`: its own trap may have been
 * cut short by the lifeline's KILL. Best effort, bounded, never retried.
 */
async function removeTemp(
  node: TransferTarget,
  destDir: string,
  temp: string,
): Promise<void> {
  await using session = new SshSession(node);
  const r = await session.postCmd(cleanupCommand(destDir, temp), {
    cmdTimeout: CLEANUP_TIMEOUT_MS,
  });
  if (!r.success) {
    log.warn("Removing {temp} in {dest} on {node} failed: {error}", {
      node: node.name,
      dest: destDir,
      temp,
      error: r.error?.message ?? r.stderr.trim(),
    });
  }
}

/**
 * Send a packed archive to `node` and put its entries in `destDir`.
 * Resolves for every run-time outcome.
 */
export async function pushArchive(
  node: TransferTarget,
  archive: PushArchive,
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const t0 = performance.now();
  await node.prepare();
  const temp = tempName();
  const script = pushScript(destDir, temp, archive.names, archive.expect);
  let sent = 0;
  const run = await runWithRetry(node, script, () => ({
    ...runOptions(options),
    stdin: {
      size: archive.size,
      stream: archiveStream(archive.path, (n) => {
        sent = Math.min(n, archive.size);
        options.onProgress?.(sent);
      }),
    },
  }), options.signal);
  if (run.started && (run.aborted || run.timedOut)) {
    await removeTemp(node, destDir, temp);
  }
  const result = resultOf(node.name, run, {
    files: archive.entries,
    bytes: run.success ? archive.size : sent,
    error: remoteFailure("Push to", node.name, destDir, run),
  }, t0);
  log.info(
    "Pushed {files} entries ({bytes} bytes) to {node}:{dest}: {outcome}",
    {
      node: node.name,
      dest: destDir,
      files: result.files,
      bytes: result.bytes,
      outcome: result.success ? "ok" : result.error?.message ?? "aborted",
    },
  );
  return result;
}

/**
 * Copy local files or directories (recursively) into the remote directory
 * `destDir` (created if missing), each under its own base name. See the
 * module doc; `SshNode.push` calls this.
 */
export async function push(
  node: TransferTarget,
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  await node.prepare();
  await using archive = await packForPush(sources, destDir, options);
  return await pushArchive(node, archive, destDir, options);
}

/** Remote sources of a pull under one directory. */
export interface RemoteGroup {
  /** The remote directory. */
  parent: string;
  /** Base names in it. */
  names: string[];
}

/** Split remote paths into directory and base name; refuses a path without one. */
export function remoteGroups(sources: readonly string[]): RemoteGroup[] {
  const groups = new Map<string, string[]>();
  const all: string[] = [];
  for (const source of sources) {
    const path = source.length > 1 ? source.replace(/\/+$/, "") : source;
    const slash = path.lastIndexOf("/");
    const name = path.slice(slash + 1);
    if (name === "" || name === "." || name === "..") {
      throw new ConfigurationError(
        `Remote source "${source}" has no name to copy it under: give a file or a directory by its path`,
      );
    }
    const parent = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
    groups.set(parent, [...(groups.get(parent) ?? []), name]);
    all.push(name);
  }
  refuseDuplicateNames(all);
  return [...groups].map(([parent, names]) => ({ parent, names }));
}

/** The local directory a node's pulled files go to: `destDir/<node>`. */
function nodeDirOf(destDir: string, node: string): string {
  if (node === "." || node === ".." || node.includes("/")) {
    throw new ConfigurationError(
      `Node name "${node}" cannot be a directory name for pulled files: rename the node`,
    );
  }
  return join(resolve(destDir), node);
}

/**
 * Check the arguments of a pull from `nodes`; throws
 * {@linkcode ConfigurationError} naming the bad one. Returns the sources
 * grouped by remote directory.
 */
export function checkPull(
  nodes: readonly { name: string }[],
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions,
): RemoteGroup[] {
  validateDestDir(destDir);
  validateTransferOptions(options);
  const groups = remoteGroups(sourceList(sources));
  for (const node of nodes) nodeDirOf(destDir, node.name);
  return groups;
}

/**
 * Copy remote files or directories from `node` into the local directory
 * `destDir/<node name>/`, each under its base name. See the module doc;
 * `SshNode.pull` calls this.
 */
export async function pull(
  node: TransferTarget,
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const t0 = performance.now();
  const groups = checkPull([node], sources, destDir, options);
  await node.prepare();
  const nodeDir = nodeDirOf(destDir, node.name);
  await Deno.mkdir(nodeDir, { recursive: true });
  const tmp = join(nodeDir, tempName());
  await Deno.mkdir(tmp);
  try {
    return await pullInto(node, groups, tmp, nodeDir, options, t0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function pullInto(
  node: TransferTarget,
  groups: RemoteGroup[],
  tmp: string,
  nodeDir: string,
  options: TransferOptions,
  t0: number,
): Promise<TransferResult> {
  let bytes = 0;
  const fail = (run: RunResult | null, error: FiwiError | null) =>
    resultOf(node.name, run, { files: 0, bytes, error }, t0);
  for (const group of groups) {
    const got = await receive(node, group, tmp, options, (n) => {
      bytes += n;
      options.onProgress?.(bytes);
    });
    if (got) return fail(got.run, got.error);
  }
  const tree = await summarize(
    groups.flatMap((g) => g.names).map((n) => ({
      local: join(tmp, n),
      rel: n,
    })),
  );
  if (options.verify) {
    const bad = await verifyPulled(node, groups, tree.files, options);
    if (bad) return fail(bad.run, bad.error);
  }
  for (const name of groups.flatMap((g) => g.names)) {
    try {
      await place(join(tmp, name), join(nodeDir, name));
    } catch (e) {
      return fail(
        null,
        new FiwiError(
          `Putting "${name}" from node "${node.name}" in place failed: ${
            (e as Error).message
          }`,
          { cause: e },
        ),
      );
    }
  }
  return resultOf(
    node.name,
    null,
    { files: tree.entries, bytes, error: null },
    t0,
  );
}

/**
 * Receive one group's archive into `tmp`; resolves null when it all
 * arrived, else the run and the error.
 */
async function receive(
  node: TransferTarget,
  group: RemoteGroup,
  tmp: string,
  options: TransferOptions,
  onBytes: (n: number) => void,
): Promise<{ run: RunResult | null; error: FiwiError | null } | null> {
  const extractor = new Extractor(tmp);
  // A local tar that stops reading ends the run: nothing more can land.
  const local = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, local.signal])
    : local.signal;
  const run = await runWithRetry(
    node,
    pullCommand(group.parent, group.names),
    () => ({
      ...runOptions(options),
      signal,
      stdoutSink: async (chunk) => {
        onBytes(chunk.byteLength);
        try {
          await extractor.write(chunk);
        } catch (e) {
          local.abort();
          throw e;
        }
      },
    }),
    signal,
  );
  if (!run.success) await extractor.stop();
  const complaint = run.success ? await extractor.finish() : null;
  const paths = group.names.map((n) => `${group.parent}/${n}`).join(", ");
  if (local.signal.aborted || complaint) {
    const why = complaint ?? (await extractor.finish()) ?? "it stopped reading";
    return {
      run: null,
      error: new FiwiError(
        `Unpacking "${paths}" from node "${node.name}" failed: ${why}`,
      ),
    };
  }
  if (run.success) return null;
  return { run, error: remoteFailure("Pull of", node.name, paths, run) };
}

/** Compare remote and local SHA-256 of every pulled file; null when all match. */
async function verifyPulled(
  node: TransferTarget,
  groups: RemoteGroup[],
  files: { path: string; local: string }[],
  options: TransferOptions,
): Promise<{ run: RunResult | null; error: FiwiError } | null> {
  for (const group of groups) {
    const mine = files.filter((f) =>
      group.names.includes(f.path.split("/", 1)[0])
    );
    for (const batch of batches(mine.map((f) => f.path))) {
      const run = await runWithRetry(
        node,
        hashCommand(group.parent, batch),
        () => runOptions(options),
        options.signal,
      );
      const remote = parseHashes(run.stdout);
      if (!run.success || remote.length !== batch.length) {
        return {
          run,
          error: remoteFailure("Hashing", node.name, group.parent, run) ??
            new FiwiError(`Hashing on node "${node.name}" failed`),
        };
      }
      for (let i = 0; i < batch.length; i++) {
        const f = mine.find((m) => m.path === batch[i])!;
        if (remote[i] !== await sha256File(f.local)) {
          return {
            run: null,
            error: new FiwiError(
              `"${group.parent}/${
                batch[i]
              }" on node "${node.name}" and its copy differ in SHA-256`,
            ),
          };
        }
      }
    }
  }
  return null;
}
