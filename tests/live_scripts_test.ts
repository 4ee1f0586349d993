/**
 * The scripts as a lab engineer runs them on a node: run, poll (and its
 * Ctrl-C), consoles, check, discover and close, each a `deno run` with its
 * task's permissions on a rig file of two nodes (`n1`, `n2`; the same
 * address twice unless a second is given). Unlike tests/scripts_test.ts, it
 * needs nothing but the node, so it runs on the loopback rig and, with
 * `deno task test:live`, on a live one. Every wait is bounded.
 *
 * @module
 */

import { assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  countCarrying,
  type LoopbackRig,
  marker,
  skipReason,
  startLoopbackRig,
  within,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TASKS: Record<string, string> = JSON.parse(
  Deno.readTextFileSync(`${ROOT}deno.json`),
).tasks;
/** Longest a script may run before the case fails. */
const SCRIPT_LIMIT = 30_000;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** A script started the way its `deno task` starts it. */
function script(name: string, args: string[], env: Record<string, string>) {
  const m = /^deno run (.+) (scripts\/[a-z_]+\.ts)$/.exec(TASKS[name]);
  if (!m) throw new Error(`task "${name}" is not "deno run <flags> <script>"`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      ...m[1].split(" "),
      ROOT + m[2],
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(SCRIPT_LIMIT),
  }).spawn();
  let stdout = "";
  const seen: { re: RegExp; found: () => void }[] = [];
  const read = async (stream: ReadableStream<Uint8Array>, out: boolean) => {
    let text = "";
    for await (const s of stream.pipeThrough(new TextDecoderStream())) {
      text += s;
      if (!out) continue;
      stdout = text;
      for (const w of seen.filter((w) => w.re.test(stdout))) w.found();
    }
    return text;
  };
  const done: Promise<Ran> = Promise.all([
    read(child.stdout, true),
    read(child.stderr, false),
    child.status,
  ]).then(([stdout, stderr, status]) => ({
    code: status.code,
    stdout,
    stderr,
  }));
  return {
    child,
    done,
    /** Resolves once stdout matches `re`; fails after 20 s. */
    saw(re: RegExp): Promise<void> {
      const found = new Promise<void>((r) => seen.push({ re, found: r }));
      if (re.test(stdout)) return Promise.resolve();
      return within(20_000, found, `${re} in the output of ${name}`);
    },
  };
}

/** The per-node records of `--json` output: NDJSON or one JSON array. */
function records(stdout: string): Record<string, unknown>[] {
  const text = stdout.trim();
  const all = text.startsWith("[")
    ? JSON.parse(text)
    : text.split("\n").map((l) => JSON.parse(l));
  return (all as Record<string, unknown>[]).filter((r) => "node" in r);
}

/** A script run to its end. */
function runScript(
  name: string,
  args: string[],
  env: Record<string, string>,
): Promise<Ran> {
  return script(name, args, env).done;
}

/**
 * Two nodes on the rig's addresses; n1 has a console that just sleeps,
 * `sleep <consoleMarker>`.
 */
function rigYaml(rig: LoopbackRig, consoleMarker: string): string {
  return [
    "default: bench",
    "defaults:",
    `  user: ${rig.user}`,
    ...(rig.port === undefined ? [] : [`  port: ${rig.port}`]),
    ...(rig.sshConfig ? [`  sshConfig: ${rig.sshConfig}`] : []),
    "  connectTimeout: 10s",
    "rigs:",
    "  bench:",
    "    nodes:",
    "      n1:",
    `        host: ${rig.hosts[0]}`,
    "        console: true",
    `        consoleCommand: echo console-up; exec sleep ${consoleMarker}`,
    `      n2: ${rig.hosts[1] ?? rig.hosts[0]}`,
    "",
  ].join("\n");
}

