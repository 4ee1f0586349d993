/**
 * `fiwi check`: connectivity and auth diagnosis for every node. Each
 * node gets a fresh connection (no ControlMaster, so a warm master cannot
 * hide a broken login) that runs one harmless command; the outcome is split
 * into reachable / host key / auth / command, with the time taken and a
 * hint for the first step that failed. Reading ssh's error output (what
 * failed, where, and what to do) is the library's `readSshError`, told the
 * node's effective ssh configuration (`effectiveSshConfig`, `ssh -G`) so a
 * hint names the port, user and proxy ssh really used; this subcommand runs
 * the probe, and formats and prints.
 *
 * A probe that timed out says which of its limits ran out, with the value
 * the run used: the time column is that run's duration, so the two agree
 * (a command limit counts from the client's start, which the duration
 * includes).
 *
 * @module
 */

import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  type EffectiveSshConfig,
  effectiveSshConfig,
  HostKeyError,
  mapPool,
  readSshError,
  type RunResult,
  type SshNode,
} from "../mod.ts";
import { type CliContext, type CliSpec, intFlag, runCli } from "./_cli.ts";
import { colors, humanMs, type Output } from "./_output.ts";

export const SPEC: CliSpec = {
  name: "check",
  summary:
    "Diagnose every node: reachable, host key accepted, login works, a command runs.",
  // The connect timeout is the common -t/--connect-timeout.
  options: [
    {
      name: "fanout",
      short: "f",
      arg: "N",
      help: "nodes checked at once (default 64; per gateway too)",
    },
  ],
  examples: [
    "fiwi check",
    "fiwi check --rig lab.yaml -w @duts -t 5s",
    "fiwi check --json | jq 'select(.ok == false)'",
  ],
};

const PROBE = "echo fiwi-check-ok";
const PROBE_OUT = "fiwi-check-ok\n";
/** Wall-clock limit of the probe command, from the client's start. */
const COMMAND_TIMEOUT = 10_000;

/**
 * The limits one probe runs with, in ms: given to the run and named by its
 * verdict, so a timeout names the limit that really ran out.
 */
export interface ProbeLimits {
  /** Until the command begins (the node's connect timeout). */
  connect: number;
  /** Silence once it began (the node's ioTimeout), if any. */
  io?: number;
  /** The whole run ({@linkcode COMMAND_TIMEOUT}). */
  command: number;
}

/** One step's verdict: passed, failed, or not known (not reached / n/a). */
type Step = boolean | null;

/** What `check` reports for one node. */
export interface NodeCheck {
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
  const gateway = node.gateway ? ` through gateway ${node.gateway.name}` : "";
  const user = node.user === null ? "" : `${node.user}@`;
  return `${user}${node.host}${port}${via}${gateway}`;
}

/** The steps a failed login leaves passed (true), failed (false) or not known. */
const STEPS = {
  "host-key": { reachable: true, hostKey: false, auth: null },
  auth: { reachable: true, hostKey: true, auth: false },
  unreachable: { reachable: false, hostKey: null, auth: null },
} as const;

/** `[user@]host[:port]` of a reading's address, `[host]` for IPv6. */
function loginAt(user: string | null, host: string, port?: number): string {
  const at = port === undefined
    ? host
    : host.includes(":")
    ? `[${host}]:${port}`
    : `${host}:${port}`;
  return `${user ? `${user}@` : ""}${at}`;
}

/**
 * What a probe that began but did not end well says: the limit that ran
 * out (its value as the run used it), or how the command exited.
 */
