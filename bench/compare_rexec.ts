/**
 * Side by side, in one run on the loopback rig: fiwi's rexec against bare
 * OpenSSH doing the same work. Prints ratios (fiwi / bare); lower is better.
 *
 *   deno task bench:rexec
 *
 * - warm master: `rexec("true")` vs `ssh -o ControlPath=<same socket> host true`
 *   (target <= 1.15)
 * - streaming: `seq 1 2000000` through rexec with an onLine counter vs
 *   `ssh host 'seq 1 2000000' > /dev/null` (target <= 1.3), and for scale the
 *   same stream into `wc -l`
 *
 * Under a controlling terminal (e.g. `script -qec "deno task bench:rexec"
 * /dev/null`) each client starts through setsid(1); without one it does not.
 *
 * @module
 */

import { median, time } from "./_measure.ts";
import { hasControllingTerminal } from "../src/process/spawn.ts";
import { startLoopbackRig } from "../tests/_loopback.ts";

const ROUNDS = Number(Deno.env.get("FIWI_BENCH_ROUNDS") ?? "40");

async function bare(argv: string[]): Promise<void> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed with ${out.code}`);
  }
}

/** Alternate the two sides so drift in machine load hits both alike. */
async function sideBySide(
  rounds: number,
  fiwi: () => Promise<unknown>,
  ssh: () => Promise<unknown>,
): Promise<{ fiwi: number; ssh: number; ratio: number }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    a.push(await time(fiwi));
    b.push(await time(ssh));
  }
  const f = median(a);
  const s = median(b);
  return { fiwi: f, ssh: s, ratio: f / s };
}

await using rig = await startLoopbackRig();
await using node = rig.node({ silent: true });
const warm = await node.rexec("true");
if (!warm.success) throw new Error(`warm-up failed: ${warm.stderr}`);
const socket = [...Deno.readDirSync(`${rig.dir}/cm`)][0].name;
const target = `${rig.user}@${rig.hosts[0]}`;
const common = [
  "-F",
  rig.sshConfig,
  "-o",
  "BatchMode=yes",
  "-p",
  String(rig.port),
];
const viaMaster = [
  "ssh",
  ...common,
  "-o",
  `ControlPath=${rig.dir}/cm/${socket}`,
  "--",
  target,
];

const trueRun = await sideBySide(
  ROUNDS,
  () => node.rexec("true"),
  () => bare([...viaMaster, "true"]),
);

const seqRounds = Math.max(5, Math.floor(ROUNDS / 4));
const viaShell = viaMaster.map((a) => `'${a}'`).join(" ");
let lines = 0;
const seqRun = await sideBySide(
  seqRounds,
  async () => {
    lines = 0;
    const r = await node.rexec("seq 1 2000000", { onLine: () => lines++ });
    if (lines !== 2_000_000 || !r.success) {
      throw new Error(`seq run got ${lines} lines`);
    }
  },
  () => bare(["sh", "-c", `${viaShell} 'seq 1 2000000' > /dev/null`]),
);
// The floor for any reader of lines: the same stream into wc -l (C, memchr).
const wcRun = await sideBySide(
  seqRounds,
  () => bare(["sh", "-c", `${viaShell} 'seq 1 2000000' | wc -l > /dev/null`]),
  () => bare(["sh", "-c", `${viaShell} 'seq 1 2000000' > /dev/null`]),
);

const fmt = (n: number) => n.toFixed(1).padStart(8);
console.log(`fiwi vs bare OpenSSH on the loopback rig (median of runs, ms)`);
console.log(`case                          fiwi      ssh   ratio  target`);
console.log(
  `rexec("true"), warm master ${fmt(trueRun.fiwi)} ${fmt(trueRun.ssh)}   ${
    trueRun.ratio.toFixed(2)
  }  <= 1.15`,
);
console.log(
  `seq 1 2000000 with onLine  ${fmt(seqRun.fiwi)} ${fmt(seqRun.ssh)}   ${
    seqRun.ratio.toFixed(2)
  }  <= 1.30`,
);
console.log(
  `  reference: ssh | wc -l   ${fmt(wcRun.fiwi)} ${fmt(wcRun.ssh)}   ${
    wcRun.ratio.toFixed(2)
  }`,
);
console.log(
  hasControllingTerminal()
    ? "(controlling terminal: each client starts through setsid)"
    : "(no controlling terminal: clients start without setsid)",
);
