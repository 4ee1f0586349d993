/**
 * What the browser tests and the dashboard benchmark read of the dashboard's
 * page, in one place: functions that run in the page (pass them to
 * `page.evaluate` or `waitInPage` of `_browser.ts`) and read it through the hooks of
 * "## Dashboard DOM" in the state contract (`data-node`, `data-chart`, ...).
 * Each returns null while what it waits for is not there yet, so it can be
 * waited for as it is.
 *
 * This program is type-checked without the DOM library: the declarations
 * below are this module's own, and the functions run in the page, where
 * the real globals are. They use nothing of this module at run time
 * (puppeteer sends their source text).
 *
 * @module
 */

/** An element, as far as the functions here read it. */
interface DomEl {
  readonly dataset: Record<string, string | undefined>;
  readonly textContent: string | null;
  querySelector(selector: string): DomEl | null;
  querySelectorAll(selector: string): ArrayLike<DomEl>;
}
declare const document: {
  readonly body: DomEl;
  querySelector(selector: string): DomEl | null;
  querySelectorAll(selector: string): ArrayLike<DomEl>;
};
declare const MutationObserver: new (callback: () => void) => {
  observe(target: DomEl, options: Record<string, boolean>): void;
};
declare const performance: {
  now(): number;
  getEntriesByType(type: string): ArrayLike<{
    readonly name: string;
    readonly responseEnd: number;
    readonly transferSize: number;
  }>;
};

/** One redraw of a chart, seen by {@linkcode observeDraws}. */
export interface Draw {
  /** The chart's command (`data-chart`). */
  chart: string;
  /** rowId of the newest sample drawn (`data-last-row`). */
  lastRow: number;
  /** Points drawn, all series (`data-points`). */
  points: number;
  /** When: `Date.now()` in the page. */
  at: number;
}

/** What the functions here keep on the page's `globalThis`. */
export interface PageState {
  __draws?: Draw[];
  __xss?: unknown;
}

/** The page applied its first snapshot (`body[data-ready]`): true, or null. */
export function ready(): true | null {
  return document.body.dataset.ready === "1" ? true : null;
}

/** The grid's tiles as `NAME=STATE`, sorted. */
export function tiles(): string[] {
  return Array.from(document.querySelectorAll("#grid [data-node]"))
    .map((t) => `${t.dataset.node}=${t.dataset.state}`).sort();
}

/** The tiles when there are `n`, every one in `state`; else null. */
export function tilesAll(
  [n, state]: readonly [number, string],
): string[] | null {
  const all = Array.from(document.querySelectorAll("#grid [data-node]"));
  return all.length === n && all.every((t) => t.dataset.state === state)
    ? all.map((t) => t.dataset.node ?? "").sort()
    : null;
}

/** `Date.now()` once the tile of `node` is in `state`; else null. */
export function tileIn(
  [node, state]: readonly [string, string],
): number | null {
  const tile = document.querySelector(`#grid [data-node="${node}"]`);
  return tile?.dataset.state === state ? Date.now() : null;
}

/** An invocation as its list item shows it. */
export interface ShownInvocation {
  id: string;
  where: string;
  ok: string;
  failed: string;
}

/**
 * The invocation whose command contains `tag` once its `.state` reads
 * `state` (`running` or an exit code); else null.
 */
export function invocation(
  [tag, state]: readonly [string, string],
): ShownInvocation | null {
  const li = Array.from(document.querySelectorAll("#invocations li"))
    .find((e) => (e.querySelector(".what")?.textContent ?? "").includes(tag));
  const text = (sel: string) => li?.querySelector(sel)?.textContent ?? "";
  if (!li || text(".state") !== state) return null;
  return {
    id: li.dataset.id ?? "",
    where: text(".where"),
    ok: text(".ok"),
    failed: text(".failed"),
  };
}

/**
 * Start recording every redraw of every chart (a change of its
 * `data-last-row`) with the time it happened, in `globalThis.__draws`;
 * false when the page has no `#charts`.
 */
export function observeDraws(): boolean {
  const state = globalThis as unknown as PageState;
  const draws: Draw[] = state.__draws = [];
  const seen = new Map<string, string>();
  const look = () => {
    const now = Date.now();
    for (const el of Array.from(document.querySelectorAll("[data-chart]"))) {
      const chart = el.dataset.chart ?? "";
      const row = el.dataset.lastRow;
      if (row === undefined || seen.get(chart) === row) continue;
      seen.set(chart, row);
      draws.push({
        chart,
        lastRow: Number(row),
        points: Number(el.dataset.points ?? "0"),
        at: now,
      });
    }
  };
  const charts = document.querySelector("#charts");
  if (charts === null) return false;
  new MutationObserver(look).observe(charts, {
    subtree: true,
    childList: true,
    attributes: true,
  });
  look();
  return true;
}

