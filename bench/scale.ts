/**
 * A thousand nodes, flat and through gateways: `echo ok` on every node of
 * a loopback rig (1,000 node addresses on 127.1.0.0/16, 16 a sshd, and 4
 * gateway addresses, all logging in as an unprivileged user whose shell is
 * /bin/sh), at one fanout, with
 *
 * - `pdsh -R ssh -f F`;
 * - `clush -f F` flat, and in tree mode through the 4 gateways (a topology
 *   file; each gateway runs ClusterShell's gateway module over ssh);
 * - `fiwi run` flat cold (a fresh control dir), flat warm (the same again
 *   within controlPersist), then `fiwi close`;
 * - `ssh mux`, between warm and close: one plain `ssh` per node through
 *   those masters (`xargs -P F`), the floor of a warm run;
 * - `fiwi run` through the gateways (`gateway:` in the rig file), skipped
 *   with the reason when the rig file is refused;
 *
 * each `--runs` times, and a push of `--push-mb` MB through fiwi flat and
 * tree (tree skipped with it), counting what the controller uploaded as
 * the TCP payload its connections delivered (`ss -ti` bytes_received of
 * the server sockets: the nodes' flat, the gateways' tree).
 *
 * Per run: wall time, the controller's CPU seconds (the tool and all its
 * descendants, detached ssh masters included), its peak process and ssh
 * count and peak RSS summed over them (/proc, about every 100 ms), nodes
 * that printed "ok" and false failures (every node is up, so every other
 * node is one). Prints Markdown tables with ratios; `--json FILE` writes
 * every run.
 *
 *   deno task bench:scale [--nodes 1000] [--gateways 4] [--fanout 64]
 *     [--runs 3] [--push-mb 100] [--push-nodes N] [--only LIST]
 *     [--limit SECONDS] [--json FILE]
 *
 * Runs as root (the node user is created as in tests/_loopback.ts) or as
 * any user (then nodes log in as that user). Reading other processes'
 * /proc takes `-A` in Deno. Every sshd, master and temp file goes on exit,
 * Ctrl-C and SIGTERM included.
 *
 * @module
 */

import { parseArgs } from "jsr:@std/cli@^1/parse-args";
import { installed, intFlag } from "./_measure.ts";
import {
  closeFiwi,
  fiwiTool,
  marksOf,
  openSession,
  openSessions,
  pushOnce,
  treeRefusal,
  writeRandomFile,
} from "./_scale_fiwi.ts";
import {
  type Contender,
  CONTENDERS,
  type PushResult,
  type Row,
  summarize,
  tables,
} from "./_scale_report.ts";
import { type ScaleRig, startScaleRig } from "./_scale_rig.ts";
import {
  clush,
  clushTopology,
  failureKinds,
  firstLines,
  fiwiRigFile,
  measureTool,
  okNodes,
  pdsh,
  sshMux,
  stopTools,
  type Tool,
  type ToolRun,
} from "./_scale_tools.ts";
import { SSHD } from "../tests/_loopback.ts";

const CMD = "echo ok";

const USAGE =
  `deno task bench:scale [--nodes 1000] [--gateways 4] [--fanout 64] [--runs 3]
  [--push-mb 100] [--push-nodes N] [--only pdsh,clush,"clush tree",fiwi,push]
  [--limit SECONDS] [--json FILE]`;

const args = parseArgs(Deno.args, {
  string: [
    "nodes",
    "gateways",
    "fanout",
    "runs",
    "push-mb",
    "push-nodes",
    "only",
    "limit",
    "json",
  ],
  boolean: ["help"],
  default: {
    nodes: "1000",
    gateways: "4",
    fanout: "64",
    runs: "3",
    "push-mb": "100",
    limit: "900",
  },
  unknown: (flag: string) => {
    if (!flag.startsWith("-")) return true;
    console.error(`Unknown option "${flag}"\n${USAGE}`);
    Deno.exit(2);
  },
});
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const NODES = intFlag("nodes", args.nodes, 2, 16_000);
const GATEWAYS = intFlag("gateways", args.gateways, 1, 16);
const FANOUT = intFlag("fanout", args.fanout, 1, 4096);
const RUNS = intFlag("runs", args.runs, 1, 100);
const PUSH_MB = intFlag("push-mb", args["push-mb"], 0, 10_000);
const PUSH_NODES = intFlag(
  "push-nodes",
  args["push-nodes"] ?? String(NODES),
  1,
  NODES,
);
const LIMIT_S = intFlag("limit", args.limit, 10, 86_400);
const ONLY = new Set<string>(
  (args.only ?? "pdsh,clush,clush tree,fiwi,push").split(",").map((s: string) =>
    s.trim()
  ),
);
for (const name of ONLY) {
  if (!([...CONTENDERS, "fiwi", "push"] as string[]).includes(name)) {
    console.error(
      `Unknown contender "${name}" in --only: give ${
        [...CONTENDERS, "fiwi", "push"].map((c) => `"${c}"`).join(", ")
      }`,
    );
    Deno.exit(2);
  }
}
// "ssh mux" goes through a warm fiwi's masters: it comes with fiwi.
const wants = (c: Contender | "push") =>
  ONLY.has(c) ||
  ((c.startsWith("fiwi") || c.startsWith("ssh mux")) && ONLY.has("fiwi"));

