/**
 * What the dashboard knows, in the shapes the page and `/metrics` read:
 * one tile per node, the latest value or text per poll command and node,
 * the recent invocations, console tails, and run counters. Pure: the probe
 * loops and the store watcher feed it, the event hub sends what changed.
 *
 * @module
 */

import { isSuccessKey } from "../process/outcome.ts";
import type {
  InvocationRecord,
  OutcomeRecord,
  SampleRecord,
} from "../state/_types.ts";

/** A tile's reachability: no answer yet, answered, or not answering. */
export type NodeState = "up" | "down" | "connecting";

/** One node of the grid. Times are ms since the epoch. */
export interface Tile {
  /** The node's name. */
  node: string;
  /** Its groups in the rig file. */
  groups: string[];
  /** From its own reachability probe. */
  state: NodeState;
  /** Why the last probe failed. */
  error: string | null;
  /** When the last probe ended. */
  probedAt: number | null;
  /** How long the last successful probe took. */
  probeMs: number | null;
  /** The last outcome of a run on it (`exit 0`, `unreachable`, ...). */
  outcome: string | null;
  /** When that run ended there. */
  outcomeAt: number | null;
  /** Power state where a switch is configured, else null. */
  power: "on" | "off" | "unknown" | null;
  /** Failed outcomes on it in the last hour. */
  failures: number;
}

/** A sample as the page gets it. */
export interface SampleView {
  rowId: number;
  /** ms since the epoch. */
  at: number;
  node: string;
  command: string;
  /** The parsed value, or null for text. */
  value: number | null;
  /** The output, only when it has no value (text is shown as text). */
  text: string | null;
  /** The poll invocation and its tick: samples of one tick share an x. */
  inv: string;
  tick: number;
}

/** An invocation as the page gets it. */
export interface InvocationView {
  id: string;
  rowId: number;
  subcommand: string;
  command: string;
  nodes: string;
  user: string;
  startedAt: number;
  endedAt: number | null;
  exitCode: number | null;
  ok: number;
  failed: number;
}

/** The newest value and text of one node for one command. */
export interface Latest {
  value: number | null;
  text: string | null;
  at: number;
  rowId: number;
  /** When the text last changed (null: never seen changing). */
  changedAt: number | null;
}

/** One console line. */
export interface ConsoleLine {
  at: number;
  text: string;
}

/** The tail of one console. */
export interface ConsoleTail {
  node: string;
  kind: "kernel" | "serial";
  lines: ConsoleLine[];
}

/** Run counters by outcome, since the dashboard started. */
export interface RunCounter {
  count: number;
  durationSum: number;
  /** Cumulative counts per upper bound of {@linkcode DURATION_BUCKETS}, then +Inf. */
  buckets: number[];
}

/** Upper bounds (seconds) of the run duration histogram. */
export const DURATION_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800];
/** Recent invocations kept (the store has them all). */
export const MAX_INVOCATIONS = 100;
/** Console lines kept per console. */
export const MAX_CONSOLE_LINES = 500;
/** Longest text value kept per node and command. */
const MAX_TEXT = 4096;

/** A store sample in the page's shape. */
export function sampleView(s: SampleRecord): SampleView {
  return {
    rowId: s.rowId,
    at: s.at.getTime(),
    node: s.node,
    command: s.command,
    value: s.value,
    text: s.value === null ? s.output.trimEnd().slice(0, MAX_TEXT) : null,
    inv: s.invocationId,
    tick: s.tick,
  };
}

/** A store invocation in the page's shape. */
export function invocationView(r: InvocationRecord): InvocationView {
  return {
    id: r.id,
    rowId: r.rowId,
    subcommand: r.subcommand,
    command: r.command,
    nodes: r.nodes,
    user: r.user,
    startedAt: r.startedAt.getTime(),
    endedAt: r.endedAt?.getTime() ?? null,
    exitCode: r.exitCode,
    ok: r.ok,
    failed: r.failed,
  };
}

/** The dashboard's state. */
export class DashboardModel {
  /** Tiles in rig order. */
  readonly tiles = new Map<string, Tile>();
  /** Command to node to its latest sample. */
  readonly latest = new Map<string, Map<string, Latest>>();
  /** Newest first. */
  invocations: InvocationView[] = [];
  /** `node\0kind` to its tail. */
  readonly consoles = new Map<string, ConsoleTail>();
  /** Outcome key to its counter. */
  readonly runs = new Map<string, RunCounter>();
  /** The newest sample rowId applied. */
  sampleRow = 0;

