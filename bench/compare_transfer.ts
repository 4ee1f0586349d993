/**
 * Side by side, in one run on a 16-address loopback rig: pushing one 100 MB
 * file to 16 nodes at once, and pulling it back from all 16, with fiwi and
 * with `pdcp` / `rpdcp`, `clush --copy` / `--rcopy` and `parallel-scp` /
 * `parallel-slurp` (each when installed). Prints medians, peak RSS and the
 * ratio fiwi / best tool (target <= 1.0).
 *
 *   sudo deno task bench:transfer
 *
 * Each node is its own user with its own home, and the destination is a
 * relative path, so each node writes its own file, as each node of a real
 * rig has its own disk. With one directory shared by all 16 "nodes", the
 * tools' 16 writers share the pages of one file, while each of fiwi's
 * atomic renames over the same name makes ext4 write the replaced file back
 * (`auto_da_alloc`): fiwi's push measured 8.5 s there against 6.1 s with a
 * directory per node. Making the users needs root.
 *
 * fiwi runs three ways:
 * - `fiwi push` / `fiwi pull`, the command as users run it (the `fiwi`
 *   task's flags), its masters warm from the command before, wall time and
 *   peak RSS from `/usr/bin/time -v`, like the tools;
 * - the library's `pushAll` / `pullAll` with warm masters;
 * - the library without masters (one connection per run, as the tools).
 *
 * Rounds alternate the contenders (FIWI_BENCH_ROUNDS, default 3; size in
 * MB: FIWI_BENCH_MB, default 100). FIWI_BENCH_PARTS=push,pull picks parts
 * (a pull needs the files a push left: it pushes them once first).
 *
 * @module
 */

import { installed, measure, type Measured, median } from "./_measure.ts";
import { must } from "../tests/_sh.ts";
import { pullAll, pushAll, type TransferResult } from "../mod.ts";
import { startLoopbackRig } from "../tests/_loopback.ts";

const NODES = 16;
const ROUNDS = Number(Deno.env.get("FIWI_BENCH_ROUNDS") ?? "3");
const MB = Number(Deno.env.get("FIWI_BENCH_MB") ?? "100");
const SIZE = MB * 1024 * 1024;
const ROOT = new URL("../", import.meta.url).pathname;
/** The destination, relative to each node user's home. */
const DEST = "fiwi_bench_xfer";
const PARTS = new Set(
  (Deno.env.get("FIWI_BENCH_PARTS") ?? "push,pull").split(","),
);

if (Deno.uid() !== 0) {
  console.error(
    "bench:transfer makes one user per loopback node (its own directory): run it as root",
  );
  Deno.exit(2);
}

const TASKS: Record<string, string> = JSON.parse(
  await Deno.readTextFile(`${ROOT}deno.json`),
).tasks;
/** The exact `deno run` flags of the `fiwi` task. */
const FIWI_FLAGS = /^deno run (.+) scripts\/fiwi\.ts$/.exec(TASKS.fiwi)![1];

/** Time `fn` in this process, sampling its RSS. */
async function measureHere(fn: () => Promise<unknown>): Promise<Measured> {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(
    () => peak = Math.max(peak, Deno.memoryUsage().rss),
    50,
  );
  const t = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { ms: performance.now() - t, rssMb: peak / 2 ** 20 };
}

/** The user of node `i` (0-based) and its home. */
const userOf = (i: number) => `fiwibench${i + 1}`;
const homeOf = (i: number) => `/var/lib/${userOf(i)}`;