/** The floor contenders of a warm run, and whether each keeps the lifeline. */
const FLOORS = [["ssh mux", false], ["ssh mux + lifeline", true]] as const;

/** What each contender could not run for. */
const skipped = new Map<Contender | "push", string>();
const rows: Row[] = [];
let pushResult: PushResult | undefined;

// Ctrl-C / TERM: stop the tool in flight; the finally blocks clean up.
let interrupted = false;
const onSignal = () => {
  if (interrupted) return;
  interrupted = true;
  console.error("interrupted: stopping the tool in flight, then cleaning up");
  stopTools();
};
for (const s of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(s, onSignal);
}

async function load1(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]);
}

function row(
  contender: Contender,
  run: number,
  r: ToolRun,
  ok: number,
  load: number,
): Row {
  const fail = NODES - ok;
  const line =
    `${contender} run ${run}: ${r.wallS.toFixed(1)} s, ${ok}/${NODES} ok` +
    (fail ? `, ${fail} failed (exit ${r.code})` : "");
  console.error(line);
  if (fail) {
    for (const m of failureKinds(r.stderr)) console.error(`    ${m}`);
  }
  return {
    contender,
    run,
    wallS: r.wallS,
    cpuS: r.cpuS,
    peakProcs: r.peakProcs,
    peakSsh: r.peakSsh,
    peakRssMb: r.peakRssMb,
    nodesOk: ok,
    falseFailures: fail,
    code: r.code,
    load1: load,
    messages: fail ? failureKinds(r.stderr) : [],
    stderrHead: fail ? firstLines(r.stderr) : [],
  };
}

/** Measure `tool` as contender `name`, run `run`; nodes named `names`. */
async function contend(
  name: Contender,
  run: number,
  tool: Tool,
  token: string,
  names: string[],
  alsoTokens: string[] = [],
): Promise<Row> {
  const load = await load1();
  const marks = tool.env.FIWI_CONTROL_DIR ? marksOf(tool.env) : [];
  const r = await measureTool(tool, token, LIMIT_S, alsoTokens, marks);
  const out = row(name, run, r, okNodes(r.stdout, names).size, load);
  // A run cut short by Ctrl-C measured nothing whole.
  if (!interrupted) rows.push(out);
  return out;
}

async function runRounds(rig: ScaleRig, files: Files): Promise<void> {
  const ips = rig.nodes;
  const names = rig.nodes.map((_, i) => `n${i + 1}`);
  const sel = ["-w", `n[1-${NODES}]`, "-f", String(FANOUT)];
  for (let run = 1; run <= RUNS && !interrupted; run++) {
    if (wants("pdsh") && !skipped.has("pdsh")) {
      await contend("pdsh", run, pdsh(rig, FANOUT, CMD), `pdsh-${run}`, ips);
    }
    if (interrupted) break;
    if (wants("clush") && !skipped.has("clush")) {
      await contend("clush", run, clush(rig, FANOUT, CMD), `clush-${run}`, ips);
    }
    if (interrupted) break;
    if (wants("clush tree") && !skipped.has("clush tree")) {
      await contend(
        "clush tree",
        run,
        clush(rig, FANOUT, CMD, files.topology),
        `clushtree-${run}`,
        ips,
      );
    }
    if (interrupted) break;
    if (wants("fiwi cold")) {
      const session = openSession(rig, `flat-${run}`, files.flat);
      const tool = await fiwiTool(
        ["run", "--rig", files.flat, ...sel, CMD],
        session.env,
      );
      const cold = await contend("fiwi cold", run, tool, session.token, names);
      if (!interrupted && wants("fiwi warm")) {
        await contend("fiwi warm", run, tool, `${session.token}-warm`, names, [
          session.token,
        ]);
      }
      // The floors, over the same warm masters: bare, and with the lifeline.
      for (const [name, lifeline] of FLOORS) {
        if (interrupted || !wants(name)) continue;
        const dir = session.env.FIWI_CONTROL_DIR;
        const floor = sshMux(rig, FANOUT, dir, CMD, { lifeline });
        const token = `${session.token}-${lifeline ? "muxl" : "mux"}`;
        await contend(name, run, floor, token, ips, [session.token]);
      }
      report(Object.assign(cold, await closeFiwi(session)));
    }
    if (interrupted) break;
    if (wants("fiwi tree") && !skipped.has("fiwi tree")) {
      const session = openSession(rig, `tree-${run}`, files.tree);
      const tool = await fiwiTool(
        ["run", "--rig", files.tree, ...sel, CMD],
        session.env,
      );
      const tree = await contend("fiwi tree", run, tool, session.token, names);
      report(Object.assign(tree, await closeFiwi(session)));
    }
  }
}

function report(r: Row): void {
  console.error(
    `  fiwi close: ${r.closeS?.toFixed(1)} s; left running after it: ${
      r.leftovers?.length ?? 0
    }`,
  );
  for (const l of r.leftovers?.slice(0, 5) ?? []) console.error(`    ${l}`);
}

