/**
 * `fiwi`: the one entry point of the command line. `fiwi SUBCOMMAND
 * [options]` loads the subcommand's module (only that one: a `run` does not
 * pay for loading `push`) and calls its `main(args)`, which resolves with
 * the exit code. Each module also runs on its own (`deno task run` etc.).
 * Besides the subcommands: `fiwi --version`, `fiwi help [SUBCOMMAND]`,
 * `fiwi help --man` (the man page, from every subcommand's `--help`) and the
 * hidden `fiwi __complete` the shell completions call back.
 *
 * @module
 */

import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
// The one place the version is written; a JSON module is part of the module
// graph, so `deno install` and `deno compile` carry it without --allow-read.
import denoJson from "../deno.json" with { type: "json" };
import type { CliSpec, Subcommand } from "./_cli.ts";
import { writeAllSync } from "./_output.ts";

/** fiwi's version, from deno.json. */
export const VERSION: string = denoJson.version;

/**
 * What a subcommand module exports: `main`, and the `SPEC` its `--help` is
 * made from. The man page and the completions read `SPEC`; a module without
 * one is described by its summary and the common options alone.
 */
export interface SubcommandModule extends Subcommand {
  /** Its options and help, as given to `runCli`. */
  SPEC?: CliSpec;
}

/** A subcommand: one line of help and how to load its module. */
interface Entry {
  summary: string;
  load: () => Promise<SubcommandModule>;
}

/**
 * A module that may not be in this tree yet: its path is computed, so the
 * type checker and `deno compile` do not require it (the compile task
 * includes scripts/ whole).
 */
function optional(file: string): () => Promise<SubcommandModule> {
  return () => import(new URL(`./${file}`, import.meta.url).href);
}

/** Every subcommand, in the order `fiwi --help` lists them. */
export const SUBCOMMANDS: Readonly<Record<string, Entry>> = {
  run: {
    summary: "run one command on many nodes",
    load: () => import("./run.ts"),
  },
  poll: {
    summary: "run a command on many nodes every INTERVAL",
    load: () => import("./poll.ts"),
  },
  consoles: {
    summary: "stream the kernel consoles of the console nodes",
    load: () => import("./consoles.ts"),
  },
  discover: {
    summary: "USB, serial and power inventory of every node",
    load: () => import("./discover.ts"),
  },
  check: {
    summary: "diagnose reachability, host keys and logins",
    load: () => import("./check.ts"),
  },
  nodes: {
    summary: "expand a node set against the rig",
    load: optional("nodes.ts"),
  },
  close: {
    summary: "end the warm ControlMasters (sessions in flight finish)",
    load: () => import("./close.ts"),
  },
  push: {
    summary: "copy files to many nodes",
    load: optional("push.ts"),
  },
  pull: {
    summary: "copy files from many nodes",
    load: optional("pull.ts"),
  },
  power: {
    summary: "switch node power: on, off, cycle, status",
    load: () => import("./power.ts"),
  },
  lease: {
    summary: "take, drop, renew and list leases on nodes",
    load: () => import("./lease.ts"),
  },
  history: {
    summary: "recent invocations, one node by node, poll samples as CSV",
    load: () => import("./history.ts"),
  },
  dashboard: {
    summary: "a live web page of the rig: nodes, polled values, runs",
    load: () => import("./dashboard.ts"),
  },
  completions: {
    summary: "print a bash, zsh or fish completion script",
    load: async () => {
      const { SPEC, main } = await import("./completions.ts");
      const summaries = Object.fromEntries(
        Object.entries(SUBCOMMANDS).map(([name, e]) => [name, e.summary]),
      );
      return { SPEC, main: (args) => main(args, subcommandSpecs, summaries) };
    },
  },
};

/** The spec of subcommand `name`, or one made of its summary alone. */
export async function specOf(name: string): Promise<CliSpec> {
  const entry = SUBCOMMANDS[name];
  const module = await entry.load().catch(() => null);
  return module?.SPEC ??
    { name, summary: entry.summary, positional: "[ARGS...]", options: [] };
}

/** Every subcommand's spec, in the order `fiwi --help` lists them. */
export function subcommandSpecs(): Promise<CliSpec[]> {
  return Promise.all(Object.keys(SUBCOMMANDS).map(specOf));
}

/** `fiwi --version`: fiwi's version, then the Deno it runs on. */
export function versionText(): string {
  return `fiwi ${VERSION}\ndeno ${Deno.version.deno}\n`;
}

/** `fiwi --help`. */
export function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((n) => n.length)) + 2;
  return [
    "Control test rigs over SSH.",
    "",
    "Usage: fiwi SUBCOMMAND [options] [ARGS...]",
    "",
    "Subcommands:",
    ...Object.entries(SUBCOMMANDS).map(([name, e]) =>
      `  ${name.padEnd(width)}${e.summary}`
    ),
    "",
    "fiwi SUBCOMMAND --help shows its options. Every subcommand takes --rig FILE,",
    "-w/--nodes PATTERN, --json, --log FILE / --no-log.",
    "fiwi --version prints the version; fiwi help --man prints the man page.",
    "",
  ].join("\n");
}

function fail(line: string): number {
  writeAllSync(Deno.stderr, `fiwi: ${line}\n`);
  return 2;
}

/** Dispatch `args` (the whole command line after `fiwi`); resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h") {
    writeAllSync(Deno.stdout, usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    writeAllSync(Deno.stdout, versionText());
    return 0;
  }
  if (name === "help" && rest[0] === "--man") {
    const { manPage } = await import("./_man.ts");
    writeAllSync(
      Deno.stdout,
      manPage({
        version: VERSION,
        usage: usage(),
        specs: await subcommandSpecs(),
      }),
    );
    return 0;
  }
  if (name === "help" && rest.length > 0) {
    return await main([rest[0], "--help"]);
  }
  if (name === "help") return await main(["--help"]);
  if (name === "__complete") {
    return await (await import("./completions.ts")).complete(rest);
  }
  const entry = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : null;
  if (!entry) {
    const near = Object.keys(SUBCOMMANDS).find((n) =>
      levenshteinDistance(n, name) <= 2
    );
    return fail(
      `Unknown subcommand "${name}": ${
        near ? `did you mean "${near}"?` : "see fiwi --help"
      }`,
    );
  }
  let module: Subcommand;
  try {
    module = await entry.load();
  } catch (e) {
    return fail(
      `Subcommand "${name}" is not available in this build: ${
        (e as Error).message.split("\n")[0]
      }`,
    );
  }
  return await module.main(rest);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
