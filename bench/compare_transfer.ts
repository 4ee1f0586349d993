/**
 * Side by side, in one run on a 16-address loopback rig: `pushAll` of one
 * 100 MB file against `pdcp`, `clush --copy` and `parallel-scp`, and
 * `pullAll` of it against `rpdcp`, `clush --rcopy` and `parallel-slurp`
 * (each when installed), all 16 nodes at once. Prints medians and the ratio
 * fiwi / best tool (target <= 1.0). fiwi runs cold (no master: it starts
 * one per node, as the tools start a connection per node) and warm.
 *
 * It also times the alternative mechanism for one node: scp over the same
 * ControlMaster against fiwi through the exec channel (the loopback
 * sshd has no sftp subsystem, so scp runs in its legacy `-O` mode).
 *
 *   deno task bench:transfer
 *
 * Rounds alternate the contenders (FIWI_BENCH_ROUNDS, default 3; size in
 * MB: FIWI_BENCH_MB, default 100).
 *
 * @module
 */

import { installed, median, shell, time } from "./_measure.ts";
import { pullAll, pushAll, type SshNode, type TransferResult } from "../mod.ts";
import { type LoopbackRig, startLoopbackRig } from "../tests/_loopback.ts";

const NODES = 16;
const ROUNDS = Number(Deno.env.get("FIWI_BENCH_ROUNDS") ?? "3");
const MB = Number(Deno.env.get("FIWI_BENCH_MB") ?? "100");

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

interface Setup {
  rig: LoopbackRig;
  /** ssh config with the rig's port, for tools that take only -F. */
  config: string;
  file: string;
  remoteDir: string;
  localDir: string;
  hostsFile: string;
}

function tools(s: Setup) {
  const { rig, config, file, remoteDir, localDir, hostsFile } = s;
  const range = `127.0.0.[1-${NODES}]`;
  const pdsh = { PDSH_SSH_ARGS_APPEND: `-F ${config} -o BatchMode=yes` };
  // clush hands scp its own options (no sftp subsystem on the loopback
  // sshd: legacy scp protocol, -O), and exits 0 even when scp failed.
  const clushOptions = `-o '-F ${config}' -O 'scp_options=-O -F ${config}'`;
  const fresh = (sub: string) =>
    `rm -rf ${localDir}/${sub} && mkdir -p ${localDir}/${sub} && `;
  return {
    push: {
      pdcp: () =>
        shell(
          `pdcp -R ssh -f ${NODES} -l ${rig.user} -w '${range}' ${file} ${remoteDir}/`,
          pdsh,
        ),
      "clush --copy": () =>
        shell(
          `clush -f ${NODES} -l ${rig.user} ${clushOptions} -w '${range}' ` +
            `--copy ${file} --dest ${remoteDir}/`,
        ),
      "parallel-scp": () =>
        shell(
          `parallel-scp -p ${NODES} -t 0 -l ${rig.user} -x '-O -F ${config}' ` +
            `-h ${hostsFile} ${file} ${remoteDir}/`,
        ),
    } as Record<string, () => Promise<void>>,
    pull: {
      rpdcp: () =>
        shell(
          fresh("rpdcp") +
            `rpdcp -R ssh -f ${NODES} -l ${rig.user} -w '${range}' ` +
            `${remoteDir}/payload.bin ${localDir}/rpdcp/`,
          pdsh,
        ),
      "clush --rcopy": () =>
        shell(
          fresh("clush") +
            `clush -f ${NODES} -l ${rig.user} ${clushOptions} -w '${range}' ` +
            `--rcopy ${remoteDir}/payload.bin --dest ${localDir}/clush/`,
        ),
      "parallel-slurp": () =>
        shell(
          fresh("slurp") +
            `parallel-slurp -p ${NODES} -t 0 -l ${rig.user} -x '-O -F ${config}' ` +
            `-h ${hostsFile} -L ${localDir}/slurp ${remoteDir}/payload.bin payload.bin`,
        ),
    } as Record<string, () => Promise<void>>,
  };
}

const ms = (x: number) => `${x.toFixed(0).padStart(6)} ms`;

function report(title: string, results: Record<string, number[]>): void {
  console.log(title);
  let best = Infinity;
  for (const [name, xs] of Object.entries(results)) {
    if (!name.startsWith("fiwi")) best = Math.min(best, median(xs));
  }
  for (const [name, xs] of Object.entries(results)) {
    const m = median(xs);
    const ratio = name.startsWith("fiwi") && best < Infinity
      ? `  ratio ${(m / best).toFixed(2)} (target <= 1.0)`
      : "";
    const rate = ((NODES * MB) / (m / 1000)).toFixed(0);
    console.log(`  ${name.padEnd(22)} ${ms(m)}  ${rate} MB/s${ratio}`);
  }
}

