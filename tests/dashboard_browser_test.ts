// `fiwi dashboard` in a real browser: headless Chromium (tests/_browser.ts)
// on the page of a `fiwi dashboard --port 0` started as a real process,
// over the loopback rig and a state store of the test's own, while `fiwi
// poll` and `fiwi run` in other processes record into that store. The page
// is read through the hooks of "## Dashboard DOM" in the state contract
// (data-node, data-chart, ...); the event stream through the browser's own
// DevTools protocol, so a reload is checked event by event.
//
// Node n3 has an sshd of its own (a second loopback rig), so one step can
// stop it and see n3 alone go down. Every process of the test carries one
// marker (its temp dir, its control dir, its node-side console), counted
// after teardown: nothing may be left, also when a step fails.

import { assert, assertEquals } from "jsr:@std/assert@^1";
import type { CDPSession, Page } from "npm:puppeteer-core@^24";
import { type SampleRecord, StateStore } from "../mod.ts";
import {
  type Browser,
  browserSkipReason,
  launchBrowser,
  screenshot,
  waitInPage,
} from "./_browser.ts";
import { type Running, startFiwi } from "./_cli_harness.ts";
import * as page from "./_dashboard_page.ts";
import {
  countCarrying,
  type LoopbackRig,
  marker,
  missing,
  NODE_USER,
  startLoopbackRig,
} from "./_loopback.ts";
import { closeMasters, run } from "./_sh.ts";
import { settlesToZero } from "./_wait.ts";

/** The dashboard's probe interval here: short, so "down" comes soon. */
const PROBE_MS = 1000;
/**
 * What the page may add to the probe's two intervals before a stopped
 * node shows down: the event's way through the stream and a redraw.
 */
const DELIVERY_MS = 300;
/** A poll tick's points must be drawn within this of the tick. */
const TICK_TO_POINT_MS = 2000;

const SKIP = missing("sshd-control", "node-is-local") ?? browserSkipReason();
if (SKIP !== null) {
  console.warn(`skipped: the dashboard browser tests: ${SKIP}`);
}

// ---------------------------------------------------------------------------
// The fixture: two loopback sshds, a rig file, a dashboard, a browser.

/** One SSE message the browser received. */
interface SseMessage {
  id: string;
  event: string;
  /** Index of the page load it arrived in (0: the first, 1: after a reload). */
  load: number;
}

/** One request of the page for its event stream. */
interface EventRequest {
  requestId: string;
  url: string;
  /** Its Last-Event-ID header. */
  lastEventId: string | null;
  /** Index of the page load that made it. */
  load: number;
}

