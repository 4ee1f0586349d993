// The fiwi dashboard page. It follows /events (Server-Sent Events; the
// browser's EventSource resumes with Last-Event-ID by itself), loads the
// charts' history from /api/samples in pages, and draws with uPlot.
//
// Every string that came from a node, the rig file or the store enters the
// DOM through text() (textContent) or as an attribute value
// (setAttribute / dataset), never as HTML: this file has no HTML sink at
// all, and the server's Content-Security-Policy refuses inline script.
//
// One file over the usual length on purpose: the page loads it as it is,
// without a bundler or modules, next to uPlot's own script.
/* global uPlot */
"use strict";

(() => {
  const token = new URLSearchParams(location.search).get("token");
  const MAX_CONSOLE_LINES = 500;
  const MAX_INVOCATIONS = 100;
  const CHANGED_MS = 10_000;
  const HISTORY_PAGE = 20_000;
  const COLORS = [
    "#0969da",
    "#cf222e",
    "#1a7f37",
    "#8250df",
    "#bc4c00",
    "#0a7b83",
    "#bf3989",
    "#57606a",
    "#9a6700",
    "#1b1f24",
  ];

  /** The URL of `path` with the token and `params` as query. */
  function url(path, params = {}) {
    const u = new URL(path, location.href);
    if (token) u.searchParams.set("token", token);
    for (const [k, v] of Object.entries(params)) {
      u.searchParams.set(k, String(v));
    }
    return u.pathname + u.search;
  }

  /** The one way text enters the page. */
  function text(node, value) {
    node.textContent = value === null || value === undefined
      ? ""
      : String(value);
    return node;
  }

  /** A new element with attributes (values set as attribute text). */
  function el(tag, attrs = {}) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
    return e;
  }

  const $ = (id) => document.getElementById(id);
  const pad = (n) => String(n).padStart(2, "0");
  function clock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function when(ms) {
    const d = new Date(ms);
    const today = new Date().toDateString() === d.toDateString();
    return today
      ? clock(ms)
      : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${
        clock(ms)
      }`;
  }

  // ---- the node grid ----
  const tiles = new Map();
  let nodeOrder = new Map();

  function tile(t) {
    let e = tiles.get(t.node);
    if (!e) {
      e = el("div", { class: "tile", "data-node": t.node });
      for (const c of ["name", "state", "groups", "outcome", "power"]) {
        e.append(el("span", { class: c }));
      }
      e.append(el("span", { class: "failures" }));
      tiles.set(t.node, e);
      $("grid").append(e);
    }
    e.dataset.state = t.state;
    text(e.querySelector(".name"), t.node);
    text(e.querySelector(".state"), t.state);
    text(e.querySelector(".groups"), t.groups.join(" "));
    text(e.querySelector(".outcome"), t.outcome ?? "");
    const power = e.querySelector(".power");
    power.dataset.power = t.power ?? "";
    text(power, t.power ? `power ${t.power}` : "");
    text(e.querySelector(".failures"), t.failures);
    e.classList.toggle("failing", t.failures > 0);
    e.title = t.error ?? "";
  }

  // ---- the invocations ----
  const invocations = new Map();

  function invocation(v) {
    let li = invocations.get(v.id);
    if (!li) {
      li = el("li", { "data-id": v.id });
      for (const c of ["time", "who", "what", "where", "ok", "failed"]) {
        li.append(el("span", { class: c }));
      }
      li.append(el("span", { class: "state" }));
      invocations.set(v.id, li);
    }
    li.dataset.rowid = v.rowId;
    li.dataset.subcommand = v.subcommand;
    li.dataset.started = v.startedAt;
    text(li.querySelector(".time"), when(v.startedAt));
    text(li.querySelector(".who"), v.user);
    text(li.querySelector(".what"), `${v.subcommand} ${v.command}`);
    li.querySelector(".what").title = v.command;
    text(li.querySelector(".where"), v.nodes);
    text(li.querySelector(".ok"), v.ok);
    text(li.querySelector(".failed"), v.failed);
    const state = li.querySelector(".state");
    text(state, v.endedAt === null ? "running" : v.exitCode);
    state.classList.toggle("running", v.endedAt === null);
  }

  function orderInvocations() {
    const items = [...invocations.values()]
      .sort((a, b) => Number(b.dataset.started) - Number(a.dataset.started));
    for (const li of items.slice(MAX_INVOCATIONS)) {
      invocations.delete(li.dataset.id);
      li.remove();
    }
    $("invocations").append(...items.slice(0, MAX_INVOCATIONS));
  }

  // ---- charts: one per poll command, one series per node ----

  /**
   * A y-axis label that fits its gutter: uPlot's default shows 5e8 as
   * "500,000,000", cut to "0,000" at the chart's edge.
   */
  function compact(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    for (const [d, s] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= d) return `${+(v / d).toPrecision(3)}${s}`;
    }
    return `${+v.toPrecision(3)}`;
  }
  const charts = new Map();
  let historySeconds = 3600;

  class Chart {
    constructor(command) {
      this.command = command;
      this.xs = [];
      this.keys = new Map(); // "invocation:tick" -> index in xs
      this.nodes = [];
      this.ys = new Map();
      this.points = 0;
      this.lastRow = 0;
      this.plot = null;
      this.rebuild = true;
      this.dirty = false;
      this.div = el("div", { class: "chart", "data-chart": command });
      this.div.append(text(el("h3"), command));
      this.box = el("div");
      this.div.append(this.box);
      $("charts").append(this.div);
    }

    #index(key, x) {
      let i = this.keys.get(key);
      if (i !== undefined) return i;
      i = this.xs.length;
      if (i > 0 && x < this.xs[i - 1]) {
        // Earlier than the newest (another poll, a late page): keep x sorted.
        let lo = 0, hi = i;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (this.xs[mid] <= x) lo = mid + 1;
          else hi = mid;
        }
        i = lo;
        for (const [k, j] of this.keys) if (j >= i) this.keys.set(k, j + 1);
      }
      this.xs.splice(i, 0, x);
      for (const y of this.ys.values()) y.splice(i, 0, null);
      this.keys.set(key, i);
      return i;
    }

    add(node, at, value, inv, tick, rowId) {
      const i = this.#index(`${inv}:${tick}`, at / 1000);
      let y = this.ys.get(node);
      if (!y) {
        y = new Array(this.xs.length).fill(null);
        this.ys.set(node, y);
        this.nodes.push(node);
        const rank = (n) => nodeOrder.get(n) ?? Infinity;
        this.nodes.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
        this.rebuild = true;
      }
      if (y[i] === null) this.points++;
      y[i] = value;
      if (rowId > this.lastRow) this.lastRow = rowId;
      this.dirty = true;
    }

    #trim() {
      const oldest = Date.now() / 1000 - historySeconds;
      let n = 0;
      while (n < this.xs.length && this.xs[n] < oldest) n++;
      if (n < 1024) return; // trim in chunks, not every frame
      this.xs.splice(0, n);
      for (const y of this.ys.values()) {
        this.points -= y.slice(0, n).filter((v) => v !== null).length;
        y.splice(0, n);
      }
      for (const [k, j] of this.keys) {
        if (j < n) this.keys.delete(k);
        else this.keys.set(k, j - n);
      }
    }

    draw() {
      if (!this.dirty) return;
      this.dirty = false;
      this.#trim();
      const data = [this.xs, ...this.nodes.map((n) => this.ys.get(n))];
      if (this.rebuild || !this.plot) {
        this.rebuild = false;
        this.plot?.destroy();
        this.plot = new uPlot(
          {
            width: Math.max(300, this.div.clientWidth - 10),
            height: 240,
            scales: { x: { time: true } },
            axes: [{}, { size: 64, values: (_u, ticks) => ticks.map(compact) }],
            series: [
              {},
              ...this.nodes.map((n, i) => ({
                label: n,
                stroke: COLORS[i % COLORS.length],
                width: 1.5,
                spanGaps: true,
                points: { show: false },
              })),
            ],
            hooks: { draw: [() => this.drawn()] },
          },
          data,
          this.box,
        );
      } else {
        this.plot.setData(data);
      }
    }

    /** After uPlot drew: the hooks the tests and benchmarks time. */
    drawn() {
      this.div.dataset.points = this.points;
      this.div.dataset.lastRow = this.lastRow;
    }

    resize() {
      this.plot?.setSize({
        width: Math.max(300, this.div.clientWidth - 10),
        height: 240,
      });
    }

    destroy() {
      this.plot?.destroy();
      this.div.remove();
    }
  }

  function chart(command) {
    let c = charts.get(command);
    if (!c) charts.set(command, c = new Chart(command));
    return c;
  }

  let frame = 0;
  function scheduleDraw() {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      for (const c of charts.values()) c.draw();
    });
  }
  addEventListener("resize", () => {
    for (const c of charts.values()) c.resize();
  });

  // ---- text values: the latest text per node, highlighted on change ----
  const textTables = new Map();

  function textValue(command, node, value, at, changedAt) {
    let t = textTables.get(command);
    if (!t) {
      const table = el("table", { class: "texts", "data-texts": command });
      table.append(text(el("caption"), command));
      t = { table, rows: new Map() };
      textTables.set(command, t);
      $("texts").append(table);
    }
    let row = t.rows.get(node);
    const before = row ? row.querySelector("td.text").textContent : null;
    if (!row) {
      row = el("tr", { "data-text-node": node });
      row.append(
        text(el("th"), node),
        el("td", { class: "text" }),
        el("td", { class: "at" }),
      );
      t.rows.set(node, row);
      t.table.append(row);
    }
    text(row.querySelector("td.text"), value);
    text(row.querySelector("td.at"), clock(at));
    const changed = before !== null && before !== value ? at : changedAt;
    if (changed && Date.now() - changed < CHANGED_MS) {
      row.classList.add("changed");
      row.dataset.changedAt = changed;
      clearTimeout(row.unchange);
      row.unchange = setTimeout(
        () => row.classList.remove("changed"),
        CHANGED_MS - (Date.now() - changed),
      );
    }
  }

  function applySamples(samples) {
    for (const s of samples) {
      if (s.value !== null) {
        chart(s.command).add(s.node, s.at, s.value, s.inv, s.tick, s.rowId);
      } else textValue(s.command, s.node, s.text, s.at, null);
    }
    $("no-values").hidden = charts.size + textTables.size > 0;
    scheduleDraw();
  }

  // ---- console tails ----
  const consoles = new Map();

  function consoleLines(node, kind, lines) {
    const key = `${node}\0${kind}`;
    let c = consoles.get(key);
    if (!c) {
      const box = el("div", { class: "console" });
      const pre = el("pre", { "data-console": node, "data-kind": kind });
      box.append(text(el("h3"), `${node} (${kind})`), pre);
      $("consoles").append(box);
      c = { box, pre, lines: [] };
      consoles.set(key, c);
    }
    for (const l of lines) c.lines.push(`${clock(l.at)} ${l.text}`);
    if (c.lines.length > MAX_CONSOLE_LINES) {
      c.lines.splice(0, c.lines.length - MAX_CONSOLE_LINES);
    }
    const follow = c.pre.scrollTop + c.pre.clientHeight >=
      c.pre.scrollHeight - 4;
    text(c.pre, c.lines.join("\n"));
    if (follow) c.pre.scrollTop = c.pre.scrollHeight;
  }

  // ---- the stream ----
  let generation = 0;
  let loading = false;
  let buffered = [];

  function reset() {
    for (const c of charts.values()) c.destroy();
    charts.clear();
    for (const t of textTables.values()) t.table.remove();
    textTables.clear();
    for (const c of consoles.values()) c.box.remove();
    consoles.clear();
    for (const li of invocations.values()) li.remove();
    invocations.clear();
  }

  function applySnapshot(s) {
    reset();
    nodeOrder = new Map(s.nodes.map((t, i) => [t.node, i]));
    for (const [name, e] of tiles) {
      if (!nodeOrder.has(name)) {
        e.remove();
        tiles.delete(name);
      }
    }
    for (const t of s.nodes) tile(t);
    for (const v of s.invocations) invocation(v);
    orderInvocations();
    for (const t of s.texts) {
      textValue(t.command, t.node, t.text, t.at, t.changedAt);
    }
    for (const c of s.consoles) consoleLines(c.node, c.kind, c.lines);
    historySeconds = s.history / 1000;
    document.body.dataset.ready = "1";
    loadHistory(s);
  }

  async function loadHistory(s) {
    const mine = ++generation;
    loading = true;
    buffered = [];
    delete document.body.dataset.history;
    let after = 0;
    try {
      for (;;) {
        const response = await fetch(url("/api/samples", {
          since: s.historySince,
          afterRowId: after,
          untilRowId: s.sampleRow,
          limit: HISTORY_PAGE,
        }));
        if (!response.ok) throw new Error(`history: ${response.status}`);
        const page = await response.json();
        if (mine !== generation) return; // a newer snapshot took over
        for (const [rowId, at, n, c, value, inv, tick] of page.rows) {
          chart(page.commands[c]).add(
            page.nodes[n],
            at,
            value,
            page.invs[inv],
            tick,
            rowId,
          );
        }
        if (page.next === null) break;
        after = page.next;
      }
    } catch (e) {
      console.warn("fiwi dashboard: chart history not loaded:", e);
    }
    if (mine !== generation) return;
    loading = false;
    applySamples(buffered.filter((x) => x.rowId > s.sampleRow));
    buffered = [];
    document.body.dataset.history = "1";
  }

  function status(state) {
    const s = $("status");
    s.dataset.sse = state;
    text(s, state === "open" ? "live" : "reconnecting");
  }

  // Event ids are EPOCH-SEQ. After a snapshot, events it already holds
  // (replayed after a reload) are counted but not applied again.
  const LAST_ID = "fiwi-dashboard-last-event-id";
  let snapshotId = null;
  const seqOf = (id) => {
    const m = /^([0-9a-z]+)-(\d+)$/.exec(id ?? "");
    return m ? { epoch: m[1], seq: Number(m[2]) } : null;
  };
  function inSnapshot(id) {
    const a = seqOf(id), b = seqOf(snapshotId);
    return a !== null && b !== null && a.epoch === b.epoch && a.seq <= b.seq;
  }

  function handle(name, fn) {
    return (e) => {
      const data = JSON.parse(e.data);
      if (name === "snapshot") snapshotId = data.lastId;
      if (e.lastEventId) {
        $("status").dataset.lastEventId = e.lastEventId;
        try {
          sessionStorage.setItem(LAST_ID, e.lastEventId);
        } catch { /* storage off: a reload gets a snapshot */ }
      }
      if (name !== "snapshot" && inSnapshot(e.lastEventId)) return;
      fn(data);
    };
  }

  let source = null;
  function connect() {
    let last = null;
    try {
      last = sessionStorage.getItem(LAST_ID);
    } catch { /* storage off */ }
    source = new EventSource(url("/events", last ? { lastEventId: last } : {}));
    source.addEventListener("open", () => status("open"));
    source.addEventListener("error", () => {
      status("closed");
      // EventSource retries by itself unless the server refused it.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
    source.addEventListener("snapshot", handle("snapshot", applySnapshot));
    source.addEventListener(
      "node",
      handle("node", (d) => d.nodes.forEach(tile)),
    );
    source.addEventListener(
      "invocation",
      handle("invocation", (d) => {
        d.invocations.forEach(invocation);
        orderInvocations();
      }),
    );
    source.addEventListener(
      "sample",
      handle("sample", (d) => {
        if (loading) buffered.push(...d.samples);
        else applySamples(d.samples);
      }),
    );
    source.addEventListener(
      "console",
      handle("console", (d) => consoleLines(d.node, d.kind, d.lines)),
    );
  }

  connect();
})();
