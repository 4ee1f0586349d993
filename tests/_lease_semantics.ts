/**
 * The lease semantics every store must have, as `t.step`s over a function
 * that opens a fresh store (a new connection, a new random token) on the
 * same database: tests/lease_test.ts runs them on SQLite,
 * tests/lease_pg_test.ts on PostgreSQL. Each step uses node names of its
 * own, so steps neither see nor disturb each other's leases.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
} from "jsr:@std/assert@^1";
import { delay } from "jsr:@std/async@^1/delay";
import {
  ConfigurationError,
  type Lease,
  LeaseHeldError,
  LeaseLostError,
  type LeaseStore,
} from "../mod.ts";

/** Short lease durations: the store's clock must end them on time. */
const SHORT = 300;

let serial = 0;
/** Node names no other step uses. */
function fresh(...names: string[]): string[] {
  const tag = `${Date.now().toString(36)}${(serial++).toString(36)}`;
  return names.map((n) => `${n}-${tag}`);
}

/** Poll `check` every 10 ms until it holds (at most `ms`). */
async function until(
  check: () => Promise<boolean>,
  ms = 5_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`Condition not met in ${ms} ms`);
    await delay(10);
  }
}

async function queued(store: LeaseStore, node: string): Promise<number> {
  const { waiting } = await store.list();
  return waiting.filter((w) => w.nodes.includes(node)).length;
}

