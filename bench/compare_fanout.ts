/**
 * Side by side, in one run on a 64-address loopback rig (127.0.0.1-64, one
 * OpenSSH server per 16 addresses): `runAll(nodes, "true")` against the
 * usual parallel-ssh tools doing the same. Prints medians and ratios
 * (fiwi / other); lower is better.
 *
 *   deno task bench:fanout
 *
 * - warm: every node's ControlMaster is up; fiwi vs bare `ssh` over the same
 *   sockets, 64 at a time with `xargs -P64` (target <= 1.3)
 * - cold: no master anywhere; fiwi (which starts a master per node) vs
 *   `pdsh -R ssh -f 64`, `clush -f 64` and `parallel-ssh -p 64`, each when
 *   installed (target <= 1.0 x the best of them). fiwi without
 *   ControlMaster is listed too: it does the same work as the tools.
 *
 * Rounds alternate the contenders so load drift hits all alike
 * (FIWI_BENCH_WARM_ROUNDS, default 15; FIWI_BENCH_COLD_ROUNDS, default 7: with
 * 3 cold rounds the ratio wandered between 0.96 and 1.12).
 *
 * @module
 */

import { installed, median, shell, time } from "./_measure.ts";
import { runAll, type SshNode } from "../mod.ts";
import { type LoopbackRig, startLoopbackRig } from "../tests/_loopback.ts";

const NODES = 64;
const WARM_ROUNDS = Number(Deno.env.get("FIWI_BENCH_WARM_ROUNDS") ?? "15");
const COLD_ROUNDS = Number(Deno.env.get("FIWI_BENCH_COLD_ROUNDS") ?? "7");

async function fiwi(nodes: SshNode[]): Promise<void> {
  const results = await runAll(nodes, "true", { concurrency: NODES });
  const failed = results.filter((r) => !r.success);
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} runs failed, e.g. ${failed[0].node}: ${
        failed[0].error?.message ?? failed[0].stderr
      }`,
    );
  }
}

function contenders(rig: LoopbackRig, nodes: SshNode[]) {
  const ssh = `-F ${rig.sshConfig} -p ${rig.port} -o BatchMode=yes`;
  const hostList = rig.hosts.join("\n");
  const range = `127.0.0.[1-${NODES}]`;
  return {
    warmBare: () =>
      shell(
        `printf '%s\\n' ${rig.hosts.join(" ")} | xargs -P${NODES} -I{} ` +
          `ssh ${ssh} -o ControlPath=${nodes[0].controlDir}/%C ` +
          `${rig.user}@{} true`,
      ),
    cold: {
      pdsh: () =>
        shell(`pdsh -R ssh -f ${NODES} -l ${rig.user} -w '${range}' true`, {
          PDSH_SSH_ARGS_APPEND: ssh,
        }),
      clush: () =>
        shell(
          `clush -f ${NODES} -l ${rig.user} -o '${ssh}' -w '${range}' true`,
        ),
      "parallel-ssh": () =>
        shell(
          `parallel-ssh -p ${NODES} -t 60 -l ${rig.user} -x '${ssh}' ` +
            `-H '${hostList.replaceAll("\n", " ")}' true`,
        ),
    } as Record<string, () => Promise<void>>,
  };
}

await using rig = await startLoopbackRig({ extraHosts: NODES - 2 });
const nodes = rig.hosts.map((_, index) =>
  rig.node({ index, name: `n${index + 1}`, silent: true })
);
const plain = rig.hosts.map((_, index) =>
  rig.node({ index, name: `p${index + 1}`, silent: true, controlMaster: false })
);
const closeMasters = () => Promise.all(nodes.map((n) => n.close()));
const c = contenders(rig, nodes);
const tools: string[] = [];
for (const name of Object.keys(c.cold)) {
  const program = name === "parallel-ssh" ? "parallel-ssh" : name;
  if (await installed(program)) tools.push(name);
  else console.log(`${name}: not installed, left out`);
}

try {
  // Warm: masters up (the first runAll starts them), then alternate.
  await fiwi(nodes);
  const warm = { fiwi: [] as number[], bare: [] as number[] };
  for (let i = 0; i < WARM_ROUNDS; i++) {
    warm.fiwi.push(await time(() => fiwi(nodes)));
    warm.bare.push(await time(c.warmBare));
  }

  // Cold: every master closed before each contender.
  const cold: Record<string, number[]> = {
    "fiwi (ControlMaster)": [],
    "fiwi (no master)": [],
  };
  for (const t of tools) cold[t] = [];
  for (let i = 0; i < COLD_ROUNDS; i++) {
    await closeMasters();
    cold["fiwi (ControlMaster)"].push(await time(() => fiwi(nodes)));
    await closeMasters();
    cold["fiwi (no master)"].push(await time(() => fiwi(plain)));
    for (const t of tools) cold[t].push(await time(c.cold[t]));
  }

  const ms = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  console.log(`runAll("true") over ${NODES} loopback nodes, medians`);
  console.log(
    `warm: fiwi ${ms(median(warm.fiwi))}, bare ssh + xargs -P${NODES} ${
      ms(median(warm.bare))
    }, ratio ${
      (median(warm.fiwi) / median(warm.bare)).toFixed(2)
    } (target <= 1.3)`,
  );
  const fiwiCold = median(cold["fiwi (ControlMaster)"]);
  let best = Infinity;
  for (const [name, xs] of Object.entries(cold)) {
    const m = median(xs);
    if (tools.includes(name)) best = Math.min(best, m);
    console.log(
      `cold: ${name.padEnd(22)} ${ms(m)}  fiwi (ControlMaster) / this ${
        (fiwiCold / m).toFixed(2)
      }`,
    );
  }
  if (tools.length > 0) {
    console.log(
      `cold: fiwi / best tool ${(fiwiCold / best).toFixed(2)}, ` +
        `fiwi (no master) / best tool ${
          (median(cold["fiwi (no master)"]) / best).toFixed(2)
        } (target <= 1.0)`,
    );
  }
} finally {
  await closeMasters();
}
