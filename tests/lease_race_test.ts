// Leases under contention, on both stores (a SQLite file and a private
// PostgreSQL, tests/_postgres.ts), with real processes as two local users
// (root and fiwitest; tests/_contenders.ts):
// - no double holders: 20 contenders race for overlapping sets of 4 of 8
//   nodes for RACE_MS (15 s: the issue's 60 s would take 2 min of CI for
//   both stores; 15 s still gives each contender many rounds); each holder
//   checks every node is free by creating its lock dir and appends
//   start/end lines to a log, which never shows two holders of a node, and
//   every contender gets its lease;
// - expiry: a holder SIGKILLed mid-lease leaves its nodes to the next
//   waiter within 1 s after the lease expires;
// - renewal: a holder with keepRenewing() keeps its lease past `for`, and
//   once SIGKILLed the lease is free within one renewal period after it
//   expires;
// - faults (PostgreSQL): a stopped server fails a take with one clear line,
//   bounded; a restart while a request waits resumes it or fails it
//   clearly, bounded.
import { assert, assertEquals } from "jsr:@std/assert@^1";
import { FiwiError, type LeaseStore, openLeaseStore } from "../mod.ts";
import {
  type Contender,
  countMarked,
  doubleHolders,
  type SharedDir,
  sharedDir,
  spawnContender,
  startsByPid,
} from "./_contenders.ts";
import {
  type Postgres,
  postgresSkipReason,
  startPostgres,
} from "./_postgres.ts";
import { marker, must, within } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

const RACE_MS = 15_000;
const CONTENDERS = 20;
const NODES = 8;
/** Longest a contender process may take to start (20 at once, 2 cores). */
const START_MS = 90_000;
const pgSkip = postgresSkipReason("lease race tests on PostgreSQL");

/** Contender `i`'s 4 of the 8 nodes: windows, strides and pairs overlap. */
function nodesOf(prefix: string, i: number): string[] {
  const shape = [[0, 1, 2, 3], [0, 2, 4, 6], [0, 1, 4, 5]][Math.floor(i / 8)];
  return shape.map((d) => `${prefix}${(i + d) % NODES}`);
}

/** A store under test: where it is, and the shared dir of its contenders. */
interface Arena {
  store: string;
  shared: SharedDir;
}

async function noDoubleHolders(arena: Arena): Promise<void> {
  const { shared } = arena;
  const mark = marker();
  const all: Contender[] = [];
  try {
    for (let i = 0; i < CONTENDERS; i++) {
      all.push(spawnContender(
        {
          mode: "race",
          store: arena.store,
          nodes: nodesOf("race", i),
          name: `contender${i}`,
          dir: shared.dir,
          durationMs: RACE_MS,
          holdMs: 20,
          forMs: 20_000,
          waitMs: 20_000,
        },
        shared,
        i % 2 ? shared.user : null,
        mark,
      ));
    }
    for (const c of all) assertEquals(await c.next(START_MS), { ready: true });
    const secondUid = shared.user === null ? null : await uidOf(shared.user);
    for (const [i, c] of all.entries()) {
      const want = i % 2 && secondUid !== null ? secondUid : Deno.uid();
      assertEquals(await processUid(c.pid), want, `contender ${i}'s user`);
    }
    await Promise.all(all.map((c) => c.tell("go")));
    const bound = RACE_MS + 60_000;
    const reports = await Promise.all(
      all.map((c) => c.next<{ rounds: number; clashes: number }>(bound)),
    );
    for (const c of all) {
      const { code, stderr } = await c.exit(10_000);
      assertEquals(code, 0, `contender ${c.pid} failed: ${stderr}`);
    }
    const log = await Deno.readTextFile(`${shared.dir}/log`);
    assertEquals(doubleHolders(log), []);
    const starts = startsByPid(log);
    const rounds = reports.map((r) => r.rounds);
    assert(
      rounds.every((n) => n >= 1),
      `every contender gets its lease: rounds ${rounds.join(" ")}`,
    );
    for (const [i, c] of all.entries()) {
      assertEquals(starts.get(String(c.pid)), 4 * reports[i].rounds);
    }
    console.log(
      `${CONTENDERS} contenders (${
        shared.user === null ? "one user" : `half as ${shared.user}`
      }), ${RACE_MS / 1000} s: ${rounds.reduce((a, b) => a + b)} leases, ${
        Math.min(...rounds)
      } to ${Math.max(...rounds)} each`,
    );
  } finally {
    for (const c of all) await c[Symbol.asyncDispose]();
  }
  assertEquals(await settlesToZero(() => countMarked(mark)), 0);
}

