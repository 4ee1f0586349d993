/**
 * The browser test's fixture: `fiwi dashboard` as a real process over two
 * loopback sshds (n1 and n2 on one, n3 alone on the other, so one node can
 * be stopped), a rig file and a state store of the test's own, and a
 * headless Chromium on the page whose event stream is recorded message by
 * message through the DevTools protocol. Disposing it stops everything it
 * started, also when a step failed.
 *
 * @module
 */

import type { CDPSession, Page } from "npm:puppeteer-core@^24";
import { type SampleRecord, StateStore } from "../mod.ts";
import { type Browser, launchBrowser, waitInPage } from "./_browser.ts";
import { type Running, startFiwi } from "./_cli_harness.ts";
import * as page from "./_dashboard_page.ts";
import { type SampleWatch, watchSamples } from "./_sample_watch.ts";
import {
  countCarrying,
  type LoopbackRig,
  NODE_USER,
  startLoopbackRig,
} from "./_loopback.ts";
import { closeMasters, run } from "./_sh.ts";

/** The dashboard's probe interval here: short, so "down" comes soon. */
export const PROBE_MS = 1000;

/** One SSE message the browser received. */
export interface SseMessage {
  id: string;
  event: string;
  /** Index of the page load it arrived in (0: the first, 1: after a reload). */
  load: number;
}

/** One request of the page for its event stream. */
export interface EventRequest {
  requestId: string;
  url: string;
  /** Its Last-Event-ID header. */
  lastEventId: string | null;
  /** Index of the page load that made it. */
  load: number;
}

/** Everything a step needs; disposing stops all of it. */
export interface Fixture extends AsyncDisposable {
  /** Scratch dir, its path carrying the test's marker. */
  dir: string;
  /** The loopback rig of n1 and n2. */
  rig: LoopbackRig;
  /** The loopback rig of n3 alone (its sshd is stopped by one step). */
  lone: LoopbackRig;
  /** The state store file every fiwi here records into. */
  db: string;
  /** When each sample became visible in the store. */
  watch: SampleWatch;
  /** The dashboard's URL as it printed it. */
  url: string;
  browser: Browser;
  page: Page;
  /** What the page's event stream carried, in order. */
  messages: SseMessage[];
  /** URL and Last-Event-ID header of every /events request, in order. */
  eventRequests: EventRequest[];
  /** Errors thrown in the page. */
  pageErrors: string[];
  /** Start fiwi with the test's rig, state and control dir. */
  fiwi(args: string[]): Running;
  /** The samples of `command` in the store (a reader's own handle). */
  samples(command: string): Promise<SampleRecord[]>;
}

/** The rig file: n1, n2 on `rig`; n3 on `lone`; n1's console prints markup. */
function rigYaml(rig: LoopbackRig, lone: LoopbackRig, token: string): string {
  const node = (r: LoopbackRig, index: number, base: number) =>
    `host: ${r.hosts[index]}, port: ${r.port}, user: ${r.user}, ` +
    `sshConfig: ${r.sshConfig}, vars: { base: ${base} }`;
  // Printed once when the dashboard opens n1's console; the sleep carries
  // the marker, so a console left running on the node would be counted.
  const consoleCommand = `${SHOW_MARKUP}; exec sleep ${token}`;
  return `rigs:
  loop:
    nodes:
      n1: { ${node(rig, 0, 40)}, console: true, consoleCommand: ${
    JSON.stringify(consoleCommand)
  } }
      n2: { ${node(rig, 1, 55)} }
      n3: { ${node(lone, 0, 70)} }
`;
}

/** Markup a node prints, which must show as text and run nothing. */
export const XSS = [
  `<img src=x onerror="window.__xss=1">`,
  `<script>window.__xss=2</script>`,
];

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** A command printing the markup: its output is text, the page's to show. */
export const SHOW_MARKUP = `printf '%s\\n' ${XSS.map(shq).join(" ")}`;

/**
 * The polled command: a wave around each node's `base` (its `vars:`), so
 * the chart (and the README's screenshot) shows two distinct lines.
 */
export const POLL =
  "awk -v b={base} -v t=$(date +%s) 'BEGIN { print b + 4 * sin(t / 2) }'";

/** The dashboard's URL in what it printed. */
const URL_LINE = /http:\/\/127\.0\.0\.1:\d+\/\S*/;

/** What the page's event stream carried, filled in as it arrives. */
interface StreamRecord {
  messages: SseMessage[];
  eventRequests: EventRequest[];
}

