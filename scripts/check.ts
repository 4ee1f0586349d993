/**
 * `fiwi check`: connectivity and auth diagnosis for every node. Each
 * node gets a fresh connection (no ControlMaster, so a warm master cannot
 * hide a broken login) that runs one harmless command; the outcome is split
 * into reachable / host key / auth / command, with the time taken and a
 * hint for the first step that failed. Reading ssh's error output (what
 * failed, where, and what to do) is the library's `readSshError`; this
 * subcommand runs the probe, and formats and prints.
 *
 * @module
 */

import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  HostKeyError,
  mapPool,
  readSshError,
  type RunResult,
  type SshNode,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
} from "./_cli.ts";
import { colors, humanMs, type Output } from "./_output.ts";

const SPEC: CliSpec = {
  name: "check",
  summary:
    "Diagnose every node: reachable, host key accepted, login works, a command runs.",
  options: [
    {
      name: "timeout",
      short: "t",
      arg: "DURATION",
      help: "connect timeout per node (default: the node's, 15s)",
    },
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "nodes checked at once (default 64)",
    },
  ],
  examples: [
    "fiwi check",
    "fiwi check --rig lab.yaml --nodes @duts --timeout 5s",
    "fiwi check --json | jq 'select(.ok == false)'",
  ],
};

const PROBE = "echo fiwi-check-ok";
const PROBE_OUT = "fiwi-check-ok\n";
/** Wall-clock limit of the probe command once logged in. */
const COMMAND_TIMEOUT = 10_000;

/** One step's verdict: passed, failed, or not known (not reached / n/a). */
type Step = boolean | null;

/** What `check` reports for one node. */
interface NodeCheck {
  node: string;
  target: string;
  transport: string;
  ok: boolean;
  reachable: Step;
  hostKey: Step;
  auth: Step;
  command: Step;
  ms: number;
  /** Which step failed: "config", "unreachable", "timeout", "host-key", "auth", "command". */
  problem: string | null;
  /** Where it failed: "relay" (the hop to the relay) or "node"; null when ok. */
  hop: "relay" | "node" | null;
  detail: string | null;
  hint: string | null;
}

function target(node: SshNode): string {
  if (node.transport === "local") return "(this machine)";
  const port = node.port !== undefined ? `:${node.port}` : "";
  const via = node.relay ? ` via ${node.relay}` : "";
  const user = node.user === null ? "" : `${node.user}@`;
  return `${user}${node.host}${port}${via}`;
}

/** The steps a failed login leaves passed (true), failed (false) or not known. */
const STEPS = {
  "host-key": { reachable: true, hostKey: false, auth: null },
  auth: { reachable: true, hostKey: true, auth: false },
  unreachable: { reachable: false, hostKey: null, auth: null },
} as const;

function verdict(node: SshNode, r: RunResult): NodeCheck {
  const base = {
    node: node.name,
    target: target(node),
    transport: node.transport,
    ms: Math.round(r.durationMs),
  };
  const remote = node.transport === "local" ? null : true;
  if (r.success && r.stdout === PROBE_OUT) {
    return {
      ...base,
      ok: true,
      reachable: remote,
      hostKey: remote,
      auth: remote,
      command: true,
      problem: null,
      hop: null,
      detail: null,
      hint: null,
    };
  }
  if (r.started) {
    const why = r.timedOut
      ? `did not finish within ${humanMs(COMMAND_TIMEOUT)}`
      : `exited with ${r.signal ?? `code ${r.code}`}`;
    const stderr = r.stderr.trim().split("\n").at(-1) ?? "";
    return {
      ...base,
      ok: false,
      reachable: remote,
      hostKey: remote,
      auth: remote,
      command: false,
      problem: "command",
      hop: "node",
      detail: `"${PROBE}" ${why}${stderr ? `: ${stderr}` : ""}`,
      hint:
        "The login works but the shell does not run commands cleanly: check the remote shell and its rc files (.bashrc, .profile)",
    };
  }
  const detail = r.error?.message ?? null;
  // ssh's own lines first: the telling line and the address come from them.
  const ssh = readSshError(`${r.stderr}\n${detail ?? ""}`, node);
  const failed = { ...base, ok: false, command: null, hop: ssh.hop };
  if (r.timedOut === "connect") {
    return {
      ...failed,
      ...STEPS.unreachable,
      problem: "timeout",
      detail,
      hint: `No login within ${
        humanMs(node.connectTimeout)
      }: the node may be down, unreachable, or stuck before the shell starts`,
    };
  }
  // Any other error (not ssh's) is reported as it is, without a hint.
  const fromSsh = !r.error || r.error instanceof HostKeyError ||
    r.error instanceof AuthenticationError ||
    r.error instanceof ConnectionError;
  const kind = fromSsh ? ssh.kind : "unreachable";
  return {
    ...failed,
    ...STEPS[kind],
    problem: kind,
    detail: detail ?? (r.stderr.trim() || `exit ${r.code}`),
    hint: fromSsh ? ssh.hint : null,
  };
}