/** One user per node, let in by the rig's shared authorized_keys. */
async function makeUsers(): Promise<void> {
  for (let i = 0; i < NODES; i++) {
    const id = await new Deno.Command("id", {
      args: ["-u", userOf(i)],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!id.success) {
      await must("useradd", [
        "-M",
        "-d",
        homeOf(i),
        "-s",
        "/bin/sh",
        userOf(i),
      ]);
    }
    // A locked password ("!") blocks key logins with UsePAM no; "*" does not.
    await must("usermod", ["-p", "*", userOf(i)]);
    await Deno.remove(`${homeOf(i)}/${DEST}`, { recursive: true }).catch(
      () => {},
    );
    await Deno.mkdir(`${homeOf(i)}/${DEST}`, { recursive: true });
    await must("chown", ["-R", `${userOf(i)}:`, homeOf(i)]);
  }
}

function mustSucceed(results: TransferResult[]): void {
  const bad = results.filter((r) => !r.success);
  if (bad.length > 0) {
    throw new Error(
      `${bad.length} transfers failed, e.g. ${bad[0].node}: ${
        bad[0].error?.message ?? "aborted"
      }`,
    );
  }
}

/** Files of the payload's size under `dir` (some tools exit 0 on failure). */
async function copiesIn(dir: string): Promise<number> {
  let n = 0;
  const visit = async (path: string) => {
    for await (const e of Deno.readDir(path)) {
      const p = `${path}/${e.name}`;
      if (e.isDirectory) await visit(p);
      else if (e.isFile && (await Deno.stat(p)).size === SIZE) n++;
    }
  };
  await visit(dir).catch(() => {});
  return n;
}

await using rig = await startLoopbackRig({ extraHosts: NODES - 2 });
await makeUsers();
const work = await Deno.makeTempDir({ prefix: "fiwi_bench_xfer_" });
const file = `${work}/payload.bin`;
const localDir = `${work}/pulled`;
const hostsFile = `${work}/hosts`;
// Tools that take only -F get the port and each host's user from it.
const config = `${work}/ssh_config`;
await Deno.writeTextFile(
  config,
  `Port ${rig.port}\n` +
    rig.hosts.map((h, i) => `Host ${h}\n  User ${userOf(i)}\n`).join("") +
    await Deno.readTextFile(rig.sshConfig),
);
await Deno.writeTextFile(hostsFile, rig.hosts.join("\n") + "\n");
await Deno.writeTextFile(
  `${work}/rigs.yaml`,
  `defaults: { port: ${rig.port}, sshConfig: ${rig.sshConfig} }
rigs:
  loop:
    nodes:
${
    rig.hosts.map((h, i) =>
      `      n${i + 1}: { host: ${h}, user: ${userOf(i)} }`
    ).join("\n")
  }
`,
);
await must("sh", ["-c", `head -c ${SIZE} /dev/urandom > ${file}`]);

const nodes = rig.hosts.map((_, index) =>
  rig.node({ index, name: `n${index + 1}`, user: userOf(index), silent: true })
);
const plain = rig.hosts.map((_, index) =>
  rig.node({
    index,
    name: `p${index + 1}`,
    user: userOf(index),
    silent: true,
    controlMaster: false,
  })
);

const range = `127.0.0.[1-${NODES}]`;
// pdsh passes `-l <local user>` unless its ssh arguments are replaced.
const pdsh = {
  PDSH_SSH_ARGS: `-F ${config} -o BatchMode=yes -x %h`,
};
// clush hands scp its own options (the loopback sshd has no sftp
// subsystem: legacy scp protocol, -O).
const clush = `-o '-F ${config}' -O 'scp_options=-O -F ${config}'`;
const fiwiEnv = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
const fiwi = (sub: string, args = "") =>
  `cd ${work} && ${Deno.execPath()} run --config ${ROOT}deno.json ${FIWI_FLAGS} ` +
  `${ROOT}scripts/fiwi.ts ${sub} --no-log -w 'n[1-${NODES}]' ${args}`;
const fresh = (sub: string) =>
  `rm -rf ${localDir}/${sub} && mkdir -p ${localDir}/${sub} && `;

type Contender = () => Promise<Measured>;
const lib = (fn: () => Promise<TransferResult[]>): Contender => () =>
  measureHere(async () => mustSucceed(await fn()));

const pushers: Record<string, Contender> = {
  "fiwi push (command)": () =>
    measure(fiwi("push", `${file} ${DEST}`), fiwiEnv),
  "pushAll (warm)": lib(() => pushAll(nodes, file, DEST, { concurrency: 16 })),
  "pushAll (no master)": lib(() =>
    pushAll(plain, file, DEST, { concurrency: 16 })
  ),
  pdcp: () =>
    measure(`pdcp -R ssh -f ${NODES} -w '${range}' ${file} ${DEST}/`, pdsh),
  "clush --copy": () =>
    measure(
      `clush -f ${NODES} ${clush} -w '${range}' --copy ${file} --dest ${DEST}/`,
    ),
  "parallel-scp": () =>
    measure(
      `parallel-scp -p ${NODES} -t 0 -x '-O -F ${config}' -h ${hostsFile} ` +
        `${file} ${DEST}/`,
    ),
};
const remoteFile = `${DEST}/payload.bin`;
const pullers: Record<string, [string, Contender]> = {
  "fiwi pull (command)": [
    "cli",
    () => measure(fresh("cli") + fiwi("pull", `${remoteFile} ${localDir}/cli`)),
  ],
  "pullAll (warm)": [
    "lib",
    lib(() =>
      pullAll(nodes, remoteFile, `${localDir}/lib`, { concurrency: 16 })
    ),
  ],
  "pullAll (no master)": [
    "plain",
    lib(() =>
      pullAll(plain, remoteFile, `${localDir}/plain`, { concurrency: 16 })
    ),
  ],
  rpdcp: [
    "rpdcp",
    () =>
      measure(
        fresh("rpdcp") +
          `rpdcp -R ssh -f ${NODES} -w '${range}' ${remoteFile} ${localDir}/rpdcp/`,
        pdsh,
      ),
  ],
  "clush --rcopy": [
    "clush",
    () =>
      measure(
        fresh("clush") +
          `clush -f ${NODES} ${clush} -w '${range}' --rcopy ${remoteFile} ` +
          `--dest ${localDir}/clush/`,
      ),
  ],
  "parallel-slurp": [
    "slurp",
    () =>
      measure(
        fresh("slurp") +
          `parallel-slurp -p ${NODES} -t 0 -x '-O -F ${config}' -h ${hostsFile} ` +
          `-L ${localDir}/slurp ${remoteFile} payload.bin`,
      ),
  ],
};

const TOOLS: Record<string, string> = {
  pdcp: "pdcp",
  rpdcp: "rpdcp",
  "clush --copy": "clush",
  "clush --rcopy": "clush",
  "parallel-scp": "parallel-scp",
  "parallel-slurp": "parallel-slurp",
};
for (const [name, program] of Object.entries(TOOLS)) {
  if (await installed(program)) continue;
  delete pushers[name];
  delete pullers[name];
}

/**
 * Remove every node's copy, so each push writes a new file, and write back
 * what is dirty, so no contender pays for the writeback of an earlier one.
 */
async function clearRemote(): Promise<void> {
  for (let i = 0; i < NODES; i++) {
    await Deno.remove(`${homeOf(i)}/${remoteFile}`).catch(() => {});
  }
  await must("sync", []);
}

/** Copies of the payload on the nodes. */
async function remoteCopies(): Promise<number> {
  let n = 0;
  for (let i = 0; i < NODES; i++) n += await copiesIn(`${homeOf(i)}/${DEST}`);
  return n;
}

function report(title: string, results: Record<string, Measured[]>): void {
  console.log(title);
  let best = Infinity;
  for (const [name, xs] of Object.entries(results)) {
    if (!/fiwi|All/.test(name)) {
      best = Math.min(
        best,
        median(xs.map((x) => x.ms)),
      );
    }
  }
  for (const [name, xs] of Object.entries(results)) {
    const ms = median(xs.map((x) => x.ms));
    const rss = median(xs.map((x) => x.rssMb));
    const ratio = /fiwi|All/.test(name) && best < Infinity
      ? `  ratio ${(ms / best).toFixed(2)} (target <= 1.0)`
      : "";
    const rate = ((NODES * MB) / (ms / 1000)).toFixed(0);
    console.log(
      `  ${name.padEnd(22)} ${ms.toFixed(0).padStart(6)} ms  ${rate} MB/s  ` +
        `peak RSS ${rss.toFixed(0).padStart(3)} MB${ratio}`,
    );
  }
}

try {
  // Masters up for the library and for the command, caches warm.
  mustSucceed(await pushAll(nodes, file, DEST, { concurrency: 16 }));
  await measure(fiwi("push", `${file} ${DEST}`), fiwiEnv);
  const push: Record<string, Measured[]> = {};
  const pull: Record<string, Measured[]> = {};
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, fn] of Object.entries(PARTS.has("push") ? pushers : {})) {
      await clearRemote();
      const m = await fn();
      const copies = await remoteCopies();
      if (copies !== NODES) {
        throw new Error(`${name} left ${copies} of ${NODES} copies`);
      }
      (push[name] ??= []).push(m);
    }
    if (!PARTS.has("pull")) continue;
    if (await remoteCopies() !== NODES) {
      mustSucceed(await pushAll(nodes, file, DEST, { concurrency: 16 }));
    }
    for (const [name, [sub, fn]] of Object.entries(pullers)) {
      await Deno.remove(`${localDir}/${sub}`, { recursive: true }).catch(
        () => {},
      );
      await must("sync", []);
      const m = await fn();
      const copies = await copiesIn(`${localDir}/${sub}`);
      if (copies !== NODES) {
        throw new Error(`${name} pulled ${copies} of ${NODES} copies`);
      }
      (pull[name] ??= []).push(m);
    }
  }
  console.log(
    `${MB} MB file, ${NODES} loopback nodes at once (a directory each), ` +
      `medians of ${ROUNDS}`,
  );
  if (PARTS.has("push")) report("push", push);
  if (PARTS.has("pull")) report("pull", pull);
} finally {
  await Promise.all(nodes.map((n) => n.close()));
  await measure(fiwi("close"), fiwiEnv).catch(() => {});
  for (let i = 0; i < NODES; i++) {
    await Deno.remove(`${homeOf(i)}/${DEST}`, { recursive: true }).catch(
      () => {},
    );
  }
  await Deno.remove(work, { recursive: true });
}
