// The dashboard's server, in-process on port 0, against the loopback rig and
// a state store of the test's own: the event stream (node states, a
// recorded sample, resuming with Last-Event-ID), /metrics, the token, the
// read-only methods, node text never reaching HTML unescaped; then the
// command's faults (port in use, unwritable or corrupt database, --listen
// elsewhere without a token), each one line and exit 2. The pure pieces
// (the event ring, the Prometheus text, the HTML escape, the history
// pages) are tested on their own first.
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "jsr:@std/assert@^1";
import {
  ConfigurationError,
  Rig,
  type SampleRecord,
  serveDashboard,
  SshNode,
  StateStore,
} from "../mod.ts";
import { EventHub } from "../src/dashboard/_events.ts";
import { formatMetrics, labelValue } from "../src/dashboard/_metrics.ts";
import { DashboardModel } from "../src/dashboard/_model.ts";
import { escapeHtml, html } from "../src/dashboard/_page.ts";
import { historyPage } from "../src/dashboard/_history.ts";
import { maxSampleRow } from "../src/dashboard/_watch.ts";
import { probeBound } from "../src/dashboard/_probe.ts";
import { listenOptions, parseListen } from "../scripts/dashboard.ts";
import { fiwi, startFiwi } from "./_cli_harness.ts";
import { skipReasonFor, startLoopbackRig } from "./_loopback.ts";
import { SseClient, type SseMessage } from "./_sse.ts";

const PROBE_MS = 500;
const XSS_IMG = `<img src=x onerror="globalThis.__xss=1">`;
const XSS_SCRIPT = `<script>globalThis.__xss=2</script>`;

// ---------------------------------------------------------------------------
// Pure pieces.

Deno.test("EventHub.since() replays what is in the ring and nothing across a gap or another run", () => {
  const hub = new EventHub(3);
  assertEquals(hub.since(hub.lastId), []);
  const ids = [1, 2, 3, 4, 5].map((n) => hub.publish("sample", { n }));
  assertEquals(hub.since(ids[1])?.map((e) => e.id), [ids[2], ids[3], ids[4]]);
  assertEquals(hub.since(ids[4]), []);
  assertEquals(hub.since(ids[0]), null, "older than the ring");
  assertEquals(hub.since(`zz-${ids.length}`), null, "another epoch");
  assertEquals(hub.since(`${hub.epoch}-99`), null, "from the future");
  assertEquals(hub.since("garbage"), null);
  assertEquals(hub.since(null), null);
  hub.close();
});

Deno.test("escapeHtml() and html`` leave no markup from a value", () => {
  assertEquals(
    escapeHtml(`<a href="x" onclick='y'>&</a>`),
    "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
  );
  const nested = html`<p>${XSS_IMG}</p>${html`<b>${"<i>"}</b>`}${[
    "<",
    html`<br>`,
  ]}`;
  assertEquals(
    nested.toString(),
    `<p>&lt;img src=x onerror=&quot;globalThis.__xss=1&quot;&gt;</p><b>&lt;i&gt;</b>&lt;<br>`,
  );
});

Deno.test("the page's script has no HTML sink: node text can only become text", async () => {
  const js = await Deno.readTextFile(
    new URL("../src/dashboard/app.js", import.meta.url),
  );
  assertNotMatch(
    js,
    /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc/,
  );
});