async function checkNode(
  node: SshNode,
  connectTimeout?: number,
): Promise<NodeCheck> {
  // A fresh connection each time: a warm ControlMaster would skip the login.
  const probe = node.with({
    controlMaster: false,
    silent: true,
    ...(connectTimeout !== undefined ? { connectTimeout } : {}),
  });
  try {
    return verdict(
      probe,
      await probe.rexec(PROBE, {
        cmdTimeout: COMMAND_TIMEOUT,
        // One attempt: a diagnosis reports what happens, it does not retry.
        retry: false,
      }),
    );
  } catch (e) {
    if (!(e instanceof ConfigurationError)) throw e;
    return {
      node: node.name,
      target: target(node),
      transport: node.transport,
      ok: false,
      reachable: null,
      hostKey: null,
      auth: null,
      command: null,
      ms: 0,
      problem: "config",
      hop: null,
      detail: e.message,
      hint: "Fix the node's entry in the rig file or install what is missing",
    };
  }
}

async function check(ctx: CliContext): Promise<number> {
  const { flags, out, json, selectNodes } = ctx;
  const connectTimeout = durationFlag(flags, "timeout");
  const fanout = intFlag(flags, "fanout", 1) ?? 64;
  const { nodes } = await selectNodes();
  let done = 0;
  let failed = 0;
  out.progress(0, 0, nodes.length, "checking");
  const checks = await mapPool(nodes, async (node) => {
    const c = await checkNode(node, connectTimeout);
    done++;
    if (!c.ok) failed++;
    if (json) out.out(JSON.stringify(c));
    out.progress(done, failed, nodes.length, "checking");
    return c;
  }, { concurrency: fanout });
  out.clearProgress();
  if (json) {
    const ok = checks.filter((c) => c.ok).length;
    out.out(JSON.stringify({
      summary: { nodes: checks.length, ok, failed: checks.length - ok },
    }));
  } else {
    printTable(checks, out);
  }
  if (checks.some((c) => c.problem === "config")) return 2;
  return checks.every((c) => c.ok) ? 0 : 1;
}

/** `fiwi check`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, check);
}

if (import.meta.main) Deno.exit(await main(Deno.args));

function printTable(
  checks: NodeCheck[],
  out: Output,
): void {
  const mark = (s: Step) =>
    s === null
      ? { text: "-", paint: (t: string) => t }
      : s
      ? { text: "ok", paint: colors.green }
      : { text: "FAIL", paint: colors.red };
  const head = ["NODE", "TARGET", "REACH", "HOSTKEY", "AUTH", "CMD", "TIME"];
  const rows = checks.map((c) =>
    [
      c.node,
      c.target,
      c.reachable,
      c.hostKey,
      c.auth,
      c.command,
      c.problem === "config" ? "-" : humanMs(c.ms),
    ] as const
  );
  const width = head.map((h, i) =>
    Math.max(
      h.length,
      ...rows.map((r) => {
        const v = r[i];
        return typeof v === "string" ? v.length : mark(v).text.length;
      }),
    )
  );
  out.out(head.map((h, i) => h.padEnd(width[i])).join("  ").trimEnd());
  for (const [i, r] of rows.entries()) {
    const plain: string[] = [];
    const shown: string[] = [];
    r.forEach((v, j) => {
      const pad = j === r.length - 1 ? 0 : width[j];
      if (typeof v === "string") {
        plain.push(v.padEnd(pad));
        shown.push(v.padEnd(pad));
      } else {
        const m = mark(v);
        plain.push(m.text.padEnd(pad));
        shown.push(
          out.paint(m.paint, m.text) +
            " ".repeat(Math.max(0, pad - m.text.length)),
        );
      }
    });
    out.out(shown.join("  ").trimEnd(), plain.join("  ").trimEnd());
    const c = checks[i];
    if (!c.ok) {
      if (c.detail) out.out(`  ${c.detail}`);
      if (c.hint) out.out(`  hint: ${c.hint}`);
    }
  }
  const ok = checks.filter((c) => c.ok).length;
  out.out(
    `${ok}/${checks.length} node${checks.length === 1 ? "" : "s"} ok`,
  );
}