/** The redraws {@linkcode observeDraws} recorded so far. */
export function draws(): Draw[] {
  return (globalThis as unknown as PageState).__draws ?? [];
}

/** A chart as its hooks show it. */
export interface ShownChart {
  chart: string;
  points: number;
  lastRow: number;
}

/**
 * The chart whose command contains `tag`, once it has drawn at least
 * `points` points; else null.
 */
export function chartWith(
  [tag, points]: readonly [string, number],
): ShownChart | null {
  const el = Array.from(document.querySelectorAll("[data-chart]"))
    .find((e) => (e.dataset.chart ?? "").includes(tag));
  const drawn = Number(el?.dataset.points ?? "-1");
  if (!el || drawn < points) return null;
  return {
    chart: el.dataset.chart ?? "",
    points: drawn,
    lastRow: Number(el.dataset.lastRow ?? "0"),
  };
}

/**
 * True once the chart whose command contains `tag` has drawn rowId `row`
 * or a newer one (`data-last-row`); else null.
 */
export function drawnUpTo(
  [tag, row]: readonly [string, number],
): true | null {
  const el = Array.from(document.querySelectorAll("[data-chart]"))
    .find((e) => (e.dataset.chart ?? "").includes(tag));
  return Number(el?.dataset.lastRow ?? "-1") >= row ? true : null;
}

/** The id of the last event the page applied (`#status`), or "". */
export function lastEventId(): string {
  return document.querySelector("#status")?.dataset.lastEventId ?? "";
}

/**
 * `performance.now()` (ms since the navigation began) once the history is
 * drawn in (`body[data-history]`) and the chart whose command contains
 * `tag` shows `points` points; else null.
 */
export function historyDrawn(
  [tag, points]: readonly [string, number],
): number | null {
  if (document.body.dataset.history !== "1") return null;
  const el = Array.from(document.querySelectorAll("[data-chart]"))
    .find((e) => (e.dataset.chart ?? "").includes(tag));
  return Number(el?.dataset.points ?? "-1") === points
    ? performance.now()
    : null;
}

/** How the page fetched its history (`/api/samples`), from Resource Timing. */
export interface HistoryFetch {
  /** Requests made. */
  requests: number;
  /** When the last response ended, ms since the navigation began. */
  lastResponseEnd: number;
  /** Bytes transferred, all requests. */
  bytes: number;
}

/** The page's `/api/samples` requests so far. */
export function historyFetch(): HistoryFetch {
  const entries = Array.from(performance.getEntriesByType("resource"))
    .filter((e) => e.name.includes("/api/samples"));
  return {
    requests: entries.length,
    lastResponseEnd: Math.max(0, ...entries.map((e) => e.responseEnd)),
    bytes: entries.reduce((n, e) => n + e.transferSize, 0),
  };
}

/** The latest polled text and the console text of one node. */
export interface ShownTexts {
  polled: string;
  console: string;
}

/**
 * The text `node` last gave the poll whose command contains `tag`, and its
 * console's text, once both contain every one of `want`; else null.
 */
export function textsOf(
  [tag, node, want]: readonly [string, string, readonly string[]],
): ShownTexts | null {
  const table = Array.from(document.querySelectorAll("[data-texts]"))
    .find((e) => (e.dataset.texts ?? "").includes(tag));
  const polled = table?.querySelector(`[data-text-node="${node}"] td.text`)
    ?.textContent ?? "";
  const console = document.querySelector(`pre[data-console="${node}"]`)
    ?.textContent ?? "";
  return want.every((x) => polled.includes(x) && console.includes(x))
    ? { polled, console }
    : null;
}

/**
 * What node-supplied markup could have done: `globalThis.__xss` (null when
 * unset) and the `img` and `script` elements inside the parts of the page
 * that show node text.
 */
export function markupEffects(): { xss: unknown; elements: number } {
  const parts = ["#grid", "#charts", ".texts", "#consoles", "#invocations"];
  return {
    xss: (globalThis as unknown as PageState).__xss ?? null,
    elements: document.querySelectorAll(
      parts.map((p) => `${p} img, ${p} script`).join(", "),
    ).length,
  };
}
