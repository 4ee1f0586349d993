/**
 * The dashboard: a local web page that shows a rig live. A node grid (each
 * tile up, down or connecting from its own reachability probe, with its
 * groups, the last outcome of a run on it, its power state and its
 * failures in the last hour), one uPlot chart per poll command with one
 * series per node, the recent invocations of every fiwi process, and
 * optionally console tails. Updates travel as Server-Sent Events
 * (`/events`); `/metrics` gives the same state to Prometheus.
 *
 * Read-only: it reads the state store other processes write, probes nodes
 * with `true`, reads power switches with `status`, and runs nothing else.
 * It uses only what the package exports (`Rig`, `SshNode`, the store's
 * reads, `openSerialConsole`, `describeOutcome`): a user could have
 * written it.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError } from "../errors.ts";
import type { Rig } from "../rig/rig.ts";
import type { SshNode } from "../node/node.ts";
import { EventHub } from "./_events.ts";
import { handler } from "./_http.ts";
import { formatMetrics } from "./_metrics.ts";
import { DashboardModel, type Tile } from "./_model.ts";
import { pageHtml } from "./_page.ts";
import { runPowerReads, runProbes } from "./_probe.ts";
import { type DashboardStore, StoreWatcher } from "./_watch.ts";
import { type OpenTails, openTails } from "./_consoles.ts";
import { historyPage } from "./_history.ts";

export type { DashboardStore } from "./_watch.ts";

/**
 * The dashboard's default port.
 *
 * @example
 * ```ts
 * import { DEFAULT_DASHBOARD_PORT } from "../../mod.ts";
 * console.log(`http://127.0.0.1:${DEFAULT_DASHBOARD_PORT}/`);
 * ```
 */
export const DEFAULT_DASHBOARD_PORT = 8470;
/**
 * Default of {@linkcode DashboardOptions.probeInterval}: 10 s.
 *
 * @example
 * ```ts
 * import { DEFAULT_PROBE_INTERVAL } from "../../mod.ts";
 * console.log(DEFAULT_PROBE_INTERVAL / 1000); // 10
 * ```
 */
export const DEFAULT_PROBE_INTERVAL = 10_000;
/** Default of {@linkcode DashboardOptions.history}: 1 h. */
const DEFAULT_HISTORY = 3_600_000;
/** How often the store is read for new rows. */
const WATCH_INTERVAL = 100;
/** Power switches are read every this many probe intervals. */
const POWER_EVERY = 3;

const log = getLogger(["fiwi", "dashboard"]);

/** Options of {@linkcode serveDashboard}. Times are milliseconds. */
export interface DashboardOptions {
  /** Where invocations, outcomes and samples are read (a `StateStore`). */
  store: DashboardStore;
  /** The nodes shown (default: every node of the rig). */
  nodes?: readonly SshNode[];
  /** Address to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port (default {@linkcode DEFAULT_DASHBOARD_PORT}; 0: any free port). */
  port?: number;
  /**
   * Every request must carry it (`?token=` or `Authorization: Bearer`).
   * Required for an address other than loopback; at least 16 characters.
   */
  token?: string;
  /** How often each node is probed (default {@linkcode DEFAULT_PROBE_INTERVAL}). */
  probeInterval?: number;
  /** Stream the kernel and serial consoles of the nodes that have one (default false). */
  consoles?: boolean;
  /** How far back the charts reach (default 1 h). */
  history?: number;
  /** Aborting it stops the dashboard. */
  signal?: AbortSignal;
  /** Told when reading the store fails (default: a warning in the log). */
  onWarning?: (line: string) => void;
}

/** Whether `hostname` is a loopback address (the only ones served without a token). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/** A running dashboard. `await using` closes it. */
export class Dashboard implements AsyncDisposable {
  /** The page's address, with `?token=` when there is a token. */
  readonly url: string;
  /** The address it listens on. */
  readonly hostname: string;
  /** The port it listens on (the one picked, for port 0). */
  readonly port: number;
  /** The access token, or null. */
  readonly token: string | null;
  /** Settles when the server has stopped. */
  readonly finished: Promise<void>;
  #close: () => Promise<void>;