/** The real uid of process `pid`. */
async function processUid(pid: number): Promise<number> {
  return Number((await must("ps", ["-o", "ruid=", "-p", String(pid)])).trim());
}

async function uidOf(user: string): Promise<number> {
  return Number((await must("id", ["-u", user])).trim());
}

/** A held lease's holder, SIGKILLed: when the next waiter gets the nodes. */
async function killedHolder(
  arena: Arena,
  nodes: string[],
  options: { forMs: number; renew: boolean; holdPast?: number },
): Promise<{ expiresAt: number; killedAt: number; gotAt: number }> {
  const mark = marker();
  await using holder = spawnContender(
    {
      mode: "hold",
      store: arena.store,
      nodes,
      name: "holder",
      forMs: options.forMs,
      renew: options.renew,
    },
    arena.shared,
    arena.shared.user,
    mark,
  );
  const held = await holder.next<{ id: string; expiresAt: number }>(START_MS);
  await using store = await openLeaseStore(arena.store);
  if (options.holdPast) {
    // Time has to pass here: nothing happens until the first `for` is over.
    const until = held.expiresAt + options.holdPast - Date.now();
    await new Promise((r) => setTimeout(r, until));
    const [live] = await store.held(nodes);
    assertEquals(live?.id, held.id, "the renewed lease is still held");
    assert(live.expiresAt.getTime() > Date.now());
  }
  const [before] = await store.held(nodes);
  const waiter = store.take({
    nodes,
    for: 5_000,
    wait: 30_000,
    note: "next",
    token: crypto.randomUUID(),
  });
  // Queue first, then kill: the waiter is the next one in line.
  await within(5_000, queued(store, nodes), "waiter in the queue");
  holder.kill();
  const killedAt = Date.now();
  assertEquals((await holder.exit(5_000)).code, 137);
  const lease = await within(40_000, waiter, "lease for the waiter");
  const gotAt = Date.now();
  await lease.drop();
  assertEquals(await settlesToZero(() => countMarked(mark)), 0);
  return { expiresAt: before.expiresAt.getTime(), killedAt, gotAt };
}

