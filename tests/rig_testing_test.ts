/**
 * rigTest(): users' own `deno test` files against their rig. The README's
 * example (examples/rig_smoke.ts) and the cases in tests/fixtures/rig_tests.ts
 * run in a `deno test` subprocess, once with no rig and once with FIWI_RIG
 * naming a rig file for the loopback rig (or the live node).
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  countCarrying,
  countLocal,
  type LoopbackRig,
  marker,
  skipReason,
  startLoopbackRig,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const EXAMPLE = `${ROOT}examples/rig_smoke.ts`;
const FIXTURE = `${ROOT}tests/fixtures/rig_tests.ts`;
/** The permissions the README gives the example. */
const PERMISSIONS = [
  "--allow-run=ssh,sh,setsid",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys=uid",
];

interface Ran {
  code: number;
  output: string;
}

/** `deno test` of `file` in `cwd` with only `env` (and PATH, HOME). */
async function denoTest(
  file: string,
  cwd: string,
  env: Record<string, string>,
  extra: string[] = [],
): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      `--config=${ROOT}deno.json`,
      "--no-check",
      ...PERMISSIONS,
      ...extra,
      file,
    ],
    cwd,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    output: d.decode(out.stdout) + d.decode(out.stderr),
  };
}

/**
 * Resolves once no process of the node user carries `token`; fails after
 * the 2 s the lifeline is allowed, plus a probe.
 */
async function goneFromNode(rig: LoopbackRig, token: string): Promise<void> {
  assertEquals(
    await settlesToZero(() => countCarrying(token, rig)),
    0,
    `"sleep ${token}" still runs`,
  );
}

/** A rig file with two nodes, n1 and n2, on the rig's addresses. */
function rigYaml(rig: LoopbackRig): string {
  const defaults = [
    `user: ${rig.user}`,
    ...(rig.port === undefined ? [] : [`port: ${rig.port}`]),
    ...(rig.sshConfig ? [`sshConfig: ${rig.sshConfig}`] : []),
    "connectTimeout: 10s",
  ];
  return [
    "default: bench",
    "rigs:",
    "  bench:",
    "    defaults:",
    ...defaults.map((d) => `      ${d}`),
    "    nodes:",
    `      n1: ${rig.hosts[0]}`,
    `      n2: ${rig.hosts[1] ?? rig.hosts[0]}`,
    "",
  ].join("\n");
}

Deno.test("README's rig test example is examples/rig_smoke.ts, word for word", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const example = await Deno.readTextFile(EXAMPLE);
  assert(
    readme.includes("```ts ignore\n" + example + "```\n"),
    "README.md does not hold examples/rig_smoke.ts in a ```ts ignore block",
  );
});

Deno.test("rigTest() with no rig given skips every test and says why once", async () => {
  const empty = await Deno.makeTempDir({ prefix: "fiwi_norig_" });
  try {
    const r = await denoTest(EXAMPLE, empty, {});
    assertEquals(r.code, 0, r.output);
    assertMatch(r.output, /ok \| 0 passed \| 0 failed \| 2 ignored/);
    assertEquals(
      r.output.match(/rig tests are skipped: No rig given: set FIWI_RIG/g)
        ?.length,
      1,
      r.output,
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test({
  name: "rigTest() on the rig the environment names",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    const rigFile = `${rig.dir}/bench.yaml`;
    await Deno.writeTextFile(rigFile, rigYaml(rig));
    const controlDir = `${rig.dir}/cm_rigtest`;
    const env = { FIWI_RIG: rigFile, FIWI_CONTROL_DIR: controlDir };

    await t.step(
      "the README example passes and leaves no ControlMaster running",
      async () => {
        const r = await denoTest(EXAMPLE, rig.dir, env);
        assertEquals(r.code, 0, r.output);
        assertMatch(r.output, /ok \| 2 passed \| 0 failed/);
        assertEquals(await countLocal(`${controlDir}/`), 0);
      },
    );

    await t.step("FIWI_NODES narrows the rig to its pattern", async () => {
      const filter = ["--filter", "names the selected nodes"];
      const all = await denoTest(FIXTURE, rig.dir, env, filter);
      assertMatch(all.output, /^nodes: n1,n2$/m);
      const one = await denoTest(FIXTURE, rig.dir, {
        ...env,
        FIWI_NODES: "n2",
      }, filter);
      assertEquals(one.code, 0, one.output);
      assertMatch(one.output, /^nodes: n2$/m);
    });

    await t.step(
      "FIWI_REMOTE_IP (and _IP2) without a rig file: nodes remote1 and remote2",
      async () => {
        const remote = {
          FIWI_REMOTE_IP: rig.hosts[0],
          FIWI_REMOTE_IP2: rig.hosts[1] ?? rig.hosts[0],
          FIWI_REMOTE_USER: rig.user,
          ...(rig.port === undefined
            ? {}
            : { FIWI_REMOTE_PORT: String(rig.port) }),
          ...(rig.sshConfig ? { FIWI_SSH_CONFIG: rig.sshConfig } : {}),
          FIWI_CONTROL_DIR: controlDir,
        };
        const filter = ["--filter", "names the selected nodes"];
        const r = await denoTest(FIXTURE, rig.dir, remote, filter);
        assertEquals(r.code, 0, r.output);
        assertMatch(r.output, /^nodes: remote1,remote2$/m);
        const bad = await denoTest(FIXTURE, rig.dir, {
          ...remote,
          FIWI_REMOTE_PORT: "22x",
        }, filter);
        assertEquals(bad.code, 1, bad.output);
        assertMatch(bad.output, /Invalid FIWI_REMOTE_PORT "22x"/);
      },
    );

    await t.step(
      "a test over its time limit fails and leaves nothing running on the node",
      async () => {
        const m = marker();
        const r = await denoTest(FIXTURE, rig.dir, {
          ...env,
          FIWI_TEST_MARKER: m,
        }, ["--filter", "runs over its limit"]);
        assertEquals(r.code, 1, r.output);
        assertMatch(r.output, /ran over its 2000 ms limit/);
        await goneFromNode(rig, m);
        assertEquals(await countLocal(`${controlDir}/`), 0);
      },
    );

    await t.step(
      "at the time limit the signal aborts the runs that were given it",
      async () => {
        const m = marker();
        const r = await denoTest(FIXTURE, rig.dir, {
          ...env,
          FIWI_TEST_MARKER: m,
        }, ["--filter", "passes the signal on"]);
        assertEquals(r.code, 1, r.output);
        assertMatch(r.output, /^aborted: true$/m);
        await goneFromNode(rig, m);
      },
    );
  },
});
