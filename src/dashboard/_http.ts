/**
 * The dashboard's HTTP handler: a few routes over `Deno.serve`, no
 * framework. Read-only: GET and HEAD only (anything else is 405), nothing
 * runs a command. With a token, every request must carry it (`?token=` or
 * `Authorization: Bearer`), compared in constant time. Without one (a
 * loopback address), only requests whose `Host` names this server are
 * answered, so a web page cannot reach the dashboard through DNS
 * rebinding.
 *
 * @module
 */

import { ASSETS } from "./_page.ts";
import { METRICS_CONTENT_TYPE } from "./_metrics.ts";

/** What the routes read. */
export interface Routes {
  /** The page. */
  page(): string;
  /** The snapshot as JSON data. */
  snapshot(): unknown;
  /**
   * The SSE body for a browser: `header` is the `Last-Event-ID` an
   * EventSource sends when it reconnects (it has its state), `query` the
   * `?lastEventId=` a reloaded page sends (it has none).
   */
  events(
    from: { header: string | null; query: string | null },
  ): ReadableStream<Uint8Array>;
  /** The Prometheus text. */
  metrics(): string;
  /** A page of chart history (see `historyPage`). */
  samples(query: URLSearchParams): unknown;
}

/** Who may ask. */
export interface Access {
  /** The token every request must carry, or null. */
  token: string | null;
  /** `Host` values accepted without a token (null: any). */
  hosts: ReadonlySet<string> | null;
}

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

function respond(
  body: BodyInit | null,
  status: number,
  headers: Record<string, string> = {},
): Response {
  return new Response(body, {
    status,
    headers: {
      "cache-control": "no-store",
      ...SECURITY_HEADERS,
      ...headers,
    },
  });
}

function plain(status: number, text: string, headers = {}): Response {
  return respond(text + "\n", status, {
    "content-type": "text/plain; charset=utf-8",
    ...headers,
  });
}

function json(data: unknown): Response {
  return respond(JSON.stringify(data), 200, {
    "content-type": "application/json; charset=utf-8",
  });
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(text)),
  );
}

/**
 * Whether `given` equals the token whose SHA-256 is `want`. Both sides are
 * hashed first, so the comparison takes the same time whatever the length
 * or the first differing byte of `given`.
 */
export async function tokenMatches(
  given: string | null,
  want: Uint8Array,
): Promise<boolean> {
  const got = await digest(given ?? "");
  let diff = given === null ? 1 : 0;
  for (let i = 0; i < want.length; i++) diff |= got[i] ^ want[i];
  return diff === 0;
}

function givenToken(req: Request, url: URL): string | null {
  const bearer = /^Bearer\s+(\S+)$/i.exec(
    req.headers.get("authorization") ?? "",
  );
  return bearer?.[1] ?? url.searchParams.get("token");
}

/** The request handler for `routes` under `access`. */
export function handler(
  routes: Routes,
  access: Access,
): (req: Request) => Promise<Response> {
  const want = access.token === null ? null : digest(access.token);
  return async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return plain(405, "Method not allowed: the dashboard is read-only", {
        allow: "GET, HEAD",
      });
    }
    const url = new URL(req.url);
    if (want !== null) {
      if (!await tokenMatches(givenToken(req, url), await want)) {
        return plain(401, "Unauthorized: give the token as ?token=TOKEN", {
          "www-authenticate": 'Bearer realm="fiwi dashboard"',
        });
      }
    } else if (
      access.hosts && !access.hosts.has(req.headers.get("host") ?? "")
    ) {
      return plain(403, "Forbidden: unexpected Host header");
    }
    return route(routes, req, url);
  };
}

function route(routes: Routes, req: Request, url: URL): Response {
  const asset = ASSETS.get(url.pathname);
  if (asset) {
    return respond(asset.body, 200, {
      "content-type": asset.type,
      "cache-control": "no-cache",
    });
  }
  switch (url.pathname) {
    case "/":
    case "/index.html":
      return respond(routes.page(), 200, {
        "content-type": "text/html; charset=utf-8",
      });
    case "/events":
      return respond(
        routes.events({
          header: req.headers.get("last-event-id"),
          query: url.searchParams.get("lastEventId"),
        }),
        200,
        {
          "content-type": "text/event-stream; charset=utf-8",
          "x-accel-buffering": "no",
        },
      );
    case "/metrics":
      return respond(routes.metrics(), 200, {
        "content-type": METRICS_CONTENT_TYPE,
      });
    case "/api/state":
      return json(routes.snapshot());
    case "/favicon.ico":
      return respond(null, 204);
    case "/api/samples":
      try {
        return json(routes.samples(url.searchParams));
      } catch (e) {
        if (e instanceof RangeError) return plain(400, e.message);
        throw e;
      }
    default:
      return plain(404, `Not found: ${url.pathname}`);
  }
}
