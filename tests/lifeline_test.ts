// The lifeline (src/transport/wrapper.ts, src/process/spawn.ts): whatever
// ends fiwi, its ssh client or the node's sshd session, the remote command's
// group dies within 2 s and no ssh client is left. Real sshd on loopback.
import { assert, assertEquals } from "jsr:@std/assert@^1";
import { runAll, type SshNodeOptions } from "../mod.ts";
import { controlPool } from "../src/connection/pool.ts";
import {
  countCarrying,
  countExact,
  type LoopbackRig,
  marker,
  skipReasonFor,
  startLoopbackRig,
} from "./_loopback.ts";
import {
  GONE_WITHIN,
  killAfterReady,
  settlesTo,
  settlesToZero,
} from "./_wait.ts";

// Nodes on two addresses; it kills the sshd that serves a session.
const ignore = skipReasonFor(
  "lifeline tests",
  "second-address",
  "node-is-local",
) !== null;
const CHILD = new URL("./fixtures/lifeline_child.ts", import.meta.url);
const TRANSFER_CHILD = new URL(
  "./fixtures/transfer_child.ts",
  import.meta.url,
);

/** Options of 8 nodes, 4 per loopback address, for the child program. */
function eightNodes(
  rig: LoopbackRig,
  extra: Partial<SshNodeOptions>,
): SshNodeOptions[] {
  return Array.from({ length: 8 }, (_, i) => ({
    name: `n${i}`,
    host: rig.hosts[extra.relay ? 1 : i % 2],
    port: rig.port,
    user: rig.user,
    sshConfig: rig.sshConfig,
    controlDir: `${rig.dir}/cm`,
    ...extra,
  }));
}

async function killedChildLeavesNothing(
  rig: LoopbackRig,
  extra: Partial<SshNodeOptions>,
): Promise<void> {
  const token = marker();
  const specFile = `${rig.dir}/nodes-${token}.json`;
  await Deno.writeTextFile(specFile, JSON.stringify(eightNodes(rig, extra)));
  await killAfterReady(
    CHILD,
    [specFile, `sleep ${token}`],
    20_000,
    async () => {
      const local = extra.transport === "local";
      const sleeping = () =>
        countExact(`sleep ${token}`, local ? undefined : rig);
      // "up" comes just before each shell forks its sleep: wait for all 8.
      assertEquals(
        await settlesTo(sleeping, 8, 5000),
        8,
        "all 8 run before the kill",
      );
    },
  );
  // The remote commands (wrapper shells and sleeps) and the ssh clients
  // here, within the lifeline's bound of the kill.
  const left = () =>
    Promise.all([countCarrying(token, rig), countCarrying(token)]).then((
      [remote, clients],
    ) => remote + clients);
  const t0 = performance.now();
  const n = await settlesToZero(left, GONE_WITHIN);
  const ms = Math.round(performance.now() - t0);
  assertEquals(
    n,
    0,
    `commands and clients left behind ${ms} ms after the kill`,
  );
}

Deno.test({
  name:
    "lifeline: a SIGKILLed fiwi program leaves no remote command and no ssh client",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  await t.step(
    "with a ControlMaster",
    () => killedChildLeavesNothing(rig, {}),
  );
  await t.step(
    "without a ControlMaster",
    () => killedChildLeavesNothing(rig, { controlMaster: false }),
  );
  await t.step({
    name: "through a nested relay",
    ignore: !rig.relayReady,
    fn: () =>
      killedChildLeavesNothing(rig, {
        relay: `${rig.user}@${rig.hosts[0]}:${rig.port}`,
      }),
  });
  await t.step(
    "with the local transport",
    () => killedChildLeavesNothing(rig, { transport: "local" }),
  );
  await controlPool.closeAll();
});

/** Names in `dir`; with `nested`, the names in each of its directories. */
async function entries(dir: string, nested: boolean): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!nested) names.push(e.name);
    else if (e.isDirectory) {
      names.push(...await entries(`${dir}/${e.name}`, false));
    }
  }
  return names;
}

/**
 * SIGKILL a program in the middle of moving a 256 MiB file to or from 4
 * nodes: no remote command is left, no ssh client here, and no file in
 * the destination.
 */