/**
 * Record every /events request of `tab` and every message they carry,
 * through the DevTools protocol (it sees what the page's EventSource got,
 * across reloads).
 */
async function recordEventStream(tab: Page): Promise<StreamRecord> {
  const record: StreamRecord = { messages: [], eventRequests: [] };
  // Page loads are counted by their document requests, which come before
  // any script of the page can open a stream.
  let load = -1;
  const cdp: CDPSession = await tab.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.type === "Document") load++;
    if (!new URL(e.request.url).pathname.endsWith("/events")) return;
    const headers = Object.entries(e.request.headers);
    const header = headers.find(([k]) => k.toLowerCase() === "last-event-id");
    record.eventRequests.push({
      requestId: e.requestId,
      url: e.request.url,
      lastEventId: header?.[1] ?? null,
      load,
    });
  });
  cdp.on("Network.eventSourceMessageReceived", (e) => {
    const request = record.eventRequests.find((r) =>
      r.requestId === e.requestId
    );
    record.messages.push({
      id: e.eventId,
      event: e.eventName,
      load: request?.load ?? -1,
    });
  });
  return record;
}

/**
 * A starter of fiwi with the test's rig file, state and control dir; every
 * fiwi still running is stopped (SIGTERM) when `stack` is disposed.
 */
function fiwiStarter(
  stack: AsyncDisposableStack,
  dir: string,
): (args: string[]) => Running {
  const env = {
    XDG_STATE_HOME: `${dir}/state`,
    FIWI_CONTROL_DIR: `${dir}/cm`,
    NO_COLOR: "1",
  };
  const running = new Set<Running>();
  stack.defer(async () => {
    for (const p of running) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* ended already */ }
    }
    await Promise.allSettled([...running].map((p) => p.done));
  });
  // `--rig` with its path puts the marker on every fiwi's command line.
  return ([subcommand, ...args]) => {
    const rigFile = `${dir}/rigs.yaml`;
    const p = startFiwi([subcommand, "--rig", rigFile, ...args], {
      cwd: dir,
      env,
    });
    running.add(p);
    p.done.finally(() => running.delete(p)).catch(() => {});
    return p;
  };
}

/**
 * Start the fixture; `token` (a `marker()` of `_sh.ts`) goes into its dir's
 * name and so into every process it starts.
 */
export async function startFixture(token: string): Promise<Fixture> {
  const stack = new AsyncDisposableStack();
  try {
    const rig = stack.use(await startLoopbackRig());
    const lone = stack.use(await startLoopbackRig());
    const dir = await Deno.makeTempDir({ prefix: `fd-${token}-` });
    stack.defer(() => Deno.remove(dir, { recursive: true }));
    await Deno.writeTextFile(`${dir}/rigs.yaml`, rigYaml(rig, lone, token));
    await Deno.mkdir(`${dir}/state/fiwi`, { recursive: true, mode: 0o700 });
    const db = `${dir}/state/fiwi/state.db`;
    // Masters outlive each fiwi (as for a user); they are ended here, by
    // their sockets in the test's own control dir.
    stack.defer(() => closeMasters(dir));
    const fiwi = fiwiStarter(stack, dir);
    const dashboard = fiwi([
      "dashboard",
      "--port",
      "0",
      "--probe-interval",
      `${PROBE_MS / 1000}s`,
      "--consoles",
    ]);
    await dashboard.waitFor(URL_LINE);
    const url = URL_LINE.exec(dashboard.stdout())![0];
    const watch = stack.use(await watchSamples(db));

    const browser = stack.use(
      await launchBrowser({ width: 1000, height: 600 }),
    );
    const tab = await browser.newPage();
    const pageErrors: string[] = [];
    tab.on("pageerror", (e) => pageErrors.push(String(e)));
    const stream = await recordEventStream(tab);
    await tab.goto(url);
    await waitInPage(tab, "the first snapshot applied", page.ready, null);
    const moved = stack.move();
    return {
      dir,
      rig,
      lone,
      db,
      watch,
      url,
      browser,
      page: tab,
      ...stream,
      pageErrors,
      fiwi,
      async samples(command) {
        await using store = await StateStore.open(db);
        return store.samples({ command });
      },
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (e) {
    await stack.disposeAsync();
    throw e;
  }
}

/** This run's processes left, here and (as the node user) on the nodes. */
export async function leftRunning(token: string): Promise<number> {
  const here = await countCarrying(token);
  if (Deno.uid() !== 0) return here;
  const r = await run("pgrep", ["-c", "-u", NODE_USER, "-f", token]);
  return here + Number(r.stdout.trim() || "0");
}
