/**
 * `fiwi dashboard`: serve the rig's live dashboard (the library's
 * {@linkcode serveDashboard}) on 127.0.0.1 and print its URL; Ctrl-C
 * stops it. `--listen ADDR:PORT` serves on another address, only with an
 * access token. Read-only: the page runs nothing on the nodes.
 *
 * @module
 */

import {
  DEFAULT_DASHBOARD_PORT,
  DEFAULT_PROBE_INTERVAL,
  isLoopback,
  serveDashboard,
  StateStore,
} from "../mod.ts";
import {
  type CliContext,
  type CliSpec,
  durationFlag,
  intFlag,
  runCli,
  UsageError,
  userPath,
} from "./_cli.ts";
import { statePathOf } from "./_state.ts";

/** Shortest token accepted: anyone who can reach the port may guess. */
export const MIN_TOKEN_LENGTH = 16;

export const SPEC: CliSpec = {
  name: "dashboard",
  summary:
    "Serve a live web page of the rig: node grid, charts of polled values, invocations, consoles.",
  checksLeases: false,
  state: "read",
  options: [
    {
      name: "port",
      short: "p",
      arg: "PORT",
      help:
        `serve on 127.0.0.1:PORT (default ${DEFAULT_DASHBOARD_PORT}; 0: any free port)`,
    },
    {
      name: "listen",
      arg: "ADDR:PORT",
      help:
        "serve on another address (0.0.0.0:8470, [::]:8470); needs --token unless loopback",
    },
    {
      name: "token",
      arg: "TOKEN",
      help:
        `every request must carry ?token=TOKEN (${MIN_TOKEN_LENGTH}+ characters); "auto" makes one`,
    },
    {
      name: "probe-interval",
      arg: "DURATION",
      help: `probe each node with "true" this often (default ${
        DEFAULT_PROBE_INTERVAL / 1000
      }s)`,
    },
    {
      name: "history",
      arg: "DURATION",
      help: "how far back the charts reach (default 1h)",
    },
    {
      name: "consoles",
      help:
        "show the kernel and serial console tails of the nodes that have one",
    },
  ],
  notes:
    "The page shows every selected node (default: all of the rig) as up, down or connecting\n" +
    'from its own probe (a bounded "true" over its warm ControlMaster), its groups, the\n' +
    "last outcome of a run on it, its power state (read every 3 probes where a switch is\n" +
    "configured) and its failures in the last hour; one chart per poll command; the\n" +
    "invocations of every fiwi process, from the state store. /events is the live stream\n" +
    "(Server-Sent Events), /metrics the Prometheus text. Nothing on the page runs a command.\n" +
    "Another address than loopback needs --allow-net for it in the install line or task.",
  examples: [
    "fiwi dashboard",
    "fiwi dashboard -w @duts --probe-interval 5s --consoles",
    "fiwi dashboard --listen 0.0.0.0:8470 --token auto",
  ],
};

/** `ADDR:PORT` of `--listen`: an IPv6 address in brackets. */
export function parseListen(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(
    text.trim(),
  );
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(
      `Invalid --listen "${text}": give ADDR:PORT, like 0.0.0.0:8470 or [::1]:8470`,
    );
  }
  return { hostname: m[1] ?? m[2], port };
}

/** A random token: 128 bits, URL-safe. */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Address, port and token the flags ask for; usage errors up front. */
export function listenOptions(
  flags: CliContext["flags"],
): { hostname: string; port: number; token: string | undefined } {
  if (flags.listen !== undefined && flags.port !== undefined) {
    throw new UsageError('Give either "--port" or "--listen", not both');
  }
  const { hostname, port } = flags.listen !== undefined
    ? parseListen(String(flags.listen))
    : {
      hostname: "127.0.0.1",
      port: intFlag(flags, "port", 0) ?? DEFAULT_DASHBOARD_PORT,
    };
  if (port > 65535) {
    throw new UsageError(`Invalid --port "${port}": give 0 to 65535`);
  }
  const given = flags.token as string | undefined;
  if (given === undefined && !isLoopback(hostname)) {
    throw new UsageError(
      `Listening on "${hostname}" needs an access token: add --token auto (or --token TOKEN), or listen on 127.0.0.1`,
    );
  }
  if (
    given !== undefined && given !== "auto" && given.length < MIN_TOKEN_LENGTH
  ) {
    throw new UsageError(
      `Invalid --token: give at least ${MIN_TOKEN_LENGTH} characters, or "auto"`,
    );
  }
  const token = given === "auto" ? newToken() : given;
  return { hostname, port, token };
}

async function dashboard(ctx: CliContext): Promise<number> {
  const { flags, out, interrupt } = ctx;
  const listen = listenOptions(flags);
  const probeInterval = durationFlag(flags, "probe-interval");
  const history = durationFlag(flags, "history");
  for (
    const [name, ms] of [["probe-interval", probeInterval], [
      "history",
      history,
    ]] as const
  ) {
    if (ms !== undefined && ms < 100) {
      throw new UsageError(
        `Invalid --${name} "${flags[name]}": give at least 100ms`,
      );
    }
  }
  const { rig, nodes } = await ctx.selectNodes();
  await using store = await StateStore.open(
    statePathOf(flags, rig, userPath)!,
  );
  await using served = await serveDashboard(rig, {
    store,
    nodes,
    ...listen,
    ...(probeInterval !== undefined && { probeInterval }),
    ...(history !== undefined && { history }),
    consoles: flags.consoles === true,
    signal: interrupt,
    onWarning: (line) => out.err(`dashboard: ${line}`),
  });
  out.out(`Dashboard: ${served.url}`);
  out.err(
    `Serving rig "${rig.name}" (${nodes.length} node${
      nodes.length === 1 ? "" : "s"
    }) from the state store "${store.path}"; Ctrl-C to stop`,
  );
  await served.finished;
  // Ctrl-C is how the dashboard ends; SIGTERM and SIGHUP say so in the code.
  if (interrupt.aborted && interrupt.signalName !== "SIGINT") {
    return interrupt.exitCode ?? 143;
  }
  return 0;
}

/** `fiwi dashboard`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, dashboard);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