async function killedTransferLeavesNothing(
  rig: LoopbackRig,
  direction: "push" | "pull",
  extra: Partial<SshNodeOptions>,
  token: string,
): Promise<void> {
  const dest = `/tmp/fiwi_kill_${direction}_${rig.port}_${token}`;
  // The node is this machine: a pull reads the same file from every node.
  const source = `${rig.dir}/payload-${token}.bin`;
  await using file = await Deno.create(source);
  await file.truncate(256 * 1024 * 1024); // sparse: quick to make and read
  await Deno.chmod(source, 0o644);
  const specFile = `${rig.dir}/${direction}-${token}.json`;
  await Deno.writeTextFile(
    specFile,
    JSON.stringify(eightNodes(rig, extra).slice(0, 4)),
  );
  await killAfterReady(
    TRANSFER_CHILD,
    [specFile, direction, source, dest],
    20_000,
  );
  // The remote commands name the destination (a push) or the source.
  const named = direction === "push" ? dest : source;
  const remote = await settlesToZero(() => countCarrying(named, rig), 5000);
  const clients = await settlesToZero(() => countCarrying(named), 5000);
  assertEquals([remote, clients], [0, 0], "commands or clients left behind");
  // A push's receiver removes what it got when its input ends early; a
  // SIGKILLed program cannot remove its own hidden temp files of a pull.
  const left = (await entries(dest, direction === "pull")).filter((name) =>
    direction === "push" || !name.startsWith(".fiwi-tmp-")
  );
  assertEquals(left, [], "a file left in the destination");
  await Deno.remove(dest, { recursive: true });
}

Deno.test({
  name:
    "lifeline: a program SIGKILLed mid-push or mid-pull leaves no command, no client and no file",
  ignore,
}, async (t) => {
  await using rig = await startLoopbackRig();
  const relay = `${rig.user}@${rig.hosts[0]}:${rig.port}`;
  const cases: [string, Partial<SshNodeOptions>, boolean][] = [
    ["with a ControlMaster", {}, true],
    ["without a ControlMaster", { controlMaster: false }, true],
    ["through a nested relay", { relay }, rig.relayReady],
    ["with the local transport", { transport: "local" }, true],
  ];
  let token = 3711;
  for (const direction of ["push", "pull"] as const) {
    for (const [what, extra, ready] of cases) {
      const mine = String(token++);
      await t.step({
        name: `${direction}, ${what}`,
        ignore: !ready,
        fn: () => killedTransferLeavesNothing(rig, direction, extra, mine),
      });
    }
  }
  await controlPool.closeAll();
});

Deno.test({
  name:
    "lifeline: killing the sshd process that serves a session kills its command",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  await using node = rig.node({ controlMaster: false });
  const m = marker();
  const run = node.rexec(`echo up; sleep ${m}`, { retry: false });
  // The sshd session process is the parent of the wrapper shell, which is
  // the parent of sleep: found from the node's side, not through fiwi.
  const found = await rig.sh(
    `for i in $(seq 50); do p=$(pgrep -x -f -u "$(id -u)" 'sleep ${
      m.replace(".", "\\.")
    }') && break; sleep 0.1; done; ` +
      `w=$(ps -o ppid= -p "$p"); ps -o ppid= -p $w`,
  );
  const sshd = Number(found.stdout.trim());
  assert(sshd > 1, `no sshd session process found: ${found.stderr}`);
  Deno.kill(sshd, "SIGKILL");
  const result = await run;
  assert(!result.success);
  assertEquals(
    await settlesToZero(() => countCarrying(m, rig)),
    0,
  );
});

Deno.test({
  name: "lifeline: 150 aborts 0-50 ms after rexec() leave no remote command",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  await using node = rig.node();
  await node.rexec("true"); // a warm master, as in a long fiwi program
  const m = marker();
  for (let i = 0; i < 150; i++) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.random() * 50);
    const r = await node.rexec(`sleep ${m}`, {
      signal: ac.signal,
      retry: false,
    });
    clearTimeout(timer);
    assert(r.aborted, `run ${i} ended without the abort: ${r.error}`);
  }
  assertEquals(
    await settlesToZero(() => countCarrying(m, rig)),
    0,
  );
  assertEquals(await countCarrying(m), 0, "the ssh clients are gone");
});

Deno.test({
  name: "lifeline: 30 failFast fan-outs on a cold master leave nothing running",
  ignore,
}, async () => {
  await using rig = await startLoopbackRig();
  // Seven nodes over ssh and one local one that fails after 50 ms (it alone
  // has no SSH_CONNECTION), while the others may still be connecting.
  const nodes = [
    rig.node({ name: "failing", transport: "local" }),
    ...Array.from(
      { length: 7 },
      (_, i) => rig.node({ index: i % 2, name: `n${i}` }),
    ),
  ];
  const m = marker();
  const cmd = `[ -z "$SSH_CONNECTION" ] && { sleep 0.05; exit 1; }; sleep ${m}`;
  for (let i = 0; i < 30; i++) {
    await controlPool.closeAll(); // cold: every client races for a new master
    const results = await runAll(nodes, cmd, {
      failFast: true,
      retry: false,
      cmdTimeout: 20_000,
    });
    assert(results.some((r) => r.aborted), "failFast stopped no sibling");
  }
  assertEquals(
    await settlesToZero(() => countCarrying(m, rig)),
    0,
  );
  await Promise.all(nodes.map((n) => n.close()));
});