  /** Made by {@linkcode serveDashboard}. */
  constructor(
    hostname: string,
    port: number,
    token: string | null,
    finished: Promise<void>,
    close: () => Promise<void>,
  ) {
    this.hostname = hostname;
    this.port = port;
    this.token = token;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    this.url = `http://${host}:${port}/${
      token === null ? "" : `?token=${encodeURIComponent(token)}`
    }`;
    this.finished = finished;
    this.#close = close;
  }

  /** Stop probing, end every stream, close the consoles and the server. */
  close(): Promise<void> {
    return this.#close();
  }

  /** Same as {@linkcode Dashboard.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function validate(options: DashboardOptions): void {
  const port = options.port ?? DEFAULT_DASHBOARD_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Invalid port ${port}: give 0 to 65535`);
  }
  for (const key of ["probeInterval", "history"] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isFinite(v) || v < 100)) {
      throw new RangeError(`Invalid ${key} ${v}: give at least 100 ms`);
    }
  }
  const hostname = options.hostname ?? "127.0.0.1";
  if (options.token !== undefined && options.token.length < 16) {
    throw new ConfigurationError(
      "The dashboard's token is too short: give at least 16 characters",
    );
  }
  if (!isLoopback(hostname) && options.token === undefined) {
    throw new ConfigurationError(
      `Listening on "${hostname}" needs an access token: give one, or listen on 127.0.0.1`,
    );
  }
}

/** The groups of each node, from the rig's group map. */
function groupsOf(rig: Rig): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [group, members] of rig.groups) {
    for (const m of members) groups.set(m, [...(groups.get(m) ?? []), group]);
  }
  return groups;
}