/** Everything a step needs; disposing stops all of it. */
interface Fixture extends AsyncDisposable {
  /** Scratch dir, its path carrying the test's marker. */
  dir: string;
  /** The loopback rig of n1 and n2. */
  rig: LoopbackRig;
  /** The loopback rig of n3 alone (its sshd is stopped by one step). */
  lone: LoopbackRig;
  /** The state store file every fiwi here records into. */
  db: string;
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
const XSS = [
  `<img src=x onerror="window.__xss=1">`,
  `<script>window.__xss=2</script>`,
];

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** A command printing the markup: its output is text, the page's to show. */
const SHOW_MARKUP = `printf '%s\\n' ${XSS.map(shq).join(" ")}`;

/**
 * The polled command: a wave around each node's `base` (its `vars:`), so
 * the chart (and the README's screenshot) shows two distinct lines.
 */
const POLL =
  "awk -v b={base} -v t=$(date +%s) 'BEGIN { print b + 4 * sin(t / 2) }'";

/** The dashboard's URL in what it printed. */
const URL_LINE = /http:\/\/127\.0\.0\.1:\d+\/\S*/;

async function startFixture(token: string): Promise<Fixture> {
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
    const fiwi = ([subcommand, ...args]: string[]) => {
      const p = startFiwi([subcommand, "--rig", `${dir}/rigs.yaml`, ...args], {
        cwd: dir,
        env,
      });
      running.add(p);
      p.done.finally(() => running.delete(p)).catch(() => {});
      return p;
    };
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

    const browser = stack.use(
      await launchBrowser({ width: 1000, height: 600 }),
    );
    const tab = await browser.newPage();
    const pageErrors: string[] = [];
    tab.on("pageerror", (e) => pageErrors.push(String(e)));
    const messages: SseMessage[] = [];
    const eventRequests: EventRequest[] = [];
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
      eventRequests.push({
        requestId: e.requestId,
        url: e.request.url,
        lastEventId: header?.[1] ?? null,
        load,
      });
    });
    cdp.on("Network.eventSourceMessageReceived", (e) => {
      const request = eventRequests.find((r) => r.requestId === e.requestId);
      messages.push({
        id: e.eventId,
        event: e.eventName,
        load: request?.load ?? -1,
      });
    });
    await tab.goto(url);
    await waitInPage(tab, "the first snapshot applied", page.ready, null);
    const moved = stack.move();
    return {
      dir,
      rig,
      lone,
      db,
      url,
      browser,
      page: tab,
      messages,
      eventRequests,
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

// ---------------------------------------------------------------------------
// What a step checks, each in a function of its own.

async function gridShowsEveryNode(f: Fixture): Promise<void> {
  const nodes = await waitInPage(
    f.page,
    "a tile per node, each up",
    page.tilesAll,
    [3, "up"] as const,
  );
  assertEquals(nodes, ["n1", "n2", "n3"]);
}

async function runShowsInInvocations(f: Fixture): Promise<void> {
  const command = "sleep 1.5; echo deployed on {name}";
  const p = f.fiwi(["run", "-w", "n1,n2", command]);
  const shownAs = (state: string) =>
    waitInPage(
      f.page,
      `the run in the invocations list, its state "${state}"`,
      page.invocation,
      [command, state] as const,
    );
  // Seen while it runs, then ended: the list follows the other process.
  await shownAs("running");
  const r = await p.done;
  assertEquals(r.code, 0, r.stderr);
  const shown = await shownAs("0");
  await using store = await StateStore.open(f.db);
  const inv = store.invocations({ limit: 20 }).find((i) =>
    i.command === command
  );
  if (!inv) throw new Error(`the run "${command}" is not in the store`);
  assertEquals(shown, { id: inv.id, where: inv.nodes, ok: "2", failed: "0" });
}

/** `fiwi poll` of a varying number on n1 and n2, every second. */
const pollArgs = (ticks: number) => [
  "poll",
  "-i",
  "1s",
  "--count",
  String(ticks),
  "-w",
  "n1,n2",
  POLL,
];

async function pollDrawsEachTick(f: Fixture): Promise<void> {
  assert(await f.page.evaluate(page.observeDraws), "the page has no #charts");
  const ticks = 4;
  const r = await f.fiwi(pollArgs(ticks)).done;
  assertEquals(r.code, 0, r.stderr);
  const samples = await f.samples(POLL);
  assertEquals(samples.length, 2 * ticks, "two nodes, every tick recorded");
  // Every point of the poll drawn: none lost, none twice.
  const { chart, points } = await waitInPage(
    f.page,
    `all ${samples.length} points of the poll drawn`,
    page.chartWith,
    [POLL, samples.length] as const,
  );
  assertEquals(points, samples.length, "points drawn twice");
  const draws = (await f.page.evaluate(page.draws))
    .filter((d) => d.chart === chart);
  for (const [tick, group] of groupBy(samples, (s) => s.tick)) {
    // One poll: its tick number names the tick.
    const newest = Math.max(...group.map((s) => s.rowId));
    const at = Math.max(...group.map((s) => s.at.getTime()));
    const drawn = draws.find((d) => d.lastRow >= newest);
    if (!drawn) {
      throw new Error(`tick ${tick} (rows up to ${newest}) was never drawn`);
    }
    const ms = drawn.at - at;
    assert(
      ms <= TICK_TO_POINT_MS,
      `tick ${tick}: drawn ${ms} ms after its samples (bound ${TICK_TO_POINT_MS} ms)`,
    );
  }
}

async function reloadResumes(f: Fixture): Promise<void> {
  const earlier = (await f.samples(POLL)).length;
  const ticks = 5;
  const p = f.fiwi(pollArgs(ticks));
  // Reload in the middle of the poll: ticks land while no page listens.
  await waitInPage(
    f.page,
    "the poll's first points",
    page.chartWith,
    [POLL, earlier + 1] as const,
  );
  const before = await f.page.evaluate(page.lastEventId);
  const requestsBefore = f.eventRequests.length;
  await f.page.reload();
  await waitInPage(f.page, "the reloaded page ready", page.ready, null);
  const r = await p.done;
  assertEquals(r.code, 0, r.stderr);
  // The chart holds this poll's points and the earlier poll's.
  const samples = await f.samples(POLL);
  assertEquals(samples.length, earlier + 2 * ticks);
  const { points } = await waitInPage(
    f.page,
    `all ${samples.length} points of the polls drawn after the reload`,
    page.chartWith,
    [POLL, samples.length] as const,
  );
  assertEquals(points, samples.length, "points drawn twice");

  // The first stream request after the reload asked to resume from the
  // last event applied before it.
  const resumed = f.eventRequests[requestsBefore];
  assert(resumed, "the reloaded page opened no event stream");
  const asked = resumed.lastEventId ??
    new URL(resumed.url).searchParams.get("lastEventId");
  assertEquals(asked, before, "the reloaded page resumes from its last id");
  // Event by event: up to that id before the reload, the ones after it
  // after the reload, each once. The reloaded page may get the state to
  // draw as a snapshot without an id (the events after its id follow); a
  // snapshot with an id would be a fresh start, not a resume.
  const after = f.messages.filter((m) => m.load >= 1);
  const fresh = after.filter((m) => m.event === "snapshot" && m.id !== "");
  assertEquals(fresh, [], "the reloaded page started afresh");
  const upTo = f.messages.findIndex((m) => m.id === before);
  assert(upTo >= 0, `id ${before} never arrived`);
  const ids = [...f.messages.slice(0, upTo + 1), ...after]
    .map((m) => m.id).filter((id) => id !== "");
  assertConsecutive(ids);
}

async function markupShowsAsText(f: Fixture): Promise<void> {
  const r = await f.fiwi([
    "poll",
    "-i",
    "1s",
    "--count",
    "2",
    "-w",
    "n1",
    // Text, not a number: the markup's digits must not become a value.
    "--value",
    "NOMATCH(\\d+)",
    SHOW_MARKUP,
  ]).done;
  assertEquals(r.code, 0, r.stderr);
  const shown = await waitInPage(
    f.page,
    "the polled markup and the console's, as text",
    page.textsOf,
    [SHOW_MARKUP, "n1", XSS] as const,
  );
  for (const x of XSS) {
    assert(shown.polled.includes(x) && shown.console.includes(x));
  }
  assertEquals(await f.page.evaluate(page.markupEffects), {
    xss: null,
    elements: 0,
  });
}

async function stoppedNodeGoesDown(f: Fixture): Promise<void> {
  await f.lone.stop();
  const stopped = Date.now();
  const bound = 2 * PROBE_MS + DELIVERY_MS;
  const downAt = await waitInPage(
    f.page,
    "n3 down",
    page.tileIn,
    ["n3", "down"] as const,
    { timeout: bound + 5000 },
  );
  const ms = downAt - stopped;
  assert(
    ms <= bound,
    `n3 showed down ${ms} ms after its sshd stopped (bound: two probe intervals of ${PROBE_MS} ms and ${DELIVERY_MS} ms for the page)`,
  );
  assertEquals(await f.page.evaluate(page.tiles), [
    "n1=up",
    "n2=up",
    "n3=down",
  ]);
}

async function savesScreenshot(f: Fixture): Promise<void> {
  const path = `${f.dir}/dashboard.png`;
  const to = Deno.env.get("FIWI_SCREENSHOT_TO");
  const size = await screenshot(
    f.page,
    path,
    to ? { optimizedTo: to } : {},
  );
  const head = (await Deno.readFile(to ?? path)).subarray(0, 24);
  const view = new DataView(head.buffer, head.byteOffset);
  assertEquals([...head.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
  assertEquals([view.getUint32(16), view.getUint32(20)], [1000, 600]);
  assert(size > 1000, `a ${size}-byte screenshot shows nothing`);
}

// ---------------------------------------------------------------------------
// Small pure helpers.

function groupBy<T, K>(xs: readonly T[], key: (x: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    out.set(k, [...(out.get(k) ?? []), x]);
  }
  return out;
}

/** `EPOCH-SEQ` ids of one epoch, each one more than the one before. */
function assertConsecutive(ids: readonly string[]): void {
  const parsed = ids.map((id) => /^([0-9a-z]+)-(\d+)$/.exec(id));
  assert(parsed.every((m) => m !== null), `odd ids: ${ids.join(" ")}`);
  const epochs = new Set(parsed.map((m) => m![1]));
  assertEquals(epochs.size, 1, `ids of several server runs: ${ids.join(" ")}`);
  const seqs = parsed.map((m) => Number(m![2]));
  const gaps = seqs.slice(1).flatMap((s, i) =>
    s === seqs[i] + 1 ? [] : [`${seqs[i]} then ${s}`]
  );
  assertEquals(gaps, [], "events lost or repeated");
}

/** This run's processes left, here and (as the node user) on the nodes. */
async function leftRunning(token: string): Promise<number> {
  const here = await countCarrying(token);
  if (Deno.uid() !== 0) return here;
  const r = await run("pgrep", ["-c", "-u", NODE_USER, "-f", token]);
  return here + Number(r.stdout.trim() || "0");
}

// ---------------------------------------------------------------------------

Deno.test({
  name:
    "fiwi dashboard in Chromium follows the rig, other fiwi processes and reloads, and shows node text as text",
  ignore: SKIP !== null,
  async fn(t) {
    const token = marker();
    let browserMarker = "";
    {
      await using f = await startFixture(token);
      browserMarker = f.browser.marker;
      await t.step(
        "the grid shows every node of the rig",
        () => gridShowsEveryNode(f),
      );
      await t.step(
        "a fiwi run in another process appears in the invocations list",
        () => runShowsInInvocations(f),
      );
      await t.step(
        "a fiwi poll in another process draws its points within 2 s of each tick",
        () => pollDrawsEachTick(f),
      );
      await t.step(
        "a reload resumes the stream: no event lost or repeated",
        () => reloadResumes(f),
      );
      await t.step(
        "markup printed by a node shows literally and runs nothing",
        () => markupShowsAsText(f),
      );
      await t.step(
        "a node whose sshd stops turns down within two probe intervals",
        () => stoppedNodeGoesDown(f),
      );
      await t.step(
        "a screenshot of the page is saved",
        () => savesScreenshot(f),
      );
      assertEquals(f.pageErrors, [], "errors thrown in the page");
    }
    assertEquals(
      await settlesToZero(() => leftRunning(token)),
      0,
      "processes of the test left running",
    );
    assertEquals(
      await settlesToZero(() => countCarrying(browserMarker)),
      0,
      "browser processes left running",
    );
  },
});
