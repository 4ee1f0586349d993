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
//
// The screenshot goes to the test's temp dir; to refresh the README's image
// (needs pngquant):
//   FIWI_SCREENSHOT_TO=docs/dashboard.png deno test -P=dev tests/dashboard_browser_test.ts

import { assert, assertEquals } from "jsr:@std/assert@^1";
import { StateStore } from "../mod.ts";
import { browserSkipReason, screenshot, waitInPage } from "./_browser.ts";
import {
  type Fixture,
  leftRunning,
  POLL,
  PROBE_MS,
  SHOW_MARKUP,
  startFixture,
  XSS,
} from "./_dashboard_fixture.ts";
import * as page from "./_dashboard_page.ts";
import { countCarrying, marker, missing } from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

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
  // From the moment a tick's samples were in the store (seen by a reader
  // of it) to the redraw that has them.
  await f.watch.seen(Math.max(...samples.map((s) => s.rowId)));
  for (const [tick, group] of groupBy(samples, (s) => s.tick)) {
    const newest = Math.max(...group.map((s) => s.rowId));
    const recorded = Math.max(
      ...group.map((s) => f.watch.seenAt.get(s.rowId)!),
    );
    const drawn = draws.find((d) => d.lastRow >= newest);
    if (!drawn) {
      throw new Error(`tick ${tick} (rows up to ${newest}) was never drawn`);
    }
    const ms = drawn.at - recorded;
    assert(
      ms <= TICK_TO_POINT_MS,
      `tick ${tick}: drawn ${ms} ms after its samples were recorded (bound ${TICK_TO_POINT_MS} ms)`,
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