/** Open two stores (two tokens), run `fn`, close both. */
async function withTwo(
  open: () => Promise<LeaseStore>,
  fn: (a: LeaseStore, b: LeaseStore) => Promise<void>,
): Promise<void> {
  const a = await open();
  try {
    const b = await open();
    try {
      await fn(a, b);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

/**
 * Run the lease semantics as steps of `t` on stores from `open` (each call
 * a new store object with its own random token, on one database).
 */
export async function leaseSemantics(
  t: Deno.TestContext,
  open: () => Promise<LeaseStore>,
): Promise<void> {
  await t.step("take, held, list and history agree", async () => {
    await withTwo(open, async (a, b) => {
      const [n1, n2] = fresh("n1", "n2");
      const lease = await a.take({
        nodes: [n1, n2],
        for: 60_000,
        note: "soak",
      });
      assertEquals(lease.nodes, [n1, n2]);
      assertEquals(await a.held([n1]), [], "own leases are not held by others");
      const held = await b.held([n2]);
      assertEquals(held.map((l) => [l.id, l.nodes, l.note, l.mine]), [
        [lease.id, [n1, n2], "soak", false],
      ]);
      assertGreater(held[0].expiresAt.getTime(), held[0].takenAt.getTime());
      const mine = (await a.list()).leases.find((l) => l.id === lease.id);
      assertEquals(mine?.mine, true);
      await lease.drop();
      assertEquals(await b.held([n1, n2]), []);
      const kinds = (await b.history({ node: n1 })).map((e) => e.kind);
      assertEquals(kinds, ["take", "drop"]);
    });
  });

  await t.step("a lease is all or nothing", async () => {
    await withTwo(open, async (a, b) => {
      const [x, y] = fresh("x", "y");
      await using _x = await a.take({ nodes: [x], for: 60_000 });
      const e: LeaseHeldError = await assertRejects(
        () => b.take({ nodes: [x, y], for: 60_000 }),
        LeaseHeldError,
      );
      assertEquals(e.holders.map((l) => l.nodes), [[x]]);
      assert(e.message.includes(`"${x}" held by`), e.message);
      assertEquals(e.exitCode, 2);
      assertEquals(await a.held([y]), [], "nothing of the refused set taken");
      await using _y = await b.take({ nodes: [y], for: 60_000 });
    });
  });

  await t.step("renew extends by the store clock and is recorded", async () => {
    await withTwo(open, async (a, b) => {
      const [n] = fresh("n");
      await using lease = await a.take({ nodes: [n], for: SHORT });
      const first = lease.expiresAt;
      await delay(SHORT / 2);
      const renewed = await lease.renew(5_000);
      assertGreater(renewed.getTime(), first.getTime());
      assertEquals(lease.expiresAt, renewed);
      await delay(SHORT);
      assertEquals((await b.held([n])).map((l) => l.id), [lease.id]);
      const kinds = (await a.history({ node: n })).map((e) => e.kind);
      assertEquals(kinds, ["take", "renew"]);
    });
  });

  await t.step(
    "drop frees the nodes once; a dropped lease is gone",
    async () => {
      await withTwo(open, async (a, b) => {
        const [n] = fresh("n");
        const lease = await a.take({ nodes: [n], for: 60_000 });
        assertEquals(await a.drop(lease.id), true);
        assertEquals(await a.drop(lease.id), false);
        await lease.drop(); // idempotent
        assert(lease.dropped);
        await using _b = await b.take({ nodes: [n], for: 60_000 });
      });
    },
  );

  await t.step(
    "a lease expires by the store clock, and the expiry is recorded at its time",
    async () => {
      await withTwo(open, async (a, b) => {
        const [n] = fresh("n");
        const lease = await a.take({ nodes: [n], for: SHORT });
        await assertRejects(
          () => b.take({ nodes: [n], for: 60_000 }),
          LeaseHeldError,
        );
        await delay(SHORT + 100);
        await using _b = await b.take({ nodes: [n], for: 60_000 });
        const events = await b.history({ node: n });
        assertEquals(events.map((e) => e.kind), ["take", "expire", "take"]);
        assertEquals(events[1].at.getTime(), lease.expiresAt.getTime());
        assertEquals(events[1].leaseId, lease.id);
        await assertRejects(() => lease.renew(), LeaseLostError);
      });
    },
  );

  await t.step(
    "waiters are served in request order per node; a small set does not jump a large one",
    async () => {
      await withTwo(open, async (a, b) => {
        const c = await open();
        try {
          const [x, y] = fresh("x", "y");
          const blocker = await a.take({ nodes: [x], for: 60_000 });
          const order: string[] = [];
          const big = b.take({ nodes: [x, y], for: 60_000, wait: 10_000 })
            .then((l) => (order.push("big"), l));
          await until(async () => (await queued(a, y)) === 1);
          // y is free, but promised to the earlier waiter.
          const refused: LeaseHeldError = await assertRejects(
            () => c.take({ nodes: [y], for: 60_000 }),
            LeaseHeldError,
          );
          assertEquals(refused.holders, []);
          assertEquals(refused.waiting.map((w) => w.nodes), [[x, y]]);
          const small = c.take({ nodes: [y], for: 60_000, wait: 10_000 })
            .then((l) => (order.push("small"), l));
          await until(async () => (await queued(a, y)) === 2);
          const waiting = (await a.list()).waiting.filter((w) =>
            w.nodes.includes(y)
          );
          assertEquals(waiting.map((w) => w.nodes), [[x, y], [y]]);
          await delay(300);
          assertEquals(order, [], "nobody served while x is held");
          await blocker.drop();
          const bigLease: Lease = await big;
          await delay(300);
          assertEquals(order, ["big"]);
          await bigLease.drop();
          const smallLease = await small;
          assertEquals(order, ["big", "small"]);
          await smallLease.drop();
          assertEquals(await queued(a, y), 0);
        } finally {
          await c.close();
        }
      });
    },
  );

  await t.step(
    "a waiter that gives up or is aborted leaves the queue",
    async () => {
      await withTwo(open, async (a, b) => {
        const [n] = fresh("n");
        await using _held = await a.take({ nodes: [n], for: 60_000 });
        const started = Date.now();
        const e = await assertRejects(
          () => b.take({ nodes: [n], for: 60_000, wait: SHORT }),
          LeaseHeldError,
        );
        assert(Date.now() - started >= SHORT - 20);
        assert(e.message.startsWith("Waited"), e.message);
        assertEquals(await queued(a, n), 0);

        const controller = new AbortController();
        const waiting = b.take({
          nodes: [n],
          for: 60_000,
          wait: 10_000,
          signal: controller.signal,
        });
        await until(async () => (await queued(a, n)) === 1);
        const reason = new Error("user gave up");
        controller.abort(reason);
        assertEquals(await waiting.catch((e) => e), reason);
        assertEquals(await queued(a, n), 0);
      });
    },
  );

  await t.step(
    "closing a store ends its waits, which leave the queue",
    async () => {
      await withTwo(open, async (a, b) => {
        const [n] = fresh("n");
        await using _held = await a.take({ nodes: [n], for: 60_000 });
        const waiting = b.take({ nodes: [n], for: 60_000, wait: 10_000 })
          .catch((e) => e);
        await until(async () => (await queued(a, n)) === 1);
        await b.close();
        const e = await waiting;
        assert(e instanceof ConfigurationError, String(e));
        assertMatch(e.message, /was closed while waiting/);
        assertEquals(await queued(a, n), 0);
      });
    },
  );

  await t.step("the same owner token passes", async () => {
    const token = `ci-job-${crypto.randomUUID()}`;
    const [n] = fresh("n");
    await withTwo(open, async (a, b) => {
      const first = await a.take({ nodes: [n], for: 60_000, token });
      const second = await b.take({ nodes: [n], for: 60_000, token });
      assertEquals(await b.held([n]), [], "b took one with the token");
      assert((await b.list()).leases.find((l) => l.id === first.id)?.mine);
      await second.drop();
      await first.drop();
    });
  });

  await t.step(
    "another token's lease cannot be renewed or dropped",
    async () => {
      await withTwo(open, async (a, b) => {
        const [n] = fresh("n");
        await using lease = await a.take({ nodes: [n], for: 60_000 });
        await assertRejects(() => b.drop(lease.id), ConfigurationError);
        await assertRejects(() => b.renew(lease.id, 1_000), ConfigurationError);
      });
    },
  );

  await t.step("force takes over and is recorded with both names", async () => {
    await withTwo(open, async (a, b) => {
      const [n, m] = fresh("n", "m");
      const victim = await a.take({
        nodes: [n],
        for: 60_000,
        holder: "alice@ctl",
      });
      await using _forced = await b.take({
        nodes: [n],
        for: 60_000,
        force: true,
        holder: "bob@ci",
      });
      await assertRejects(() => victim.renew(), LeaseLostError);
      const force = (await a.history({ node: n })).find((e) =>
        e.kind === "force"
      );
      assertEquals(
        [force?.holder, force?.overridden],
        ["bob@ci", ["alice@ctl"]],
      );

      // A command run with --force records the override without a lease.
      await using held = await a.take({
        nodes: [m],
        for: 60_000,
        holder: "alice@ctl",
      });
      const others = await b.held([m]);
      await b.recordForce([m], others, "carol@lab");
      const events = await b.history({ node: m });
      assertEquals(events.map((e) => [e.kind, e.holder, e.overridden]), [
        ["take", "alice@ctl", undefined],
        ["force", "carol@lab", ["alice@ctl"]],
      ]);
      assertEquals(events[1].leaseId, held.id);
    });
  });

  await t.step("keepRenewing holds a short lease until disposed", async () => {
    await withTwo(open, async (a, b) => {
      const [n] = fresh("n");
      const lease = await a.take({ nodes: [n], for: SHORT });
      {
        using _renewing = lease.keepRenewing();
        await delay(SHORT * 3);
        assertEquals((await b.held([n])).length, 1, "still held");
      }
      await delay(SHORT + 100);
      assertEquals(await b.held([n]), [], "expired once renewing stopped");
      await lease.drop();
    });
  });

  await t.step("history filters by node, time and count", async () => {
    await withTwo(open, async (a) => {
      const [n, m] = fresh("n", "m");
      const l1 = await a.take({ nodes: [n], for: 60_000 });
      await l1.drop();
      const mid = (await a.history({ node: n })).at(-1)!.at;
      const l2 = await a.take({ nodes: [n, m], for: 60_000 });
      await l2.drop();
      assertEquals((await a.history({ node: n })).length, 4);
      assertEquals((await a.history({ node: m })).length, 2);
      const since = await a.history({ node: n, since: mid });
      assert(since.every((e) => e.at >= mid));
      assertEquals(since.at(-1)?.kind, "drop");
      const last = await a.history({ node: n, limit: 1 });
      assertEquals(last.map((e) => [e.kind, e.leaseId]), [["drop", l2.id]]);
      // A node name that is a prefix of another matches only itself.
      assertEquals(await a.history({ node: n.slice(0, -1) }), []);
    });
  });

  await t.step(
    "requests are checked before anything is asked of the store",
    async () => {
      await withTwo(open, async (a) => {
        await assertRejects(
          () => a.take({ nodes: [], for: 1_000 }),
          TypeError,
        );
        await assertRejects(
          () => a.take({ nodes: ["x"], for: 0 }),
          RangeError,
        );
        await assertRejects(
          () => a.take({ nodes: ["x"], for: 1_000, wait: -1 }),
          RangeError,
        );
      });
    },
  );

  await t.step(
    "two stores racing for overlapping sets never share a node",
    async () => {
      await withTwo(open, async (a, b) => {
        const nodes = fresh("r0", "r1", "r2", "r3", "r4");
        const inUse = new Set<string>();
        let served = 0;
        const contender = async (store: LeaseStore, k: number) => {
          const want = [nodes[k % 5], nodes[(k + 1) % 5], nodes[(k + 3) % 5]];
          await using lease = await store.take({
            nodes: want,
            for: 10_000,
            wait: 20_000,
            note: `contender ${k}`,
            // Leases of one token never block each other: a token each.
            token: `contender-${k}-${crypto.randomUUID()}`,
          });
          for (const n of want) {
            assert(!inUse.has(n), `${n} held twice`);
            inUse.add(n);
          }
          await delay(5);
          for (const n of want) inUse.delete(n);
          served++;
          assertEquals(lease.nodes, want);
        };
        await Promise.all(
          Array.from({ length: 16 }, (_, k) => contender(k % 2 ? a : b, k)),
        );
        assertEquals(served, 16);
        assertEquals(await queued(a, nodes[0]), 0);
      });
    },
  );
}
