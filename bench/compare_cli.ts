/**
 * The `fiwi` command end to end, side by side with pdsh, clush and
 * parallel-ssh, on the loopback rig (one OpenSSH server per 16 addresses):
 *
 *   deno task bench:cli
 *
 * - stream: `fiwi run -w n1 'seq 1 2000000'` with the central log on, stdout
 *   to /dev/null, against `pdsh`, `clush` and `parallel-ssh -i` doing the
 *   same (target: fiwi <= 1.0 x pdsh); fiwi's master is warm, as it is after
 *   any earlier command. Wall time and peak RSS (`/usr/bin/time -v`).
 * - memory: fiwi's peak RSS while 1 GiB of output streams through it
 *   (target <= 100 MB).
 * - warm fan-out: a second `fiwi run 'uname -a'` on 64 nodes straight after
 *   a first one, against `pdsh -f 64` (target <= 0.25 x pdsh).
 *
 * Rounds alternate the contenders (FIWI_BENCH_ROUNDS, default 3); medians.
 * FIWI_BENCH_PARTS=stream,memory,fanout picks parts.
 *
 * @module
 */

import { measure, median } from "./_measure.ts";
import { quote, startCliRig } from "./_cli_rig.ts";

const ROUNDS = Number(Deno.env.get("FIWI_BENCH_ROUNDS") ?? "3");
const PARTS = new Set(
  (Deno.env.get("FIWI_BENCH_PARTS") ?? "stream,memory,fanout").split(","),
);
const NODES = 64;
const SEQ = "seq 1 2000000";
/** 1 GiB of 64-byte lines. */
const GIB =
  "yes 'fiwi benchmark: one line of sixty-four bytes, newline incl.' " +
  "| head -c 1073741824";

// Disposed last: closes fiwi's masters, removes the scratch dir, stops sshd.
await using cli = await startCliRig(NODES);
const { rig, dir, rigFile, env, ssh, fiwi } = cli;

const streamContenders: Record<string, string> = {
  fiwi: `${
    fiwi(`run --rig ${rigFile} -w n1 --log ${dir}/fiwi.log ${quote(SEQ)}`)
  } > /dev/null`,
  pdsh: `PDSH_SSH_ARGS_APPEND=${quote(ssh)} pdsh -R ssh -l ${rig.user} -w ${
    rig.hosts[0]
  } ${quote(SEQ)} > /dev/null`,
  clush: `clush -l ${rig.user} -o ${quote(ssh)} -w ${rig.hosts[0]} ${
    quote(SEQ)
  } > /dev/null`,
  "parallel-ssh": `parallel-ssh -i -t 0 -l ${rig.user} -x ${quote(ssh)} -H ${
    rig.hosts[0]
  } ${quote(SEQ)} > /dev/null`,
};

const fmt = (m: number) => `${m.toFixed(0).padStart(6)} ms`;
// Warm n1's master, as any earlier fiwi command leaves it.
await measure(fiwi(`run --rig ${rigFile} -w n1 --no-log true`), env);
if (PARTS.has("stream")) {
  const times: Record<string, number[]> = {};
  const rss: Record<string, number[]> = {};
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, script] of Object.entries(streamContenders)) {
      await Deno.remove(`${dir}/fiwi.log`).catch(() => {});
      const m = await measure(script, env);
      (times[name] ??= []).push(m.ms);
      (rss[name] ??= []).push(m.rssMb);
    }
  }
  const pdsh = median(times.pdsh);
  console.log(
    `stream: ${SEQ} on one loopback node, stdout to /dev/null, medians of ${ROUNDS}`,
  );
  for (const name of Object.keys(streamContenders)) {
    console.log(
      `  ${name.padEnd(13)} ${fmt(median(times[name]))}  peak RSS ${
        median(rss[name]).toFixed(0)
      } MB  fiwi / this ${
        (median(times.fiwi) / median(times[name])).toFixed(2)
      }`,
    );
  }
  console.log(
    `  fiwi / pdsh ${
      (median(times.fiwi) / pdsh).toFixed(2)
    } (target <= 1.0, log on)`,
  );
}
if (PARTS.has("memory")) {
  const m = await measure(
    `${
      fiwi(`run --rig ${rigFile} -w n1 --log ${dir}/big.log ${quote(GIB)}`)
    } > /dev/null`,
    { ...env, FIWI_LOG_SIZE: "64M", FIWI_LOG_FILES: "2" },
  );
  console.log(
    `memory: 1 GiB of output through fiwi run (log on, rotated at 64M): ${
      (m.ms / 1000).toFixed(1)
    } s, peak RSS ${m.rssMb.toFixed(0)} MB (target <= 100 MB)`,
  );
}
if (PARTS.has("fanout")) {
  const second: number[] = [];
  const pdshTimes: number[] = [];
  const range = `127.0.0.[1-${NODES}]`;
  for (let i = 0; i < ROUNDS; i++) {
    await cli.closeMasters();
    await measure(fiwi(`run --rig ${rigFile} --no-log 'uname -a'`), env);
    second.push(
      (await measure(
        fiwi(`run --rig ${rigFile} 'uname -a'`) + " > /dev/null",
        env,
      ))
        .ms,
    );
    pdshTimes.push(
      (await measure(
        `PDSH_SSH_ARGS_APPEND=${
          quote(ssh)
        } pdsh -R ssh -f ${NODES} -l ${rig.user} -w '${range}' 'uname -a' > /dev/null`,
        env,
      )).ms,
    );
  }
  console.log(
    `fanout: second fiwi run 'uname -a' on ${NODES} nodes ${
      fmt(median(second))
    }, pdsh -f ${NODES} ${fmt(median(pdshTimes))}, ratio ${
      (median(second) / median(pdshTimes)).toFixed(2)
    } (target <= 0.25)`,
  );
}
