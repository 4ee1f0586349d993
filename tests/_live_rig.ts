/**
 * Where the integration tests run, and what they may skip there: the
 * loopback rig by default; with `FIWI_LIVE=1` and `FIWI_REMOTE_IP`, a live
 * node ({@linkcode liveRig}). A case that needs what only the loopback
 * harness has declares it ({@linkcode skipHere}) and is skipped with the
 * reason on a live rig.
 *
 * @module
 */

import { SshNode } from "../mod.ts";
import type { LoopbackRig } from "./_loopback.ts";
import { closeMasters, plainSsh, run } from "./_sh.ts";

/** An environment variable, undefined when unset or empty. */
export function envGet(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/**
 * Path of the sshd binary the rig uses: `FIWI_SSHD`, default
 * `/usr/sbin/sshd`.
 */
export const SSHD = envGet("FIWI_SSHD") ?? "/usr/sbin/sshd";

/**
 * True under CI (`CI=true`, as CI services and `.ci/run` set it): there a
 * missing sshd fails the integration tests instead of skipping them, so a
 * broken image cannot pass with half the suite skipped.
 */
export const CI = ["true", "1"].includes(envGet("CI") ?? "");

/** What is missing for the loopback rig, or null when sshd is there. */
export function sshdMissing(): string | null {
  try {
    Deno.statSync(SSHD);
    return null;
  } catch {
    return `no sshd at ${SSHD} (apt-get install openssh-server)`;
  }
}

/** True when these tests run against a live rig (`deno task test:live`). */
export const LIVE = envGet("FIWI_LIVE") === "1" && !!envGet("FIWI_REMOTE_IP");

/**
 * Why integration tests cannot run here, or null when they can. Under
 * {@linkcode CI} a missing sshd is no reason: the tests run, and
 * `startLoopbackRig()` fails them saying what is missing.
 */
export function skipReason(): string | null {
  if (LIVE) return null;
  if (envGet("FIWI_LIVE") === "1") {
    return "FIWI_LIVE=1 without FIWI_REMOTE_IP: give the live node's address";
  }
  return CI ? null : sshdMissing();
}

/**
 * What only the loopback harness has, which a case may need:
 * - `second-address`: a second node address (live: `FIWI_REMOTE_IP2`);
 * - `relay`: a node set up as a relay to another;
 * - `sshd-control`: stopping and starting the node's sshd;
 * - `node-is-local`: the node's files and processes are on this machine;
 * - `harness-keys`: the harness's own host and client keys;
 * - `loopback-timing`: logins within a second, runs without network delay.
 */
export type HarnessNeed =
  | "second-address"
  | "relay"
  | "sshd-control"
  | "node-is-local"
  | "harness-keys"
  | "loopback-timing";

const NEEDS: Record<HarnessNeed, string> = {
  "second-address": "a second node address (set FIWI_REMOTE_IP2)",
  relay: "a relay set up by the loopback harness",
  "sshd-control": "stopping and starting sshd, which only the harness does",
  "node-is-local": "the node's files and processes on this machine",
  "harness-keys": "the loopback harness's own host and client keys",
  "loopback-timing":
    "the loopback rig's timing (a login within 1 s, runs without network delay)",
};

/**
 * Why a case needing `needs` cannot run here, or null when it can: no sshd
 * for the loopback rig, or a live rig that lacks one of them.
 */
export function missing(...needs: HarnessNeed[]): string | null {
  const base = skipReason();
  if (base !== null || !LIVE) return base;
  const lacking = needs.filter((n) =>
    n !== "second-address" || !envGet("FIWI_REMOTE_IP2")
  );
  if (lacking.length === 0) return null;
  return `on a live rig it needs ${lacking.map((n) => NEEDS[n]).join(", ")}`;
}

/**
 * For `ignore:` of a test or step: true when the case cannot run here, and
 * then it says why on stderr (Deno prints only "ignored").
 */
export function skipHere(name: string, ...needs: HarnessNeed[]): boolean {
  const why = missing(...needs);
  if (why !== null) console.warn(`skipped: "${name}": ${why}`);
  return why !== null;
}

/**
 * {@linkcode missing} for a group of cases (a whole file): the reason, said
 * once on stderr, or null when they can run here.
 */
export function skipReasonFor(
  what: string,
  ...needs: HarnessNeed[]
): string | null {
  const why = missing(...needs);
  if (why !== null && LIVE) console.warn(`skipped: ${what}: ${why}`);
  return why;
}

/** The live node's settings, from `FIWI_REMOTE_*` and `FIWI_SSH_CONFIG`. */
function liveSettings() {
  const port = envGet("FIWI_REMOTE_PORT");
  return {
    hosts: [envGet("FIWI_REMOTE_IP")!, envGet("FIWI_REMOTE_IP2")]
      .filter((h): h is string => h !== undefined),
    user: envGet("FIWI_REMOTE_USER") ?? "root",
    // Unset: whatever the ssh config says (never a forced 22).
    port: port === undefined ? undefined : Number(port),
    sshConfig: envGet("FIWI_SSH_CONFIG") ?? "",
  };
}

/** The live node(s) as a {@linkcode LoopbackRig}: nothing is started. */
export async function liveRig(): Promise<LoopbackRig> {
  const s = liveSettings();
  // Local only: control sockets and any config a test writes.
  const dir = await Deno.makeTempDir({ prefix: "fiwi_live_" });
  const rig: LoopbackRig = {
    live: true,
    dir,
    port: s.port,
    hosts: s.hosts,
    user: s.user,
    sshConfig: s.sshConfig,
    identityFile: "",
    relayReady: false,
    node(options = {}) {
      const { index = 0, ...rest } = options;
      // One address, several nodes: a case that needs them apart says so
      // ("second-address").
      const host = s.hosts[index % s.hosts.length];
      return new SshNode({
        name: `node${index}`,
        host,
        user: s.user,
        ...(s.port === undefined ? {} : { port: s.port }),
        ...(s.sshConfig ? { sshConfig: s.sshConfig } : {}),
        controlDir: `${dir}/cm`,
        ...rest,
      });
    },
    sh: (cmd) => run("ssh", plainSsh(s, s.hosts[0], cmd)),
    stop() {
      return Promise.reject(
        new Error("A live rig's sshd cannot be stopped by the tests"),
      );
    },
    start: () => Promise.resolve(),
    async [Symbol.asyncDispose]() {
      await closeMasters(dir);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  return rig;
}
