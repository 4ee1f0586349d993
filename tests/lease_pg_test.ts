// The lease store on a real PostgreSQL (tests/_postgres.ts: initdb, a free
// port on 127.0.0.1, stopped when the tests end, also on failure), reached
// as a role that is not a superuser, as a team's database is: the same
// semantic cases as on SQLite (tests/_lease_semantics.ts), then what only
// PostgreSQL has.
import {
  assert,
  assertEquals,
  assertFalse,
  assertRejects,
} from "jsr:@std/assert@^1";
import { ConfigurationError, LeaseHeldError, openLeaseStore } from "../mod.ts";
import { openPostgres } from "../src/lease/_postgres.ts";
import { leaseSemantics } from "./_lease_semantics.ts";
import { settlesToZero } from "./_wait.ts";
import {
  type Postgres,
  postgresSkipReason,
  startPostgres,
} from "./_postgres.ts";

const ignore = postgresSkipReason("lease tests on PostgreSQL") !== null;
const CRASH_CHILD = new URL("./fixtures/pg_crash_child.ts", import.meta.url);

/** A fresh database on the server, as a URL: cases never see each other. */
let databases = 0;
async function freshUrl(pg: Postgres): Promise<string> {
  const name = `fiwi_case${++databases}`;
  await pg.psql(`CREATE DATABASE ${name} OWNER fiwi`);
  return pg.url.replace(/\/fiwi$/, `/${name}`);
}

Deno.test({ name: "lease semantics on PostgreSQL", ignore }, async (t) => {
  await using pg = await startPostgres();
  await leaseSemantics(t, () => openLeaseStore(pg.url));
});

Deno.test({
  name: "lease store on PostgreSQL: its clock, its connections, its URL",
  ignore,
}, async (t) => {
  await using pg = await startPostgres();

  await t.step("expiry is the server's clock plus `for`", async () => {
    await using store = await openLeaseStore(await freshUrl(pg));
    const before = await serverNow(pg);
    await using lease = await store.take({ nodes: ["c1"], for: 60_000 });
    const after = await serverNow(pg);
    const expires = lease.expiresAt.getTime();
    assert(
      expires >= before + 60_000 && expires <= after + 60_000,
      `expires ${expires - before - 60_000} ms off the server clock`,
    );
  });

  await t.step(
    "racing connections: exactly one takes a free node",
    async () => {
      const url = await freshUrl(pg);
      const stores = await Promise.all(
        Array.from({ length: 8 }, () => openLeaseStore(url)),
      );
      try {
        const outcomes = await Promise.allSettled(
          stores.map((s) => s.take({ nodes: ["x1", "x2"], for: 30_000 })),
        );
        const won = outcomes.flatMap((o) =>
          o.status === "fulfilled" ? [o.value] : []
        );
        assertEquals(won.length, 1);
        for (const o of outcomes) {
          if (o.status === "rejected") {
            assert(o.reason instanceof LeaseHeldError, String(o.reason));
          }
        }
        await won[0].drop();
      } finally {
        for (const s of stores) await s.close();
      }
    },
  );

  await t.step(
    "the location hides the password; postgresql:// works too",
    async () => {
      const url = (await freshUrl(pg)).replace("fiwi@", "fiwi:s3cret@")
        .replace(/^postgres:/, "postgresql:");
      await using store = await openLeaseStore(url);
      assertFalse(store.location.includes("s3cret"), store.location);
      assert(store.location.includes(`127.0.0.1:${pg.port}`), store.location);
      await (await store.take({ nodes: ["p1"], for: 1_000 })).drop();
    },
  );

  await t.step(
    "a schema newer than this fiwi is refused in one line",
    async () => {
      const url = await freshUrl(pg);
      await (await openLeaseStore(url)).close();
      const db = new URL(url).pathname.slice(1);
      await pg.psql("UPDATE schema_version SET version = 99", db);
      const e = await assertRejects(
        () => openLeaseStore(url),
        ConfigurationError,
        "has schema version 99, newer than this fiwi knows",
      );
      assertFalse(e.message.includes("\n"));
    },
  );

  await t.step("an unknown database fails in one line naming it", async () => {
    const url = pg.url.replace(/\/fiwi$/, "/nosuchdb");
    const e = await assertRejects(
      () => openLeaseStore(url, { timeout: 2_000 }),
      ConfigurationError,
    );
    assert(e.message.includes("nosuchdb"), e.message);
    assertFalse(e.message.includes("\n"));
  });
});

// postgres.js 3.4.10 crashed the whole process here (an uncaught TypeError
// from a write it had queued on the closed socket: porsager/postgres#1154,
// #1208), or kept failing with CONNECT_TIMEOUT while the server was up: a
// lab's database restarting under a long `keepRenewing` did either. The
// waits after the kill put the next query before, while and after the
// client sees the close.
Deno.test({
  name:
    "lease store on PostgreSQL: a connection the server ends mid-transaction fails that transaction in one line, and the next one works",
  ignore,
}, async () => {
  await using pg = await startPostgres();
  const backend = await openPostgres(pg.url, "the store", 2_000);
  try {
    for (const pause of [0, 1, 5, 20, 0, 1, 5, 20]) {
      const failed = await backend.transaction(async (q) => {
        const [{ pid }] = await q("SELECT pg_backend_pid() AS pid");
        await pg.psql(`SELECT pg_terminate_backend(${Number(pid)})`);
        if (pause) await new Promise((r) => setTimeout(r, pause));
        await q("SELECT 1 AS one");
        return null;
      }).then(() => null, (e: unknown) => e);
      assert(failed !== null, `after ${pause} ms: the transaction succeeded`);
      const { error, transient } = backend.explain(failed);
      assert(transient, `after ${pause} ms: not transient: ${error.message}`);
      assertFalse(error.message.includes("\n"), error.message);
      const [{ one }] = await backend.transaction((q) => q("SELECT 1 AS one"));
      assertEquals(Number(one), 1);
    }
  } finally {
    await backend.close();
  }
});

/** The server's clock, in ms since the epoch. */
async function serverNow(pg: Postgres): Promise<number> {
  return Number(
    await pg.psql(
      "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    ),
  );
}

// Deno SIGKILLs its children when it dies of an uncaught error (as the
// postgres.js crash above did in CI): the server's lifeline must outlive
// that child to stop the server and remove its directory.
Deno.test({
  name:
    "the tests' PostgreSQL stops and its directory goes when the test process dies of an uncaught error",
  ignore,
}, async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CRASH_CHILD.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertFalse(out.success, "the child should die of its uncaught error");
  assert(new TextDecoder().decode(out.stderr).includes("uncaught on purpose"));
  const { pid, dir } = JSON.parse(new TextDecoder().decode(out.stdout));
  const exists = (path: string) => Deno.stat(path).then(() => 1, () => 0);
  const left = async () => await exists(`/proc/${pid}`) + await exists(dir);
  assertEquals(
    await settlesToZero(left, 20_000),
    0,
    `postmaster ${pid} or ${dir} is still there`,
  );
});