/**
 * Push a file of PUSH_MB MB to PUSH_NODES nodes with fiwi flat, then
 * through the gateways (skipped with fiwi tree).
 */
async function runPush(rig: ScaleRig, files: Files): Promise<void> {
  const file = `${rig.dir}/push.bin`;
  await writeRandomFile(file, PUSH_MB);
  const result: PushResult = { mb: PUSH_MB, nodes: PUSH_NODES };
  for (const mode of ["flat", "tree"] as const) {
    if (interrupted) break;
    if (mode === "tree" && skipped.has("fiwi tree")) {
      result.tree = { skipped: skipped.get("fiwi tree")! };
      continue;
    }
    const p = await pushOnce(rig, {
      mode,
      rigFile: mode === "flat" ? files.flat : files.tree,
      file,
      mb: PUSH_MB,
      nodes: PUSH_NODES,
      fanout: FANOUT,
      limitS: LIMIT_S,
    });
    result[mode] = p;
    console.error(
      `push ${mode}: ${
        p.wallS.toFixed(1)
      } s, exit ${p.code}, controller uploaded ${
        p.uploadedMb.toFixed(1)
      } MB = ${p.copies.toFixed(2)} copies`,
    );
    for (const m of p.messages) console.error(`    ${m}`);
  }
  pushResult = result;
}

/** The files the contenders read. */
interface Files {
  flat: string;
  tree: string;
  topology: string;
}

async function prepare(rig: ScaleRig): Promise<Files> {
  const files = {
    flat: `${rig.dir}/flat.yaml`,
    tree: `${rig.dir}/tree.yaml`,
    topology: `${rig.dir}/topology.conf`,
  };
  await Deno.writeTextFile(files.flat, fiwiRigFile(rig, false));
  await Deno.writeTextFile(files.tree, fiwiRigFile(rig, true));
  await Deno.writeTextFile(
    files.topology,
    clushTopology(rig, Deno.hostname().split(".")[0]),
  );
  for (const tool of ["pdsh", "clush"] as const) {
    if (!(await installed(tool))) skipped.set(tool, `${tool} is not installed`);
  }
  if (skipped.has("clush")) skipped.set("clush tree", "clush is not installed");
  const refusal = await treeRefusal(files.tree, {
    XDG_STATE_HOME: `${rig.dir}/state`,
  });
  if (refusal !== null) {
    skipped.set("fiwi tree", `fiwi refused the tree rig file: ${refusal}`);
  }
  for (const [c, why] of skipped) console.error(`skipping ${c}: ${why}`);
  return files;
}

// ---- main -----------------------------------------------------------------

{
  const missing: string[] = [];
  if (!(await Deno.stat(SSHD).then(() => true, () => false))) {
    missing.push(`sshd (no ${SSHD}: apt-get install openssh-server)`);
  }
  for (const tool of ["/usr/bin/time", "timeout", "ssh", "ssh-keygen"]) {
    if (!(await installed(tool))) missing.push(tool);
  }
  if (missing.length) {
    console.error(
      `bench:scale cannot run here; missing: ${missing.join("; ")}`,
    );
    Deno.exit(1);
  }
}

const loads = [await load1()];
const started = new Date().toISOString();
try {
  await using rig = await startScaleRig({ nodes: NODES, gateways: GATEWAYS });
  try {
    console.error(
      `rig: ${NODES} nodes and ${GATEWAYS} gateways on port ${rig.port}, ${
        Math.ceil(NODES / 16) + 1
      } sshd, user ${rig.user}`,
    );
    const files = await prepare(rig);
    await runRounds(rig, files);
    if (!interrupted && wants("push") && PUSH_MB > 0 && !skipped.has("push")) {
      await runPush(rig, files);
    }
  } finally {
    // Masters of a run cut short, then anything still carrying a token.
    for (const s of [...openSessions]) {
      const { leftovers } = await closeFiwi(s).catch(() => ({ leftovers: [] }));
      if (leftovers.length) {
        console.error(
          `${s.token}: ${leftovers.length} processes killed after close`,
        );
      }
    }
  }
} finally {
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    Deno.removeSignalListener(s, onSignal);
  }
}
loads.push(await load1());
const sum = summarize(rows);
console.log(tables({
  nodes: NODES,
  gateways: GATEWAYS,
  fanout: FANOUT,
  cmd: CMD,
  loads,
  rows,
  summary: sum,
  skipped,
  push: pushResult,
}));
if (args.json) {
  await Deno.writeTextFile(
    args.json,
    JSON.stringify(
      {
        started,
        nodes: NODES,
        gateways: GATEWAYS,
        fanout: FANOUT,
        runs: RUNS,
        cpus: navigator.hardwareConcurrency,
        loads,
        skipped: Object.fromEntries(skipped),
        summary: Object.fromEntries(sum),
        rows,
        push: pushResult ?? null,
      },
      null,
      2,
    ) + "\n",
  );
}
if (interrupted) Deno.exit(130);
