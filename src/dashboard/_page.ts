/**
 * The page and its assets. The server builds HTML in one place, the
 * {@linkcode html} tag below, which escapes every value put into it; the
 * page's script puts everything else (node names, outputs, console lines,
 * commands) into the DOM as text (`textContent`), never as HTML.
 *
 * uPlot is served by this server, never from a CDN: its files are imported
 * as text from the npm package (`with { type: "text" }`), so they are part
 * of the module graph. `deno install`, `deno cache` and `deno compile`
 * fetch and keep them with the rest of fiwi, and the dashboard works
 * offline afterwards, without reading node_modules or the npm cache at run
 * time (and without a read permission for them).
 *
 * @module
 */

import uplotJs from "npm:uplot@^1.6.32/dist/uPlot.iife.min.js" with {
  type: "text",
};
import uplotCss from "npm:uplot@^1.6.32/dist/uPlot.min.css" with {
  type: "text",
};
import appJs from "./app.js" with { type: "text" };
import appCss from "./app.css" with { type: "text" };

/** HTML that {@linkcode html} made: inserted as it is. */
export class SafeHtml {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  toString(): string {
    return this.#text;
  }
}

/** `text` with `& < > " '` as character references: safe in content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * The one place HTML is made: every interpolated value is escaped, except
 * what this tag made itself (arrays are joined, each item likewise).
 */
export function html(
  strings: TemplateStringsArray,
  ...values: unknown[]
): SafeHtml {
  const part = (v: unknown): string =>
    v instanceof SafeHtml
      ? v.toString()
      : Array.isArray(v)
      ? v.map(part).join("")
      : escapeHtml(String(v ?? ""));
  return new SafeHtml(
    strings.reduce((out, s, i) => out + part(values[i - 1]) + s),
  );
}

/** A static asset: its body and content type. */
export interface Asset {
  body: string;
  type: string;
}

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** The page's assets by path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/app.js", { body: appJs, type: JS }],
  ["/app.css", { body: appCss, type: CSS }],
  ["/uplot.js", { body: uplotJs, type: JS }],
  ["/uplot.css", { body: uplotCss, type: CSS }],
]);

/** What the page's head and header show. */
export interface PageInfo {
  /** The rig's name. */
  rig: string;
  /** The rig's description. */
  description: string;
  /** The access token, carried in the asset URLs (null: none). */
  token: string | null;
  /** Whether console tails are shown. */
  consoles: boolean;
}

/** The page: a skeleton the script fills from `/events`. */
export function pageHtml(info: PageInfo): string {
  const q = info.token === null
    ? ""
    : `?token=${encodeURIComponent(info.token)}`;
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>fiwi · ${info.rig}</title>
        <link rel="stylesheet" href="/uplot.css${q}">
        <link rel="stylesheet" href="/app.css${q}">
        <script src="/uplot.js${q}" defer></script>
        <script src="/app.js${q}" defer></script>
      </head>
      <body>
        <header>
          <h1>fiwi · <span id="rig">${info.rig}</span></h1>
          <p id="description">${info.description}</p>
          <span id="status" data-sse="closed">connecting</span>
        </header>
        <main>
          <section id="nodes">
            <h2>Nodes</h2>
            <div id="grid"></div>
          </section>
          <section id="values">
            <h2>Polled values</h2>
            <div id="charts"></div>
            <div id="texts"></div>
            <p class="empty"
              id="no-values">No poll samples yet: run <code>fiwi poll</code>.</p>
          </section>
          <section id="runs">
            <h2>Invocations</h2>
            <ul id="invocations"></ul>
          </section>
          <section id="console-tails" ${info.consoles ? "" : html`
            hidden
          `}>
            <h2>Consoles</h2>
            <div id="consoles"></div>
          </section>
        </main>
      </body>
    </html>
  `.toString().trimStart();
}