function commandVerdict(
  r: RunResult,
  limits: ProbeLimits,
): { detail: string; hint: string } {
  const stderr = r.stderr.trim().split("\n").at(-1) ?? "";
  const said = (why: string) =>
    `"${PROBE}" ${why}${stderr ? `: ${stderr}` : ""}`;
  if (r.timedOut === "io" && limits.io !== undefined) {
    return {
      detail: said(`printed nothing for ${humanMs(limits.io)} (ioTimeout)`),
      hint:
        'The login works but the command went silent: the node may be overloaded, or the shell\'s rc files wait for something; raise "ioTimeout" if it is only slow',
    };
  }
  return {
    detail: said(
      r.timedOut
        ? `did not finish within ${humanMs(limits.command)}`
        : `exited with ${r.signal ?? `code ${r.code}`}`,
    ),
    hint:
      "The login works but the shell does not run commands cleanly: check the remote shell and its rc files (.bashrc, .profile)",
  };
}

/**
 * The verdict of one probe: `r` ran on `node` with `limits`; `config` is
 * the node's effective ssh configuration when it was read (after a failed
 * connection). Exported for tests.
 */
export function verdict(
  node: SshNode,
  r: RunResult,
  limits: ProbeLimits,
  config: EffectiveSshConfig | null = null,
): NodeCheck {
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
  // The connect limit counts until the command begins: a start line that
  // came after it ran out (and before the client was gone) is still a login
  // that did not happen in time, not a command that did not finish.
  if (r.started && r.timedOut !== "connect") {
    return {
      ...base,
      ok: false,
      reachable: remote,
      hostKey: remote,
      auth: remote,
      command: false,
      problem: "command",
      hop: "node",
      ...commandVerdict(r, limits),
    };
  }
  const detail = r.error?.message ?? null;
  // ssh's own lines first: the telling line and the address come from them.
  const ssh = readSshError(`${r.stderr}\n${detail ?? ""}`, node, { config });
  const failed = { ...base, ok: false, command: null, hop: ssh.hop };
  if (r.timedOut === "connect") {
    // Who logs in where, and through what, as ssh's config made it.
    const login = node.transport === "local"
      ? ""
      : ` as ${loginAt(ssh.user, ssh.host, ssh.port)}${
        ssh.via ? ` through ${ssh.via}` : ""
      }`;
    return {
      ...failed,
      ...(r.started
        ? { reachable: remote, hostKey: remote, auth: remote }
        : STEPS.unreachable),
      problem: "timeout",
      detail,
      hint: `No login within ${
        humanMs(limits.connect)
      }${login}: the node may be down, unreachable, or stuck before the shell starts`,
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

async function checkNode(node: SshNode, retry: boolean): Promise<NodeCheck> {
  // A fresh connection each time: a warm ControlMaster would skip the login.
  const probe = node.with({ controlMaster: false, silent: true });
  const limits: ProbeLimits = {
    connect: probe.connectTimeout,
    io: probe.ioTimeout,
    command: COMMAND_TIMEOUT,
  };
  try {
    const r = await probe.rexec(PROBE, {
      connectTimeout: limits.connect,
      ioTimeout: limits.io,
      cmdTimeout: limits.command,
      // One attempt unless --retries asks for more: a diagnosis reports
      // what happens, it does not retry.
      ...(retry ? {} : { retry: false }),
    });
    // Where ssh went, as its config made it: read only for a failed login.
    const config = r.success || (r.started && r.timedOut !== "connect")
      ? null
      : await effectiveSshConfig(probe.spec);
    return verdict(probe, r, limits, config);
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
  const fanout = intFlag(flags, "fanout", 1) ?? 64;
  const retry = flags.retries !== undefined;
  const { nodes } = await selectNodes();
  let done = 0;
  let failed = 0;
  out.progress(0, 0, nodes.length, "checking");
  const checks = await mapPool(nodes, async (node) => {
    const c = await checkNode(node, retry);
    done++;
    if (!c.ok) failed++;
    if (json) out.out(JSON.stringify(c));
    out.progress(done, failed, nodes.length, "checking");
    return c;
  }, { concurrency: fanout, routeOf: (node) => node.gateway });
  out.clearProgress();
  ctx.state?.checks(checks);
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
