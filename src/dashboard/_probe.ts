/**
 * The dashboard's probes. Each node runs `true` every interval over its
 * warm ControlMaster. A node that answered is probed with a bound shorter
 * than the interval, so one probe ends before the next is due: a node that
 * stops answering is down at the latest two intervals after its last
 * answer. A node that has not answered (yet) gets the time of an ssh login. Nodes with a power switch have it read (`status`)
 * every few intervals, one call per `via` node, bounded too.
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import { describeOutcome } from "../process/outcome.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import type {
  PowerOptions,
  PowerResult,
  PowerState,
  PowerSwitch,
} from "../hardware/power.ts";

/** What a probe needs of a node. `SshNode` satisfies it. */
export interface ProbeNode {
  readonly name: string;
  rexec(cmd: string, options?: RunOptions): Promise<RunResult>;
}

/** What the power reads need of a rig. `Rig` satisfies it. */
export interface PowerReadRig<N> {
  readonly powerSwitches: ReadonlyMap<string, PowerSwitch>;
  power(
    nodes: readonly N[],
    action: "status",
    options?: PowerOptions,
  ): Promise<PowerResult[]>;
}

/** One probe's result. */
export interface ProbeResult {
  ok: boolean;
  /** How long it took. */
  ms: number;
  /** Why it failed: one line. */
  error: string | null;
}

/**
 * The longest a probe of a node that answered may take: it must end before
 * the next is due, so that the node is down within two intervals.
 */
export function probeBound(interval: number): number {
  return Math.max(100, Math.floor(interval * 0.9));
}

/**
 * The longest a probe of a node that has not answered yet (or stopped) may
 * take: a new ControlMaster needs a whole ssh login, which a short
 * interval would cut off again and again. fiwi's default connect timeout.
 */
export const CONNECT_BOUND = 15_000;

/** One bounded `true` on `node`. Never rejects. */
export async function probeOnce(
  node: ProbeNode,
  bound: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const r = await node.rexec("true", {
      connectTimeout: bound,
      cmdTimeout: bound,
      retry: false,
      signal: AbortSignal.any([AbortSignal.timeout(bound), signal]),
    });
    const ms = Math.round(performance.now() - started);
    return r.success
      ? { ok: true, ms, error: null }
      : { ok: false, ms, error: describeOutcome(r).sentence };
  } catch (e) {
    return {
      ok: false,
      ms: Math.round(performance.now() - started),
      error: (e as Error)?.message ?? String(e),
    };
  }
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  try {
    await delay(ms, { signal });
  } catch { /* aborted: the loop checks */ }
}

/**
 * Probe every node every `interval` ms until `signal` aborts; each result
 * goes to `onResult`. Resolves when every loop has ended.
 */
export async function runProbes(
  nodes: readonly ProbeNode[],
  interval: number,
  signal: AbortSignal,
  onResult: (node: string, result: ProbeResult) => void,
): Promise<void> {
  const answering = probeBound(interval);
  const connecting = Math.max(answering, CONNECT_BOUND);
  await Promise.all(nodes.map(async (node) => {
    let up = false;
    while (!signal.aborted) {
      const started = performance.now();
      const result = await probeOnce(node, up ? answering : connecting, signal);
      if (signal.aborted) return;
      up = result.ok;
      onResult(node.name, result);
      await sleep(interval - (performance.now() - started), signal);
    }
  }));
}

/**
 * Read the power state of every node of `nodes` that has a switch, every
 * `every` ms, one call per `via` node (an unreachable `via` leaves only its
 * own nodes unknown), until `signal` aborts.
 */
export async function runPowerReads<N extends { readonly name: string }>(
  rig: PowerReadRig<N>,
  nodes: readonly N[],
  every: number,
  signal: AbortSignal,
  onState: (node: string, state: PowerState) => void,
): Promise<void> {
  const byVia = new Map<string, N[]>();
  for (const n of nodes) {
    const sw = rig.powerSwitches.get(n.name);
    if (!sw) continue;
    byVia.set(sw.via, [...(byVia.get(sw.via) ?? []), n]);
  }
  if (byVia.size === 0) return;
  const bound = probeBound(every);
  while (!signal.aborted) {
    const started = performance.now();
    await Promise.all([...byVia.values()].map(async (group) => {
      const call = AbortSignal.any([AbortSignal.timeout(bound), signal]);
      try {
        const results = await rig.power(group, "status", {
          timeout: bound,
          signal: call,
        });
        for (const r of results) {
          onState(r.node, r.success ? r.state : "unknown");
        }
      } catch {
        for (const n of group) onState(n.name, "unknown");
      }
    }));
    await sleep(every - (performance.now() - started), signal);
  }
}