await using rig = await startLoopbackRig({ extraHosts: NODES - 2 });
const work = await Deno.makeTempDir({ prefix: "fiwi_bench_xfer_" });
const remoteDir = `/tmp/fiwi_bench_xfer_${rig.port}`;
const setup: Setup = {
  rig,
  config: `${work}/ssh_config`,
  file: `${work}/payload.bin`,
  remoteDir,
  localDir: `${work}/pulled`,
  hostsFile: `${work}/hosts`,
};
await Deno.writeTextFile(
  setup.config,
  `Port ${rig.port}\n` + await Deno.readTextFile(rig.sshConfig),
);
await Deno.writeTextFile(setup.hostsFile, rig.hosts.join("\n") + "\n");
await shell(`head -c ${MB * 1024 * 1024} /dev/urandom > ${setup.file}`);
await shell(
  `ssh -F ${setup.config} ${rig.user}@${rig.hosts[0]} mkdir -p ${remoteDir}`,
);

const nodes = rig.hosts.map((_, index) =>
  rig.node({ index, name: `n${index + 1}`, silent: true })
);
const plain = rig.hosts.map((_, index) =>
  rig.node({ index, name: `p${index + 1}`, silent: true, controlMaster: false })
);
const closeMasters = () => Promise.all(nodes.map((n) => n.close()));
const t = tools(setup);
const present: Record<string, boolean> = {};
for (const p of ["pdcp", "clush", "parallel-scp"]) {
  present[p] = await installed(p);
}
const usable = (name: string) =>
  present[
    name.split(" ")[0].replace("rpdcp", "pdcp").replace(
      "parallel-slurp",
      "parallel-scp",
    )
  ];

const SIZE = MB * 1024 * 1024;

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

/** Time a push; the payload must be on the node afterwards. */
async function timedPush(name: string, fn: () => Promise<void>) {
  await Deno.remove(`${remoteDir}/payload.bin`).catch(() => {});
  const ms = await time(fn);
  if ((await copiesIn(remoteDir)) < 1) {
    throw new Error(`${name} copied nothing`);
  }
  return ms;
}

/** Time a pull; every node's copy must be in `sub` afterwards. */
async function timedPull(name: string, sub: string, fn: () => Promise<void>) {
  const ms = await time(fn);
  const n = await copiesIn(`${setup.localDir}/${sub}`);
  if (n !== NODES) throw new Error(`${name} pulled ${n} of ${NODES} copies`);
  return ms;
}

const PULL_DIRS: Record<string, string> = {
  rpdcp: "rpdcp",
  "clush --rcopy": "clush",
  "parallel-slurp": "slurp",
};

const fiwiPush = (ns: SshNode[]) => async () =>
  mustSucceed(await pushAll(ns, setup.file, remoteDir, { concurrency: NODES }));
const fiwiPull = (ns: SshNode[]) => async () => {
  await Deno.remove(`${setup.localDir}/fiwi`, { recursive: true }).catch(
    () => {},
  );
  mustSucceed(
    await pullAll(ns, `${remoteDir}/payload.bin`, `${setup.localDir}/fiwi`, {
      concurrency: NODES,
    }),
  );
};

try {
  const push: Record<string, number[]> = {
    "fiwi (no master)": [],
    "fiwi (warm master)": [],
  };
  const pull: Record<string, number[]> = {
    "fiwi (no master)": [],
    "fiwi (warm master)": [],
  };
  for (const name of Object.keys(t.push)) if (usable(name)) push[name] = [];
  for (const name of Object.keys(t.pull)) if (usable(name)) pull[name] = [];
  await fiwiPush(nodes)(); // masters up, caches warm
  for (let i = 0; i < ROUNDS; i++) {
    push["fiwi (no master)"].push(await timedPush("fiwi", fiwiPush(plain)));
    push["fiwi (warm master)"].push(await timedPush("fiwi", fiwiPush(nodes)));
    for (const name of Object.keys(t.push)) {
      if (push[name]) push[name].push(await timedPush(name, t.push[name]));
    }
    pull["fiwi (no master)"].push(
      await timedPull("fiwi", "fiwi", fiwiPull(plain)),
    );
    pull["fiwi (warm master)"].push(
      await timedPull("fiwi", "fiwi", fiwiPull(nodes)),
    );
    for (const name of Object.keys(t.pull)) {
      if (!pull[name]) continue;
      pull[name].push(await timedPull(name, PULL_DIRS[name], t.pull[name]));
    }
  }
  // One node: fiwi through the exec channel vs scp over the same master
  // (the loopback sshd has no sftp subsystem, so scp in its -O mode).
  const one = { fiwi: [] as number[], scp: [] as number[] };
  const scp = () =>
    shell(
      `scp -O -q -p -F ${setup.config} ` +
        `-o ControlPath=${nodes[0].controlDir}/%C ${setup.file} ` +
        `${rig.user}@${rig.hosts[0]}:${remoteDir}/scp.bin`,
    );
  for (let i = 0; i < ROUNDS; i++) {
    one.fiwi.push(await time(fiwiPush(nodes.slice(0, 1))));
    one.scp.push(await time(scp));
  }
  console.log(
    `${MB} MB file, ${NODES} loopback nodes at once, medians of ${ROUNDS}`,
  );
  report("push", push);
  report("pull", pull);
  console.log(
    `one node over a warm master: fiwi push ${ms(median(one.fiwi))}, ` +
      `scp -O ${ms(median(one.scp))}`,
  );
} finally {
  await closeMasters();
  await shell(
    `ssh -F ${setup.config} ${rig.user}@${rig.hosts[0]} rm -rf ${remoteDir}`,
  )
    .catch(() => {});
  await Deno.remove(work, { recursive: true });
}
