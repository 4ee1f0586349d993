/**
 * The pull side of transfers: remote `tar -c` on the node's stdout into a
 * local `tar -x` in a private temp directory inside `destDir/<node>`,
 * optionally compared by SHA-256 with the node's files, then renamed into
 * place. The node is not trusted with this machine: `destDir/<node>` is
 * checked so no other user can redirect the pull, and what arrives is ours
 * and loses setuid, setgid and write-for-others bits (`pulledMode`).
 *
 * @module
 */

import { join, resolve } from "jsr:@std/path@^1";
import { ConfigurationError, FiwiError } from "../errors.ts";
import type { RunResult } from "../process/run_options.ts";
import {
  ensureSafeDir,
  type SafeDirRules,
} from "../connection/_control_dir.ts";
import {
  type Landed,
  place,
  refuseDuplicateNames,
  removeStaleTemps,
  sha256File,
  sourceList,
  summarize,
  tamePulled,
  tempName,
} from "./_transfer_local.ts";
import { Extractor, pulledHeader, settlePulled } from "./_transfer_receive.ts";
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
  batches,
  hashCommand,
  parseHashes,
  pullCommand,
  pullOneCommand,
} from "./_transfer_scripts.ts";

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
 * How the local directory a pull writes into is checked: every component
 * of `destDir/<node>` as the ControlMaster directory's (owned by us or
 * root, writable by nobody else but a root-owned sticky directory such as
 * `/tmp`, no link another user could have planted), and `destDir/<node>`
 * itself a real directory nobody else can write, since a pull as root would
 * otherwise write wherever another user's link points.
 */
const PULL_DIR_RULES: SafeDirRules = {
  label: "pull destination",
  hint: "remove it, or pull into a directory only you can write",
  createMode: 0o777,
  last: "safe",
};

/**
 * Create `destDir/<node>` for each of `nodes` if missing and check it (see
 * {@linkcode PULL_DIR_RULES}); rejects with {@linkcode ConfigurationError}
 * naming the unsafe path and its owner. Returns the last node's directory.
 */
export async function preparePullDirs(
  nodes: readonly { name: string }[],
  destDir: string,
): Promise<string> {
  const dirs = nodes.map((node) => nodeDirOf(destDir, node.name));
  // Those already there first (a planted link among them): a refusal
  // comes before any directory was made.
  const there = await Promise.all(
    dirs.map((d) => Deno.lstat(d).then(() => true, () => false)),
  );
  for (const [i, dir] of dirs.entries()) {
    if (there[i]) await ensureSafeDir(dir, PULL_DIR_RULES);
  }
  for (const [i, dir] of dirs.entries()) {
    if (!there[i]) await ensureSafeDir(dir, PULL_DIR_RULES);
  }
  return dirs.at(-1) ?? "";
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
  node: TransferNode,
  sources: string | readonly string[],
  destDir: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const t0 = performance.now();
  const groups = checkPull([node], sources, destDir, options);
  await node.prepare();
  const nodeDir = await preparePullDirs([node], destDir);
  await removeStaleTemps(nodeDir);
  // Private until each entry is put in place, with its mode made safe.
  const tmp = join(nodeDir, tempName());
  await Deno.mkdir(tmp, { mode: 0o700 });
  try {
    return await pullInto(node, groups, tmp, nodeDir, options, t0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function pullInto(
  node: TransferNode,
  groups: RemoteGroup[],
  tmp: string,
  nodeDir: string,
  options: TransferOptions,
  t0: number,
): Promise<TransferResult> {
  let bytes = 0;
  // A failed pull reports what it put in place under final names (usually
  // nothing), not the bytes it received and threw away.
  const landed: Landed = { files: 0, bytes: 0 };
  const fail = (run: RunResult | null, error: FiwiError | null) =>
    resultOf(node.name, run, { ...landed, error }, t0);
  for (const group of groups) {
    const got = await receive(node, group, tmp, options, (n) => {
      bytes += n;
      options.onProgress?.(bytes);
    });
    if (got) return fail(got.run, got.error);
  }
  for (const name of groups.flatMap((g) => g.names)) {
    await tamePulled(join(tmp, name));
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
      await place(join(tmp, name), join(nodeDir, name), landed);
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
 * Receive one group into `tmp`; resolves null when it all arrived, else
 * the run and the error.
 */
function receive(
  node: TransferNode,
  group: RemoteGroup,
  tmp: string,
  options: TransferOptions,
  onBytes: (n: number) => void,
): Promise<Received> {
  return group.names.length === 1
    ? receiveOne(node, group, tmp, options, onBytes)
    : receiveMany(node, group, tmp, options, onBytes);
}

type Received = { run: RunResult | null; error: FiwiError | null } | null;

/**
 * One remote path: the ssh client writes it (the file, or an archive of a
 * directory) straight into a file next to `tmp`, which then becomes
 * `tmp/<name>`.
 */
async function receiveOne(
  node: TransferNode,
  group: RemoteGroup,
  tmp: string,
  options: TransferOptions,
  onBytes: (n: number) => void,
): Promise<Received> {
  const name = group.names[0];
  const data = `${tmp}.part`;
  await Deno.writeFile(data, new Uint8Array(), {
    createNew: true,
    mode: 0o600,
  });
  try {
    let seen = 0;
    const run = await runWithRetry(
      node,
      pullOneCommand(group.parent, name),
      () => ({
        ...runOptions(options),
        stdoutFile: data,
        onStdoutFile: (bytes) => {
          onBytes(bytes - seen);
          seen = bytes;
        },
      }),
      options.signal,
    );
    const { kind, rest } = pulledHeader(run.stderr);
    const path = `${group.parent}/${name}`;
    if (!run.success) {
      const said = { ...run, stderr: rest };
      return { run, error: remoteFailure("Pull of", node.name, path, said) };
    }
    const complaint = kind
      ? await settlePulled(data, kind, tmp, name)
      : "the node said neither file nor archive";
    if (!complaint) return null;
    return {
      run: null,
      error: new FiwiError(
        `Unpacking "${path}" from node "${node.name}" failed: ${complaint}`,
      ),
    };
  } finally {
    await Deno.remove(data).catch(() => {});
  }
}

/** Several paths under one directory: one archive, unpacked as it arrives. */
async function receiveMany(
  node: TransferNode,
  group: RemoteGroup,
  tmp: string,
  options: TransferOptions,
  onBytes: (n: number) => void,
): Promise<Received> {
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
  node: TransferNode,
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