Deno.test({
  name: "scripts on the rig node",
  ignore: skipReason() !== null,
  async fn(t) {
    await using rig = await startLoopbackRig();
    const rigFile = `${rig.dir}/bench.yaml`;
    const consoleMarker = marker();
    await Deno.writeTextFile(rigFile, rigYaml(rig, consoleMarker));
    // The rig's own socket dir: disposing the rig ends the masters the
    // scripts leave warm.
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm` };
    const rigArgs = ["--rig", rigFile, "--no-log"];

    await t.step("run: one line per node, an ok summary", async () => {
      const r = await runScript("run", [...rigArgs, "echo hello"], env);
      assertEquals(r.code, 0, r.stderr);
      // Lines come as nodes answer: in any order.
      assertEquals(r.stdout.split("\n").filter((l) => l).sort(), [
        "n1: hello",
        "n2: hello",
      ]);
      assertMatch(r.stderr, /^ok: n\[1-2\] \(exit 0, /);
    });

    await t.step(
      "run --json: a failing command exits 1 with its code and output",
      async () => {
        const r = await runScript("run", [
          ...rigArgs,
          "--nodes",
          "n1",
          "--json",
          "echo out; echo err >&2; exit 3",
        ], env);
        assertEquals(r.code, 1, r.stderr);
        const [run, { summary }] = r.stdout.trim().split("\n").map((l) =>
          JSON.parse(l)
        );
        assertEquals(
          [run.node, run.code, run.success, run.stdout, run.stderr],
          ["n1", 3, false, "out\n", "err\n"],
        );
        assertEquals([summary.nodes, summary.ok, summary.failed], [1, 0, 1]);
      },
    );

    await t.step(
      "poll: uname -r every 1 s, 3 times on every node",
      async () => {
        const r = await runScript("poll", [
          ...rigArgs,
          "-i",
          "1s",
          "-n",
          "3",
          "--json",
          "uname -r",
        ], env);
        assertEquals(r.code, 0, r.stderr);
        const records = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
        const { summary } = records.pop();
        assertEquals(records.map((o) => [o.tick, o.node, o.code]), [
          [1, "n1", 0],
          [1, "n2", 0],
          [2, "n1", 0],
          [2, "n2", 0],
          [3, "n1", 0],
          [3, "n2", 0],
        ]);
        assertEquals([summary.ticks, summary.runs, summary.ok], [3, 6, 6]);
      },
    );

    await t.step(
      "poll: Ctrl-C stops the command on every node and prints the summary",
      async () => {
        const m = marker();
        const p = script(
          "poll",
          [...rigArgs, "-i", "10s", `echo started; exec sleep ${m}`],
          env,
        );
        try {
          // n2's lines are held until n1, first in the set, ends.
          await p.saw(/n1: started/);
        } finally {
          p.child.kill("SIGINT");
        }
        const r = await p.done;
        assertEquals(r.code, 130, r.stderr);
        assertMatch(
          r.stderr,
          /Interrupted after 1 tick in [\d.]+ s, 0\/2 runs/,
        );
        // The script stopped its clients; each node ends the rest within
        // the lifeline's bound.
        assertEquals(
          await settlesToZero(() => countCarrying(m, rig)),
          0,
          "remote left",
        );
        assertEquals(await countCarrying(m), 0, "client left");
      },
    );

    await t.step(
      "consoles: [node] lines from the console node; Ctrl-C closes it",
      async () => {
        const p = script("consoles", rigArgs, env);
        try {
          await p.saw(/ \[n1\] console-up$/m);
        } finally {
          p.child.kill("SIGINT");
        }
        const r = await p.done;
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stderr, /Consoles closed: 1\/1 ok/);
        assertEquals(
          await settlesToZero(() => countCarrying(consoleMarker, rig)),
          0,
          "console left",
        );
      },
    );

    await t.step(
      "check: the node is reachable, its host key known, the login good",
      async () => {
        const r = await runScript("check", [...rigArgs, "--json"], env);
        assertEquals(r.code, 0, r.stderr);
        // Streamed as nodes finish: in any order.
        const checks = records(r.stdout)
          .sort((a, b) => String(a.node).localeCompare(String(b.node)));
        assertEquals(
          checks.map((c) => [c.node, c.ok, c.reachable, c.hostKey, c.auth]),
          [["n1", true, true, true, true], ["n2", true, true, true, true]],
        );
      },
    );

    await t.step(
      "discover: the sh probe reports the node with nothing installed",
      async () => {
        const r = await runScript("discover", [
          ...rigArgs,
          "--nodes",
          "n1",
          "--json",
        ], env);
        assertEquals(r.code, 0, r.stderr);
        const [inventory] = records(r.stdout);
        assertEquals([inventory.node, inventory.ok], ["n1", true]);
      },
    );
  },
});