  /** @param nodes the rig's nodes and their groups, in order */
  constructor(nodes: readonly { name: string; groups: readonly string[] }[]) {
    for (const n of nodes) {
      this.tiles.set(n.name, {
        node: n.name,
        groups: [...n.groups],
        state: "connecting",
        error: null,
        probedAt: null,
        probeMs: null,
        outcome: null,
        outcomeAt: null,
        power: null,
        failures: 0,
      });
    }
  }

  /**
   * Change a tile; the new tile when anything but the probe's times
   * changed (what the page needs to redraw), else null.
   */
  updateTile(node: string, patch: Partial<Omit<Tile, "node">>): Tile | null {
    const tile = this.tiles.get(node);
    if (!tile) return null;
    const before = JSON.stringify({ ...tile, probedAt: 0, probeMs: 0 });
    Object.assign(tile, patch);
    const after = JSON.stringify({ ...tile, probedAt: 0, probeMs: 0 });
    return before === after ? null : { ...tile };
  }

  /**
   * Apply the last outcome per node and the outcomes of the last hour;
   * the tiles that changed.
   */
  applyOutcomes(
    last: readonly OutcomeRecord[],
    lastHour: readonly OutcomeRecord[],
  ): Tile[] {
    const failures = new Map<string, number>();
    for (const o of lastHour) {
      if (!isSuccessKey(o.outcome)) {
        failures.set(o.node, (failures.get(o.node) ?? 0) + 1);
      }
    }
    const byNode = new Map(last.map((o) => [o.node, o]));
    const changed: Tile[] = [];
    for (const tile of this.tiles.values()) {
      const o = byNode.get(tile.node);
      const t = this.updateTile(tile.node, {
        outcome: o?.outcome ?? tile.outcome,
        outcomeAt: o?.at.getTime() ?? tile.outcomeAt,
        failures: failures.get(tile.node) ?? 0,
      });
      if (t) changed.push(t);
    }
    return changed;
  }

  /** Apply new samples (rowId order) to the latest values and texts. */
  applySamples(samples: readonly SampleView[]): void {
    for (const s of samples) {
      let nodes = this.latest.get(s.command);
      if (!nodes) this.latest.set(s.command, nodes = new Map());
      const before = nodes.get(s.node);
      const changed = before !== undefined && s.text !== null &&
        before.text !== null && before.text !== s.text;
      nodes.set(s.node, {
        value: s.value,
        text: s.text,
        at: s.at,
        rowId: s.rowId,
        changedAt: changed ? s.at : before?.changedAt ?? null,
      });
      if (s.rowId > this.sampleRow) this.sampleRow = s.rowId;
    }
  }

  /** Add or replace an invocation (newest first, bounded). */
  applyInvocation(v: InvocationView): void {
    this.invocations = [v, ...this.invocations.filter((i) => i.id !== v.id)]
      .sort((a, b) => b.startedAt - a.startedAt)
      .slice(0, MAX_INVOCATIONS);
  }

  /** Count the outcomes of an invocation that ended. */
  countRuns(outcomes: readonly OutcomeRecord[]): void {
    for (const o of outcomes) {
      let c = this.runs.get(o.outcome);
      if (!c) {
        c = {
          count: 0,
          durationSum: 0,
          buckets: new Array(DURATION_BUCKETS.length + 1).fill(0),
        };
        this.runs.set(o.outcome, c);
      }
      const seconds = o.durationMs / 1000;
      c.count++;
      c.durationSum += seconds;
      DURATION_BUCKETS.forEach((le, i) => {
        if (seconds <= le) c.buckets[i]++;
      });
      c.buckets[DURATION_BUCKETS.length]++;
    }
  }

  /** Append console lines of one console, keeping its tail. */
  appendConsole(
    node: string,
    kind: ConsoleTail["kind"],
    lines: readonly ConsoleLine[],
  ): void {
    const key = `${node}\0${kind}`;
    let tail = this.consoles.get(key);
    if (!tail) this.consoles.set(key, tail = { node, kind, lines: [] });
    tail.lines.push(...lines);
    if (tail.lines.length > MAX_CONSOLE_LINES) {
      tail.lines.splice(0, tail.lines.length - MAX_CONSOLE_LINES);
    }
  }

  /** The text values: per command, per node, where the latest has no value. */
  texts(): { command: string; node: string; latest: Latest }[] {
    const out: { command: string; node: string; latest: Latest }[] = [];
    for (const [command, nodes] of this.latest) {
      for (const [node, latest] of nodes) {
        if (latest.text !== null) out.push({ command, node, latest });
      }
    }
    return out;
  }
}