async function queued(store: LeaseStore, nodes: string[]): Promise<void> {
  for (;;) {
    const { waiting } = await store.list();
    if (waiting.some((w) => w.nodes.includes(nodes[0]))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function expiry(arena: Arena): Promise<void> {
  const forMs = 2_000;
  const t = await killedHolder(arena, ["exp0", "exp1"], {
    forMs,
    renew: false,
  });
  const late = t.gotAt - t.expiresAt;
  assert(late >= -50, `taken ${-late} ms before the lease expired`);
  assert(late <= 1_000, `taken ${late} ms after the lease expired`);
  console.log(`the waiter had the nodes ${late} ms after the expiry`);
}

async function renewal(arena: Arena): Promise<void> {
  const forMs = 2_000;
  const period = forMs / 3;
  const t = await killedHolder(arena, ["ren0", "ren1"], {
    forMs,
    renew: true,
    holdPast: forMs,
  });
  // A renewal that was on its way when the holder died may still land.
  const late = t.gotAt - t.expiresAt;
  assert(late >= -50, `taken ${-late} ms before the lease expired`);
  assert(late <= period + 1_000, `taken ${late} ms after it expired`);
  const sinceKill = t.gotAt - t.killedAt;
  assert(
    sinceKill <= forMs + period + 300,
    `free ${sinceKill} ms after the kill, over for + one renewal period`,
  );
  console.log(
    `the waiter had the nodes ${late} ms after the last expiry seen, ${sinceKill} ms after the kill`,
  );
}

/** The three contention cases as steps of `t`, on one store. */
async function contention(t: Deno.TestContext, arena: Arena): Promise<void> {
  await t.step(
    "20 contenders as 2 users never hold a node twice",
    () => noDoubleHolders(arena),
  );
  await t.step(
    "a SIGKILLed holder's nodes go to the next waiter within 1 s after expiry",
    () => expiry(arena),
  );
  await t.step(
    "keepRenewing() holds past `for`; killed, free within a period after expiry",
    () => renewal(arena),
  );
}

Deno.test("leases on SQLite: no double holders, expiry, renewal", async (t) => {
  await using shared = await sharedDir();
  await contention(t, { store: shared.sqlite, shared });
});

Deno.test({
  name: "leases on PostgreSQL: no double holders, expiry, renewal",
  ignore: pgSkip !== null,
}, async (t) => {
  await using pg = await startPostgres();
  await using shared = await sharedDir();
  await contention(t, { store: pg.url, shared });
});

/** One line, naming the store: what a user is shown for a store fault. */
function assertClear(e: unknown, pg: Postgres): void {
  if (!(e instanceof FiwiError)) throw new Error(`Not a FiwiError: ${e}`);
  assert(!e.message.includes("\n"), `one line: ${e.message}`);
  assert(
    e.message.includes(`127.0.0.1:${pg.port}`),
    `names the store: ${e.message}`,
  );
}

Deno.test({
  name:
    "leases on PostgreSQL: a stopped or restarted server fails clearly, never hangs",
  ignore: pgSkip !== null,
}, async (t) => {
  await using pg = await startPostgres();

  await t.step(
    "a stopped server: opening and taking fail with one line",
    async () => {
      await using open = await openLeaseStore(pg.url, { timeout: 2_000 });
      await pg.stop();
      try {
        for (
          const attempt of [
            async () => {
              await using store = await openLeaseStore(pg.url, {
                timeout: 2_000,
              });
              await store.take({ nodes: ["f0"], for: 1_000 });
            },
            () => open.take({ nodes: ["f0"], for: 1_000 }),
          ]
        ) {
          const started = performance.now();
          const e = await within(
            15_000,
            attempt().then(() => null, (e) => e),
            "failure",
          );
          assertClear(e, pg);
          const took = performance.now() - started;
          assert(took < 10_000, `failed after ${took} ms`);
          console.log(`${Math.round(took)} ms: ${(e as Error).message}`);
        }
      } finally {
        await pg.start();
      }
    },
  );

  await t.step(
    "a restart while a request waits: it resumes or fails clearly",
    async () => {
      await using a = await openLeaseStore(pg.url, { timeout: 2_000 });
      await using b = await openLeaseStore(pg.url, { timeout: 2_000 });
      const held = await a.take({
        nodes: ["r0", "r1"],
        for: 3_000,
        token: crypto.randomUUID(),
      });
      const waiter = b.take({
        nodes: ["r1"],
        for: 2_000,
        wait: 15_000,
        token: crypto.randomUUID(),
      })
        .then((lease) => lease, (e: unknown) => e);
      await within(5_000, queued(a, ["r1"]), "waiter in the queue");
      await pg.stop();
      await pg.start();
      // Dropped, or (if the drop fails with the server gone) expired.
      await held.drop().catch(() => {});
      const outcome = await within(30_000, waiter, "waiter's end");
      if (outcome instanceof Error) {
        assertClear(outcome, pg);
        console.log(`the waiter failed: ${outcome.message}`);
      } else {
        await (outcome as { drop(): Promise<void> }).drop();
        console.log("the waiter resumed and got its lease");
      }
    },
  );
});
