/**
 * `fiwi check`: connectivity and auth diagnosis for every node. Each
 * node gets a fresh connection (no ControlMaster, so a warm master cannot
 * hide a broken login) that runs one harmless command; the outcome is split
 * into reachable / host key / auth / command, with the time taken and a
 * hint for the first step that failed.
 *
 * @module
 */

import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  HostKeyError,
} from "../src/errors.ts";
import type { SshNode } from "../src/node/node.ts";
import { parseRelay } from "../src/transport/validate.ts";
import type { RunResult } from "../src/process/session.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
} from "./_cli.ts";
import { colors, humanMs, type Output } from "./_output.ts";
import { mapLimit, nodeWith } from "./_runs.ts";

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

/**
 * True when ssh's message is about the relay, not the node: it names the
 * relay's address (and port, when the relay shares the node's address).
 */
export function relayFailed(node: SshNode, text: string): boolean {
  if (!node.relay) return false;
  const relay = parseRelay(node.relay);
  const names = (host: string, port?: number) =>
    new RegExp(
      `(host |@|\\[)${host.replaceAll(".", "\\.")}(\\]?:${port ?? ""}| port ${
        port ?? ""
      }|[: ]|$)`,
    ).test(text);
  if (relay.host !== node.host) return names(relay.host) && !names(node.host);
  return relay.port !== node.port && names(relay.host, relay.port ?? 22);
}

/** The hint for a host key that changed: remove the old one. */
function changedKeyHint(where: string, port?: number): string {
  const entry = port !== undefined && port !== 22
    ? `"[${where}]:${port}"`
    : where;
  return `The host key of ${where} changed (reinstalled?): if that is expected, remove the old key with ssh-keygen -R ${entry}, then run check again`;
}

function hostKeyHint(node: SshNode, text: string, viaRelay: boolean): string {
  const relay = node.relay ? parseRelay(node.relay) : null;
  const host = viaRelay && relay ? relay.host : node.host;
  const port = viaRelay && relay ? relay.port : node.port;
  if (/IDENTIFICATION HAS CHANGED|Offending .*key/i.test(text)) {
    return changedKeyHint(host, port);
  }
  return `Verify the key of ${host}, then add it (ssh-keyscan${
    port ? ` -p ${port}` : ""
  } ${host} >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new`;
}

function unreachableHint(node: SshNode, detail: string): string {
  const port = node.port ?? 22;
  const relay = node.relay
    ? ` (through relay "${node.relay}", which answered)`
    : "";
  if (/Connection refused/i.test(detail)) {
    return `Nothing accepts connections on ${node.host}:${port}: start sshd there or fix "port"${relay}`;
  }
  if (
    /Could not resolve|Name or service not known|nodename nor servname/i.test(
      detail,
    )
  ) {
    return `The host name does not resolve: fix "host", DNS or the ssh config${relay}`;
  }
  if (/No route to host|Network is unreachable/i.test(detail)) {
    return `No route to ${node.host}: check cabling, VLAN, VPN or the relay${relay}`;
  }
  if (/timed out/i.test(detail)) {
    return `No answer from ${node.host}:${port}: the node may be down, or a firewall drops packets${relay}`;
  }
  return `Check that the node is up and sshd listens on ${node.host}:${port}${relay}`;
}

function verdict(node: SshNode, r: RunResult): NodeCheck {
  const base = {
    node: node.name,
    target: target(node),
    transport: node.transport,
    ms: Math.round(r.durationMs),
  };
  const local = node.transport === "local";
  const remote = local ? null : true;
  const detail = r.error?.message ?? null;
  const everything = `${detail ?? ""}\n${r.stderr}`;
  const hop = relayFailed(node, everything) ? "relay" : "node";
  const atRelay = hop === "relay"
    ? `The relay "${node.relay}" failed, not the node: `
    : "";
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
  if (r.timedOut === "connect") {
    return {
      ...base,
      ok: false,
      reachable: false,
      hostKey: null,
      auth: null,
      command: null,
      problem: "timeout",
      hop,
      detail,
      hint: `No login within ${
        humanMs(node.connectTimeout)
      }: the node may be down, unreachable, or stuck before the shell starts`,
    };
  }
  if (r.error instanceof HostKeyError) {
    return {
      ...base,
      ok: false,
      reachable: true,
      hostKey: false,
      auth: null,
      command: null,
      problem: "host-key",
      hop,
      detail,
      hint: atRelay + hostKeyHint(node, everything, hop === "relay"),
    };
  }
  if (r.error instanceof AuthenticationError) {
    return {
      ...base,
      ok: false,
      reachable: true,
      hostKey: true,
      auth: false,
      command: null,
      problem: "auth",
      hop,
      detail,
      hint: hop === "relay"
        ? `${atRelay}it refused every key: check the relay's user and its authorized_keys (ssh-copy-id ${node.relay})`
        : node.user === null
        ? `The node refused every key for the user your ssh config gives: check its "User", "identityFile", and that user's ~/.ssh/authorized_keys on the node (ssh-copy-id)`
        : `The node refused every key for "${node.user}": check "user", "identityFile", and the node's ~${node.user}/.ssh/authorized_keys (ssh-copy-id)`,
    };
  }
  const text = detail ?? (r.stderr.trim() || `exit ${r.code}`);
  return {
    ...base,
    ok: false,
    reachable: false,
    hostKey: null,
    auth: null,
    command: null,
    problem: "unreachable",
    hop,
    detail: text,
    hint: r.error instanceof ConnectionError || !r.error
      ? hop === "relay"
        ? `${atRelay}check that ${node.relay} is up and sshd listens there`
        : unreachableHint(node, text)
      : null,
  };
}

async function checkNode(
  node: SshNode,
  connectTimeout?: number,
): Promise<NodeCheck> {
  // A fresh connection each time: a warm ControlMaster would skip the login.
  const probe = nodeWith(node, {
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
  const checks = await mapLimit(nodes, fanout, async (node) => {
    const c = await checkNode(node, connectTimeout);
    done++;
    if (!c.ok) failed++;
    if (json) out.out(JSON.stringify(c));
    out.progress(done, failed, nodes.length, "checking");
    return c;
  });
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
