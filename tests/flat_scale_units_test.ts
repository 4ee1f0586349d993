// The pieces of flat mode at scale that need no sshd: the cap's least
// recently used order and its waits, the guessed control socket path
// against ssh's own, and the open-file arithmetic.
import { assertEquals, assertThrows } from "jsr:@std/assert@^1";
import { ConfigurationError, SshNode } from "../mod.ts";
import { MasterCap } from "../src/connection/_master_cap.ts";
import { guessControlPath } from "../src/connection/_control_path.ts";
import { controlPool } from "../src/connection/pool.ts";
import {
  checkOpenFiles,
  fanoutWithin,
  openFilesNeeded,
} from "../src/fanout/_fd_limit.ts";

Deno.test("the master cap stops the least recently used idle master first and waits when all are in use", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_cap_" });
  // Plain files stand in for sockets: stopping one fails at once, which
  // the cap takes as a master already gone.
  const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => `${dir}/${n}`);
  for (const f of [a, b, c, d]) await Deno.writeTextFile(f, "");
  const cap = new MasterCap();
  cap.max = 2;
  const never = new AbortController().signal;
  try {
    await t.step("opens up to the cap without waiting", async () => {
      assertEquals(await cap.open(a, never), true);
      assertEquals(await cap.open(b, never), true);
      assertEquals(cap.sockets, [a, b]);
    });
    await t.step(
      "a master in use is never stopped: the next one waits for a run to end",
      async () => {
        let opened = false;
        const third = cap.open(c, never).then((ok) => opened = ok);
        await new Promise((r) => setTimeout(r, 50));
        assertEquals(opened, false);
        cap.use(a); // a used again: b is now the least recently used
        await cap.done(a);
        await cap.done(b);
        await third;
        assertEquals(opened, true);
        assertEquals(cap.sockets, [a, c]);
      },
    );
    await t.step("an abort ends the wait", async () => {
      const abort = new AbortController();
      const fourth = cap.open(d, abort.signal);
      abort.abort();
      assertEquals(await fourth, false);
      assertEquals(cap.sockets, [a, c]);
    });
    await t.step(
      "a master that never came up stops counting when its run ends",
      async () => {
        await cap.done(a);
        await Deno.remove(c);
        await cap.done(c);
        assertEquals(cap.sockets, [a]);
      },
    );
    await t.step("the cap is a whole number >= 1", () => {
      for (const bad of [0, -1, 1.5, NaN]) {
        try {
          cap.max = bad;
          throw new Error(`accepted ${bad}`);
        } catch (e) {
          assertEquals(e instanceof RangeError, true, String(e));
        }
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a guessed control socket path is ssh's own, or no guess when the config may change it", async () => {
  const base = {
    name: "n",
    host: "10.0.0.5",
    user: "lab",
    controlDir: "/tmp/fiwi-guess",
  };
  const cases: [string, SshNode, boolean][] = [
    ["user@host", new SshNode(base), true],
    ["a port", new SshNode({ ...base, port: 2222 }), true],
    [
      "a jump host",
      new SshNode({ ...base, relay: "gw", relayMode: "jump" }),
      true,
    ],
    ["no user", new SshNode({ ...base, user: null }), false],
    [
      "a Hostname option",
      new SshNode({ ...base, sshOptions: { HostName: "x" } }),
      false,
    ],
  ];
  for (const [what, node, guessed] of cases) {
    const guess = await guessControlPath(node.spec);
    if (!guessed) {
      assertEquals(guess, null, what);
      continue;
    }
    assertEquals(guess, await controlPool.socketPath(node), what);
  }
});

Deno.test("the open-file arithmetic of a fan-out", () => {
  assertEquals(openFilesNeeded(512), 96 + 3 * 512);
  assertEquals(fanoutWithin(1024), 309);
  assertEquals(openFilesNeeded(fanoutWithin(1024)) <= 1024, true);
  assertEquals(fanoutWithin(64), 1);
  // Small fan-outs are never refused; this process's limit carries 16.
  checkOpenFiles(8);
  checkOpenFiles(16);
  assertThrows(
    () => checkOpenFiles(10_000_000),
    ConfigurationError,
    "Fan-out 10000000 needs about 30000096 open files",
  );
});
