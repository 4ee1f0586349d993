/**
 * Files to and from a node: {@linkcode push} and {@linkcode pull}, behind
 * `SshNode.push` / `SshNode.pull` (and `pushAll` / `pullAll` for many
 * nodes).
 *
 * Both stream a tar archive through the run's own exec channel, so a
 * transfer goes wherever a command goes: over the warm ControlMaster,
 * through nested and jump relays, over ush, and locally; the node needs
 * only sh, tar and a few busybox tools. A push packs the sources once into
 * a local temp archive (one regular file goes as it is, without tar), and
 * streams it to a receiver on the node (`tar -x`, or `cat` for one file)
 * that reads the run's stdin itself up to the EOF fiwi sends after the
 * payload, in a hidden temp directory inside the destination (0700, its
 * files created 0600, so other users of the node cannot read them in
 * transit). A pull reads `tar -c` (or `cat`) from the node's stdout into a
 * private temp directory inside `destDir/<node>`, a directory checked so
 * that no other local user can redirect it, and gives what arrived safe
 * modes (no setuid or setgid, no write for others). Only then are the
 * entries renamed into place, so a
 * file appears under its final name only when it arrived whole (and, with
 * `verify`, matched its SHA-256). A timeout or an abort stops the run the
 * way it stops `rexec`: the receiver's input ends early (a push) or the
 * lifeline kills the remote tar (a pull), and the temp directory is
 * removed.
 *
 * Why not scp or sftp, and how it compares with pdcp, clush and
 * parallel-scp on 16 loopback nodes: README.md, "Benchmarks".
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
import { join } from "jsr:@std/path@^1";
import { ConfigurationError, FiwiError } from "../errors.ts";
import { type RunResult, SshSession } from "../process/session.ts";
import {
  archiveStream,
  type LocalSource,
  localSources,
  packArchive,
  sha256File,
  sourceList,
  summarize,
  tempName,
} from "./_transfer_local.ts";
import {
  remoteFailure,
  resultOf,
  runOptions,
  runWithRetry,
  type TransferNode,
  type TransferOptions,
  type TransferResult,
  validateDestDir,
  validateTransferOptions,
} from "./_transfer_run.ts";
import {
  cleanupCommand,
  type ExpectedHash,
  finishScript,
  MAX_SCRIPT_BYTES,
  parseLanded,
  type PushPayload,
  receiveScript,
} from "./_transfer_scripts.ts";

export type {
  TransferNode,
  TransferOptions,
  TransferResult,
} from "./_transfer_run.ts";
export { validateTransferOptions } from "./_transfer_run.ts";
export {
  checkPull,
  preparePullDirs,
  pull,
  remoteGroups,
} from "./_transfer_pull.ts";
export type { RemoteGroup } from "./_transfer_pull.ts";

const log = getLogger(["fiwi", "transfer"]);

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
  /** A tar archive, or one regular file sent as it is (`path` is the file). */
  readonly payload: PushPayload;
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
  const length = finishScript(destDir, tempName(), names, expect).length;
  if (length > MAX_SCRIPT_BYTES) {
    throw new ConfigurationError(
      `Too many files to ${
        expect.length ? "verify" : "name"
      } in one push (${tree.entries}): push fewer at a time${
        expect.length ? " or without verify" : ""
      }`,
    );
  }
  const single = await singleFile(local);
  if (single) {
    return {
      path: join(local[0].parent, local[0].name),
      size: single.size,
      names,
      entries: 1,
      expect,
      payload: {
        name: names[0],
        size: single.size,
        mode: single.mode!,
        mtime: single.mtime!,
      },
      async [Symbol.asyncDispose]() {},
    };
  }
  return await packed(local, names, tree.entries, expect, options.signal);
}

/** The source's file info when it is one regular file, sent without tar. */
async function singleFile(
  local: LocalSource[],
): Promise<Deno.FileInfo | null> {
  if (local.length !== 1) return null;
  const info = await Deno.lstat(join(local[0].parent, local[0].name));
  return info.isFile && info.mode !== null && info.mtime !== null ? info : null;
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
      payload: "tar",
      async [Symbol.asyncDispose]() {
        await Deno.remove(path).catch(() => {});
      },
    };
  } catch (e) {
    await Deno.remove(path).catch(() => {});
    if (e instanceof Deno.errors.NotCapable) {
      throw new ConfigurationError(
        `Packing the push needs read and write access to its temporary file "${path}": grant --allow-read and --allow-write for the temporary directory`,
        { cause: e },
      );
    }
    throw e;
  }
}

/** How long the cleanup after a stopped push may take. */
const CLEANUP_TIMEOUT_MS = 5_000;

/**
 * Remove what a stopped push left in `destDir`: its own trap may have been
 * cut short by the lifeline's KILL. Best effort, bounded, never retried.
 */
async function removeTemp(
  node: TransferNode,
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
 *
 * The payload goes to a receiver that reads the run's stdin to its EOF
 * (see {@linkcode receiveScript}). One file without hashes to check is put
 * in place by that same run; anything else is put in place by a second,
 * short run under the lifeline ({@linkcode finishScript}), since checking
 * hashes or merging a tree can take a while after the input ended.
 */
export async function pushArchive(
  node: TransferNode,
  archive: PushArchive,
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const t0 = performance.now();
  await node.prepare();
  const temp = tempName();
  const oneRun = archive.payload !== "tar" && archive.expect.length === 0;
  const received = await receive(node, archive, destDir, temp, oneRun, options);
  const { short } = received;
  let run = received.run;
  // A short archive stops the first run (aborted): no second run follows.
  if (run.success && !oneRun) {
    run = await runWithRetry(
      node,
      finishScript(destDir, temp, archive.names, archive.expect),
      () => runOptions(options),
      options.signal,
    );
  }
  if (run.started && (run.aborted || run.timedOut)) {
    await removeTemp(node, destDir, temp);
  }
  if (short) {
    // The receiver refused the short payload: nothing was put in place.
    return resultOf(node.name, null, {
      files: 0,
      bytes: 0,
      error: new FiwiError(
        `"${archive.path}" shrank while it was sent to node "${node.name}": push it again`,
      ),
    }, t0);
  }
  // A failed push counts only what its put step had put in place: bytes
  // that were sent but never landed are not a transfer.
  const landed = parseLanded(run.stdout);
  const result = resultOf(node.name, run, {
    files: run.success ? archive.entries : landed.files,
    bytes: run.success ? archive.size : landed.bytes,
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

/** The first run of a push: the payload into the temp directory. */
async function receive(
  node: TransferNode,
  archive: PushArchive,
  destDir: string,
  temp: string,
  oneRun: boolean,
  options: TransferOptions,
): Promise<{ run: RunResult; short: boolean }> {
  const script = receiveScript(
    destDir,
    temp,
    archive.payload,
    oneRun ? archive.names : null,
  );
  let short = false;
  const run = await runWithRetry(node, script, () => ({
    ...runOptions(options),
    stdin: {
      size: archive.size,
      direct: true,
      // One upload per gateway for every node of a pushAll behind it.
      share: archive,
      stream: archiveStream(
        archive.path,
        archive.size,
        (n) => options.onProgress?.(n),
        () => short = true,
      ),
    },
  }), options.signal);
  return { run, short };
}

/**
 * Copy local files or directories (recursively) into the remote directory
 * `destDir` (created if missing), each under its own base name. See the
 * module doc; `SshNode.push` calls this.
 */
export async function push(
  node: TransferNode,
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  await node.prepare();
  await using archive = await packForPush(sources, destDir, options);
  return await pushArchive(node, archive, destDir, options);
}