Deno.test("Prometheus text: label values escaped, one HELP and TYPE per family", () => {
  assertEquals(labelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const model = new DashboardModel([{ name: "n1", groups: [] }]);
  model.updateTile("n1", { state: "up" });
  model.applySamples([{
    rowId: 1,
    at: 0,
    node: "n1",
    command: 'cat "x"',
    value: 0.5,
    text: null,
    inv: "i",
    tick: 1,
  }]);
  model.countRuns([{
    invocationId: "i",
    node: "n1",
    outcome: "exit 0",
    code: 0,
    durationMs: 700,
    bytes: 0,
    at: new Date(0),
  }]);
  const text = formatMetrics(model);
  assertStringIncludes(text, 'fiwi_node_up{node="n1"} 1\n');
  assertStringIncludes(
    text,
    'fiwi_poll_value{node="n1",command="cat \\"x\\""} 0.5\n',
  );
  assertStringIncludes(text, 'fiwi_runs_total{outcome="exit 0"} 1\n');
  assertStringIncludes(
    text,
    'fiwi_run_duration_seconds_bucket{outcome="exit 0",le="0.5"} 0\n',
  );
  assertStringIncludes(
    text,
    'fiwi_run_duration_seconds_bucket{outcome="exit 0",le="1"} 1\n',
  );
  assertStringIncludes(
    text,
    'fiwi_run_duration_seconds_sum{outcome="exit 0"} 0.7\n',
  );
  assertExposition(text);
});

/** Every line is a comment or `name{labels} value` of a family declared before it. */
function assertExposition(text: string): void {
  assert(text.endsWith("\n"));
  const declared = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    const type = /^# TYPE (\w+) (gauge|counter|histogram)$/.exec(line);
    if (type) {
      assert(!declared.has(type[1]), `TYPE ${type[1]} twice`);
      declared.add(type[1]);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m =
      /^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[\d.e+-]+|NaN|[+-]Inf)$/
        .exec(line);
    if (!m) throw new Error(`not the text format: ${line}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    assert(declared.has(m[1]) || declared.has(family), `undeclared: ${line}`);
  }
}

Deno.test("maxSampleRow() finds the newest rowId by bisection", () => {
  for (const top of [0, 1, 2, 3, 17, 1024, 99_999]) {
    let reads = 0;
    const store = {
      samples: ({ afterRowId = 0 }: { afterRowId?: number }) => {
        reads++;
        return afterRowId < top ? [{ rowId: afterRowId + 1 }] : [];
      },
    } as unknown as Parameters<typeof maxSampleRow>[0];
    assertEquals(maxSampleRow(store), top);
    assert(reads <= 2 * Math.log2(top + 2) + 3, `${reads} reads for ${top}`);
  }
});

Deno.test("historyPage() pages numeric samples up to the snapshot's rowId", () => {
  const all: SampleRecord[] = Array.from({ length: 7 }, (_, i) => ({
    invocationId: "inv",
    node: `n${i % 2}`,
    command: "c",
    tick: i,
    at: new Date(1000 * i),
    output: i === 3 ? "text" : String(i),
    value: i === 3 ? null : i,
    rowId: i + 1,
  }));
  const store = {
    samples: (f: { afterRowId?: number; limit?: number }) =>
      all.filter((s) => s.rowId > (f.afterRowId ?? 0)).slice(0, f.limit),
  };
  const q = (s: string) => historyPage(store, new URLSearchParams(s));
  const first = q("limit=3&untilRowId=6");
  assertEquals(first.rows.map((r) => r[0]), [1, 2, 3]);
  assertEquals(first.nodes, ["n0", "n1"]);
  assertEquals(first.next, 3);
  const second = q("limit=3&untilRowId=6&afterRowId=3");
  assertEquals(second.rows.map((r) => r[0]), [5, 6], "text sample 4 left out");
  assertEquals(second.next, null, "reached the snapshot's rowId");
  assertThrows(() => q("limit=-1"), RangeError);
  assertThrows(() => q("since=yesterday"), RangeError);
});

Deno.test("--listen and --token are checked before anything listens", () => {
  assertEquals(parseListen("0.0.0.0:8470"), {
    hostname: "0.0.0.0",
    port: 8470,
  });
  assertEquals(parseListen("[::1]:0"), { hostname: "::1", port: 0 });
  for (const bad of ["8470", "host:", ":80", "h:99999", "[::1:80"]) {
    assertThrows(
      () => parseListen(bad),
      ConfigurationError,
      "Invalid --listen",
    );
  }
  assertThrows(
    () => listenOptions({ listen: "0.0.0.0:0" }),
    ConfigurationError,
    "needs an access token",
  );
  assertThrows(
    () => listenOptions({ listen: "0.0.0.0:0", token: "short" }),
    ConfigurationError,
    "at least 16",
  );
  assertThrows(
    () => listenOptions({ listen: "0.0.0.0:0", port: "1" }),
    ConfigurationError,
    "not both",
  );
  const auto = listenOptions({ listen: "0.0.0.0:0", token: "auto" });
  assertMatch(auto.token!, /^[0-9a-f]{32}$/);
  assertEquals(listenOptions({ listen: "127.0.0.2:0" }).token, undefined);
  assertEquals(probeBound(10_000), 9000, "a probe ends before the next is due");
});

// ---------------------------------------------------------------------------
// The server against the loopback rig.

const ignore = skipReasonFor("dashboard server tests", "sshd-control") !== null;

/** A temp dir (0700, as the store wants) with a store file path in it. */
async function tempStore(): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_dash_" });
  return { dir, path: `${dir}/state.db` };
}

function sample(
  node: string,
  tick: number,
  output: string,
  value: number | null,
  command = "cat /proc/loadavg",
): Omit<SampleRecord, "rowId"> {
  return {
    invocationId: "poll0001",
    node,
    command,
    tick,
    at: new Date(),
    output,
    value,
  };
}

const isUp = (name: string) => (m: SseMessage) =>
  (m.event === "node" || m.event === "snapshot") &&
  JSON.parse(m.data).nodes.some((t: { node: string; state: string }) =>
    t.node === name && t.state === "up"
  );

Deno.test({
  name: "dashboard server: events, resume, metrics, token, methods, escaping",
  ignore,
  async fn(t) {
    await using loop = await startLoopbackRig();
    const { dir, path } = await tempStore();
    try {
      await using rig = new Rig("loop", [
        loop.node({ index: 0, silent: true }),
        loop.node({ index: 1, silent: true }),
      ], {
        description: `lab ${XSS_SCRIPT}`,
        groups: new Map([["duts", ["node0", "node1"]]]),
      });
      await using writer = await StateStore.open(path);
      await using store = await StateStore.open(path);
      await using dash = await serveDashboard(rig, {
        store,
        port: 0,
        probeInterval: PROBE_MS,
      });
      const base = dash.url;
      assertMatch(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);

      await t.step(
        "/events sends a snapshot, then node states and a recorded sample",
        async () => {
          await using events = await SseClient.open(`${base}events`);
          const first = await events.next();
          assertEquals(first.event, "snapshot");
          assertMatch(first.id!, /^[0-9a-z]+-\d+$/);
          const snap = JSON.parse(first.data);
          assertEquals(snap.nodes.map((n: { node: string }) => n.node), [
            "node0",
            "node1",
          ]);
          assertEquals(snap.nodes[0].groups, ["duts"]);
          await events.until(isUp("node0"), 4 * PROBE_MS + 5000);
          writer.startInvocation({
            id: "poll0001",
            subcommand: "poll",
            command: "cat /proc/loadavg",
            nodes: "node[0-1]",
            user: "tester@here",
            startedAt: new Date(),
          });
          writer.recordSample(sample("node0", 1, "0.42 0.40 0.30", 0.42));
          await writer.flush();
          const got = await events.until((m) => m.event === "sample", 2000);
          const [s] = JSON.parse(got.data).samples;
          assertEquals([s.node, s.value, s.tick], ["node0", 0.42, 1]);
          // The invocation came in the same look at the store, before or after.
          const inv = events.seen.find((m) => m.event === "invocation") ??
            await events.until((m) => m.event === "invocation", 2000);
          assertEquals(JSON.parse(inv.data).invocations[0].id, "poll0001");
        },
      );

      await t.step(
        "a browser that reconnects with Last-Event-ID gets what it missed, not a snapshot",
        async () => {
          let last: string;
          {
            await using events = await SseClient.open(`${base}events`);
            last = (await events.next()).id!;
          }
          writer.recordSample(sample("node1", 2, "1.5", 1.5));
          writer.recordSample(sample("node0", 2, "2.5", 2.5));
          await writer.flush();
          // Wait until the server has published them.
          await new Promise((r) => setTimeout(r, 500));
          await using again = await SseClient.open(`${base}events`, {
            "last-event-id": last,
          });
          const next = await again.next();
          assertEquals(next.event, "sample", "resumed, no snapshot");
          const [seq, lastSeq] = [next.id!, last].map((id) =>
            Number(id.split("-")[1])
          );
          assertEquals(seq, lastSeq + 1, "the very next id");
          const values = JSON.parse(next.data).samples.map((
            s: { value: number },
          ) => s.value);
          assert(values.includes(1.5) || values.includes(2.5));

          // A reloaded page (?lastEventId=) gets the state without an id, then the events after.
          await using reloaded = await SseClient.open(
            `${base}events?lastEventId=${encodeURIComponent(last)}`,
          );
          const state = await reloaded.next();
          assertEquals([state.event, state.id], ["snapshot", null]);
          assertEquals((await reloaded.next()).id, next.id);

          // An id of another server run: a fresh snapshot with the newest id.
          await using stale = await SseClient.open(`${base}events`, {
            "last-event-id": "abc-5",
          });
          const fresh = await stale.next();
          assertEquals(fresh.event, "snapshot");
          assertEquals(fresh.id, JSON.parse(fresh.data).lastId);
        },
      );

      await t.step(
        "/metrics is Prometheus text: node up, last value, runs by outcome",
        async () => {
          writer.recordOutcome({
            invocationId: "poll0001",
            node: "node1",
            outcome: "command timeout",
            code: null,
            durationMs: 2500,
            bytes: 0,
            at: new Date(),
          });
          writer.endInvocation("poll0001", 1);
          await writer.flush();
          await new Promise((r) => setTimeout(r, 500));
          const res = await fetch(`${base}metrics`);
          assertEquals(res.status, 200);
          assertMatch(
            res.headers.get("content-type")!,
            /^text\/plain; version=0\.0\.4/,
          );
          const text = await res.text();
          assertExposition(text);
          assertStringIncludes(text, 'fiwi_node_up{node="node0"} 1\n');
          assertStringIncludes(
            text,
            'fiwi_poll_value{node="node0",command="cat /proc/loadavg"} 2.5\n',
          );
          assertStringIncludes(
            text,
            'fiwi_runs_total{outcome="command timeout"} 1\n',
          );
          assertStringIncludes(
            text,
            'fiwi_run_duration_seconds_count{outcome="command timeout"} 1\n',
          );
          assertStringIncludes(
            text,
            'fiwi_node_failures_last_hour{node="node1"} 1\n',
          );
        },
      );

      await t.step(
        "node text reaches the page only as data: the HTML and /events carry it escaped",
        async () => {
          await using events = await SseClient.open(`${base}events`);
          await events.next();
          writer.recordSample(sample("node0", 3, XSS_IMG, null, "hostname"));
          writer.recordSample(
            sample(
              "node1",
              3,
              `${XSS_SCRIPT}\n\nevent: node\ndata: {}`,
              null,
              "hostname",
            ),
          );
          await writer.flush();
          const got = await events.until((m) => m.event === "sample", 2000);
          // Each event's data is one JSON document: a node cannot end the event or start another.
          const texts = JSON.parse(got.data).samples.map((
            s: { text: string },
          ) => s.text);
          assertEquals(texts, [
            XSS_IMG,
            `${XSS_SCRIPT}\n\nevent: node\ndata: {}`,
          ]);
          assert(!got.data.includes("\n"));
          const res = await fetch(base);
          const page = await res.text();
          assertStringIncludes(
            res.headers.get("content-security-policy")!,
            "script-src 'self'",
          );
          assertEquals(res.headers.get("x-content-type-options"), "nosniff");
          assertNotMatch(page, /<img|<script>globalThis/);
          assertStringIncludes(
            page,
            "lab &lt;script&gt;globalThis.__xss=2&lt;/script&gt;",
          );
          // Only the two script tags of the page itself.
          assertEquals(page.match(/<script\b/g)?.length, 2);
          const snapshot = await (await fetch(`${base}api/state`)).json();
          assertEquals(
            snapshot.texts.map((x: { text: string }) => x.text).sort(),
            [XSS_IMG, `${XSS_SCRIPT}\n\nevent: node\ndata: {}`].sort(),
          );
        },
      );

      await t.step(
        "read-only: every method but GET and HEAD is 405",
        async () => {
          for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
            for (const p of ["", "events", "metrics", "api/state"]) {
              const res = await fetch(`${base}${p}`, { method, body: "x" });
              await res.body?.cancel();
              assertEquals(res.status, 405, `${method} /${p}`);
              assertEquals(res.headers.get("allow"), "GET, HEAD");
            }
          }
        },
      );

      await t.step(
        "without a token only a Host naming this server is answered",
        async () => {
          const raw = await rawGet(dash.port, "/metrics", "evil.example:80");
          assertMatch(raw, /^HTTP\/1\.1 403/);
          const ok = await rawGet(
            dash.port,
            "/metrics",
            `localhost:${dash.port}`,
          );
          assertMatch(ok, /^HTTP\/1\.1 200/);
        },
      );

      await t.step(
        "uPlot and the page's assets are served by the dashboard itself",
        async () => {
          for (const p of ["uplot.js", "uplot.css", "app.js", "app.css"]) {
            const res = await fetch(`${base}${p}`);
            const body = await res.text();
            assertEquals(res.status, 200, p);
            assert(body.length > 100, p);
          }
          const res = await fetch(`${base}nothing`);
          await res.body?.cancel();
          assertEquals(res.status, 404);
        },
      );

      await t.step(
        "a node that stops answering is down within two probe intervals",
        async () => {
          await using events = await SseClient.open(`${base}events`);
          await events.until(isUp("node1"), 4 * PROBE_MS + 5000);
          await loop.stop();
          const stopped = Date.now();
          await events.until(
            (m) =>
              m.event === "node" &&
              JSON.parse(m.data).nodes.some((
                n: { node: string; state: string },
              ) => n.node === "node1" && n.state === "down"),
            2 * PROBE_MS + 1000,
          );
          assert(
            Date.now() - stopped <= 2 * PROBE_MS + 300,
            `${Date.now() - stopped} ms`,
          );
          await loop.start();
          await events.until(isUp("node1"), 4 * PROBE_MS + 5000);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A GET over a plain socket, with a Host header of our choosing; the raw answer. */
async function rawGet(
  port: number,
  path: string,
  host: string,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

Deno.test("dashboard server: with a token every request must carry it", async () => {
  const { dir, path } = await tempStore();
  try {
    await using store = await StateStore.open(path);
    await using rig = new Rig("empty", []);
    const token = "0123456789abcdef0123";
    await using dash = await serveDashboard(rig, { store, port: 0, token });
    assertEquals(dash.url, `http://127.0.0.1:${dash.port}/?token=${token}`);
    const origin = `http://127.0.0.1:${dash.port}`;
    for (
      const [p, headers, want] of [
        ["/metrics", {}, 401],
        [`/metrics?token=${token}x`, {}, 401],
        [`/metrics?token=${token.slice(0, -1)}`, {}, 401],
        [`/metrics?token=${token}`, {}, 200],
        ["/metrics", { authorization: `Bearer ${token}` }, 200],
        ["/", { authorization: "Bearer wrong" }, 401],
        [`/events?token=`, {}, 401],
      ] as const
    ) {
      const res = await fetch(`${origin}${p}`, { headers });
      await res.body?.cancel();
      assertEquals(res.status, want, `${p} ${JSON.stringify(headers)}`);
    }
    const page = await (await fetch(dash.url)).text();
    assertStringIncludes(page, `src="/app.js?token=${token}"`);
    await assertRejects(
      () => serveDashboard(rig, { store, hostname: "0.0.0.0", port: 0 }),
      ConfigurationError,
      "needs an access token",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dashboard server: --consoles streams console lines as text", async () => {
  const { dir, path } = await tempStore();
  try {
    await using store = await StateStore.open(path);
    await using rig = new Rig("c", [
      new SshNode({
        name: "c1",
        host: "localhost",
        transport: "local",
        console: true,
        consoleCommand: `echo booting; echo '${XSS_IMG}'; sleep 30`,
        silent: true,
      }),
    ]);
    await using dash = await serveDashboard(rig, {
      store,
      port: 0,
      consoles: true,
    });
    await using events = await SseClient.open(`${dash.url}events`);
    const lines: string[] = [];
    while (lines.length < 2) {
      const m = await events.next(5000);
      if (m.event === "snapshot") {
        for (const c of JSON.parse(m.data).consoles) {
          lines.push(...c.lines.map((l: { text: string }) => l.text));
        }
      }
      if (m.event !== "console") continue;
      const batch = JSON.parse(m.data);
      assertEquals([batch.node, batch.kind], ["c1", "kernel"]);
      lines.push(...batch.lines.map((l: { text: string }) => l.text));
    }
    assertEquals(lines, ["booting", XSS_IMG]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// The command's faults: one line, exit 2.

async function inDir(fn: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_dash_cli_" });
  try {
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      "rigs:\n  here:\n    defaults: { transport: local }\n    nodes:\n      a: {}\n",
    );
    await fn(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

function assertOneLine(
  r: { code: number; stdout: string; stderr: string },
  re: RegExp,
) {
  assertEquals(r.code, 2, r.stderr);
  assertEquals(r.stdout, "");
  assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assertMatch(r.stderr, re);
}

Deno.test("fiwi dashboard: a port in use, an unwritable or corrupt database, --listen without a token: one line, exit 2", async () => {
  await inDir(async (cwd) => {
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (busy.addr as Deno.NetAddr).port;
      assertOneLine(
        await fiwi([
          "dashboard",
          "--no-log",
          "--db",
          `${cwd}/s.db`,
          "--port",
          String(port),
        ], { cwd }),
        new RegExp(`^dashboard: Port ${port} on 127\\.0\\.0\\.1 is in use`),
      );
    } finally {
      busy.close();
    }
    await Deno.writeTextFile(`${cwd}/file`, "not a directory\n");
    assertOneLine(
      await fiwi([
        "dashboard",
        "--no-log",
        "--db",
        `${cwd}/file/state.db`,
        "--port",
        "0",
      ], { cwd }),
      /^dashboard: .*state/i,
    );
    await Deno.mkdir(`${cwd}/bad`, { mode: 0o700 });
    await Deno.writeTextFile(
      `${cwd}/bad/state.db`,
      "this is not SQLite ".repeat(300),
      { mode: 0o600 },
    );
    assertOneLine(
      await fiwi([
        "dashboard",
        "--no-log",
        "--db",
        `${cwd}/bad/state.db`,
        "--port",
        "0",
      ], { cwd }),
      /^dashboard: .*(corrupt|not a database|damaged)/i,
    );
    assertOneLine(
      await fiwi(["dashboard", "--no-log", "--listen", "0.0.0.0:0"], { cwd }),
      /^dashboard: Listening on "0\.0\.0\.0" needs an access token/,
    );
  });
});

Deno.test("fiwi dashboard prints its URL and ends on SIGTERM", async () => {
  await inDir(async (cwd) => {
    const running = startFiwi(
      [
        "dashboard",
        "--no-log",
        "--db",
        `${cwd}/s.db`,
        "--port",
        "0",
        "--probe-interval",
        "1s",
      ],
      { cwd },
    );
    await running.waitFor(/Dashboard: http:\/\/127\.0\.0\.1:\d+\/\n/);
    const url = /http:\S+/.exec(running.stdout())![0];
    const res = await fetch(`${url}api/state`);
    assertEquals((await res.json()).nodes[0].node, "a");
    running.child.kill("SIGTERM");
    const done = await running.done;
    assertEquals(done.code, 143, done.stderr);
  });
});

Deno.test("the dashboard imports from other layers only what mod.ts exports", async () => {
  const mod = await import("../mod.ts");
  const modText = await Deno.readTextFile(
    new URL("../mod.ts", import.meta.url),
  );
  const dir = new URL("../src/dashboard/", import.meta.url);
  const missing: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(new URL(e.name, dir));
    for (
      const m of text.matchAll(
        /import\s+(type\s+)?\{([^}]*)\}\s+from\s+"\.\.\/([^"]+)"/g,
      )
    ) {
      for (const raw of m[2].split(",")) {
        const name = raw.trim().replace(/^type\s+/, "");
        if (!name) continue;
        const exported = name in mod ||
          new RegExp(`\\b${name}\\b`).test(modText);
        if (!exported) missing.push(`${e.name}: ${name} from ${m[3]}`);
      }
    }
  }
  assertEquals(missing, []);
});