/** `Deno.serve` on the address, its failures to bind as one-line errors. */
function listen(
  hostname: string,
  port: number,
  serve: (req: Request) => Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve({ hostname, port, onListen: () => {} }, serve);
  } catch (e) {
    const where = `${hostname}:${port}`;
    if (e instanceof Deno.errors.AddrInUse) {
      throw new ConfigurationError(
        `Port ${port} on ${hostname} is in use: give another port, or 0 for any free one`,
        { cause: e },
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new ConfigurationError(
        `Cannot listen on ${where}: the address is not one of this machine's`,
        { cause: e },
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new ConfigurationError(
        `Cannot listen on ${where}: permission denied (ports below 1024 need root)`,
        { cause: e },
      );
    }
    throw e;
  }
}

/**
 * Serve the dashboard of `rig` (see the module doc). Resolves once it
 * listens; close it with {@linkcode Dashboard.close} or the signal.
 * Rejects with {@linkcode ConfigurationError} for a port in use, an
 * address not of this machine, or an address other than loopback without
 * a token, and with `RangeError` for a bad option.
 *
 * @example
 * ```ts ignore
 * import { loadRig, serveDashboard, StateStore, defaultStatePath } from "jsr:@fiwi/fiwi";
 * await using rig = await loadRig("rigs.yaml");
 * await using store = await StateStore.open(defaultStatePath());
 * await using dashboard = await serveDashboard(rig, { store, port: 0 });
 * console.log(`Dashboard on ${dashboard.url}`);
 * await dashboard.finished;
 * ```
 */
export async function serveDashboard(
  rig: Rig,
  options: DashboardOptions,
): Promise<Dashboard> {
  validate(options);
  const hostname = options.hostname ?? "127.0.0.1";
  const token = options.token ?? null;
  const probeInterval = options.probeInterval ?? DEFAULT_PROBE_INTERVAL;
  const history = options.history ?? DEFAULT_HISTORY;
  const nodes = options.nodes ?? rig.nodes;
  const warn = options.onWarning ??
    ((line: string) => log.warn("{line}", { line }));
  const groups = groupsOf(rig);
  const model = new DashboardModel(
    nodes.map((n) => ({ name: n.name, groups: groups.get(n.name) ?? [] })),
  );
  const hub = new EventHub();
  const publishTiles = (tiles: Tile[]) => {
    if (tiles.length) hub.publish("node", { nodes: tiles });
  };
  const watcher = new StoreWatcher(options.store, model, {
    samples: (samples) => hub.publish("sample", { samples }),
    invocations: (invocations) => hub.publish("invocation", { invocations }),
    tiles: publishTiles,
    warning: warn,
  });
  watcher.start();

  const snapshot = () => {
    const now = Date.now();
    return {
      rig: rig.name,
      epoch: hub.epoch,
      lastId: hub.lastId,
      probeInterval,
      history,
      historySince: now - history,
      sampleRow: model.sampleRow,
      nodes: [...model.tiles.values()],
      invocations: model.invocations,
      texts: model.texts().map(({ command, node, latest }) => ({
        command,
        node,
        text: latest.text,
        at: latest.at,
        changedAt: latest.changedAt,
      })),
      consoles: [...model.consoles.values()],
    };
  };
  const page = pageHtml({
    rig: rig.name,
    description: rig.description,
    token,
    consoles: options.consoles === true,
  });
  let port = options.port ?? DEFAULT_DASHBOARD_PORT;
  const hosts = new Set<string>();
  const server = listen(
    hostname,
    port,
    handler({
      page: () => page,
      snapshot,
      events: ({ header, query }) => {
        // A reconnecting EventSource has its state: the events it missed.
        const missed = header !== null ? hub.since(header) : null;
        if (missed) return hub.stream(missed);
        const state = { event: "snapshot", data: JSON.stringify(snapshot()) };
        // A reloaded page: the state to draw (no id: the ids it gets go on
        // from the one it saw last), then the events after its last one.
        const after = header === null && query !== null
          ? hub.since(query)
          : null;
        if (after) return hub.stream([state, ...after]);
        return hub.stream([{ id: hub.lastId, ...state }]);
      },
      metrics: () => formatMetrics(model),
      samples: (query) => historyPage(options.store, query),
    }, { token, hosts: token === null ? hosts : null }),
  );
  port = server.addr.port;
  for (const h of ["127.0.0.1", "localhost", "[::1]", hostname]) {
    hosts.add(`${h}:${port}`);
  }

  const stop = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([stop.signal, options.signal])
    : stop.signal;
  const loops = Promise.all([
    watcher.run(WATCH_INTERVAL, signal),
    runProbes(nodes, probeInterval, signal, (node, r) => {
      publishTiles(
        [
          model.updateTile(node, {
            state: r.ok ? "up" : "down",
            error: r.error,
            probedAt: Date.now(),
            probeMs: r.ok ? r.ms : null,
          }),
        ].filter((t): t is Tile => t !== null),
      );
    }),
    runPowerReads(rig, nodes, probeInterval * POWER_EVERY, signal, (n, s) => {
      publishTiles(
        [model.updateTile(n, { power: s })].filter((t): t is Tile =>
          t !== null
        ),
      );
    }),
  ]);
  let tails: OpenTails | null = null;
  let closing: Promise<void> | null = null;
  const close = () =>
    closing ??= (async () => {
      stop.abort();
      hub.close();
      await tails?.close();
      await server.shutdown();
      await loops;
    })();
  if (options.consoles) {
    try {
      tails = await openTails(rig, nodes, (b) => {
        model.appendConsole(b.node, b.kind, b.lines);
        hub.publish("console", b);
      });
    } catch (e) {
      await close();
      throw e;
    }
  }
  options.signal?.addEventListener("abort", () => void close(), {
    once: true,
  });
  return new Dashboard(hostname, port, token, server.finished, close);
}
