/**
 * What a lease adds to a run: `runAll([local node], "true")` alone against
 * the same run inside a lease taken and dropped, on a SQLite file and on a
 * PostgreSQL on loopback (private servers from tests/_postgres.ts: one with
 * fsync on, as a team's server has it, one with fsync off, to show what the
 * disk costs), in one run, interleaved round by round, medians of ROUNDS.
 * The lease's own time (open, take, drop, close: everything in a round but
 * the run) is measured in each round; the ratio is (run + lease) / run.
 * Two costs for each store:
 *
 * - warm: the store is already open (a long-lived program, `rigTest()`,
 *   an `await using` scope around many runs): `take` + run + `drop`;
 * - cold: what one `fiwi run` process pays: open the store (connect, check
 *   the schema), take, run, drop, close.
 *
 * Targets (issue 21): at most 5 ms (SQLite) and 20 ms (PostgreSQL) added.
 *
 *   deno task bench:lease [--rounds 30]
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { type LeaseStore, openLeaseStore, runAll, SshNode } from "../mod.ts";
import { median, time } from "./_measure.ts";
import {
  type Postgres,
  postgresMissing,
  startPostgres,
} from "../tests/_postgres.ts";

const args = parseArgs(Deno.args, {
  string: ["rounds"],
  default: { rounds: "30" },
});
const ROUNDS = Number(args.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  throw new RangeError(
    `Invalid --rounds ${JSON.stringify(args.rounds)}: give a positive integer`,
  );
}

const node = new SshNode({
  name: "here",
  host: "localhost",
  transport: "local",
});

async function run(): Promise<void> {
  const [r] = await runAll([node], "true");
  if (!r.success) {
    throw new Error(`true failed on the local transport: ${r.error?.message}`);
  }
}

/** A store under measure. */
interface Subject {
  name: string;
  location: string;
  /** Most ms a lease may add. */
  target: number;
}

/**
 * One measured variant: each round times the whole (`total`) and the lease
 * part alone (`lease`: open, take, drop, close around the same run), so the
 * added cost is measured directly instead of as a difference of two noisy
 * medians.
 */
interface Variant {
  label: string;
  /** Runs once; returns the ms spent on the lease, outside the run. */
  fn: () => Promise<number>;
}

/** The warm and cold variants of `s`; the open store goes into `open`. */
async function variantsOf(
  s: Subject,
  open: LeaseStore[],
): Promise<Variant[]> {
  const store = await openLeaseStore(s.location);
  open.push(store);
  return [
    {
      label: `${s.name} warm`,
      fn: async () => {
        const t0 = performance.now();
        const lease = await store.take({ nodes: ["warm"], for: 60_000 });
        const ran = await time(run);
        await lease.drop();
        return performance.now() - t0 - ran;
      },
    },
    {
      label: `${s.name} cold`,
      fn: async () => {
        const t0 = performance.now();
        const cold = await openLeaseStore(s.location);
        const lease = await cold.take({ nodes: ["cold"], for: 60_000 });
        const ran = await time(run);
        await lease.drop();
        await cold.close();
        return performance.now() - t0 - ran;
      },
    },
  ];
}

/** Medians (total, lease part) of every variant, round-robin after a warm-up. */
async function measure(
  variants: Variant[],
): Promise<Map<string, { total: number; lease: number }>> {
  for (let i = 0; i < 3; i++) for (const v of variants) await v.fn();
  const totals = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  const leases = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of variants) {
      let lease = 0;
      totals.get(v.label)!.push(await time(async () => lease = await v.fn()));
      leases.get(v.label)!.push(lease);
    }
  }
  return new Map(variants.map((v) => [v.label, {
    total: median(totals.get(v.label)!),
    lease: median(leases.get(v.label)!),
  }]));
}

const dir = await Deno.makeTempDir({ prefix: "fiwi_bench_lease_" });
const servers: Postgres[] = [];
const open: LeaseStore[] = [];
try {
  const subjects: Subject[] = [
    { name: "SQLite", location: `${dir}/leases.db`, target: 5 },
  ];
  const missing = postgresMissing();
  if (missing === null) {
    for (const durable of [true, false]) {
      const pg = await startPostgres({ durable });
      servers.push(pg);
      subjects.push({
        name: `PostgreSQL, fsync ${durable ? "on" : "off"}`,
        location: pg.url,
        target: 20,
      });
    }
  } else console.log(`PostgreSQL skipped: ${missing}`);

  const variants: Variant[] = [{
    label: "run alone",
    fn: async () => (await run(), 0),
  }];
  for (const s of subjects) variants.push(...await variantsOf(s, open));
  const medians = await measure(variants);
  const base = medians.get("run alone")!.total;
  console.log(`runAll([local node], "true"), medians of ${ROUNDS}:`);
  console.log(`  ${"run alone".padEnd(28)} ${base.toFixed(1)} ms`);
  for (const s of subjects) {
    for (const kind of ["warm", "cold"]) {
      const { total, lease } = medians.get(`${s.name} ${kind}`)!;
      // The ratio from the lease's own time: the medians of whole rounds
      // move by more than a lease costs on a busy machine.
      console.log(
        `  ${`${s.name} ${kind}`.padEnd(28)} +${lease.toFixed(1)} ms, ratio ${
          ((base + lease) / base).toFixed(2)
        } (whole round ${total.toFixed(1)} ms; target +${s.target} ms: ${
          lease <= s.target ? "met" : "MISSED"
        })`,
      );
    }
  }
} finally {
  for (const store of open) await store.close();
  for (const pg of servers) await pg[Symbol.asyncDispose]();
  await Deno.remove(dir, { recursive: true });
}
