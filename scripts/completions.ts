/**
 * `fiwi completions bash|zsh|fish`: a completion script for the shell. It
 * completes subcommands, each subcommand's options (from the tables its
 * `--help` is made of, so the two never disagree) and their values: files,
 * directories, and node names, `@groups` and rig names from the rig file.
 * Those last come from
 * `fiwi __complete`, which the script calls back: it reads the rig file the
 * command line names (`--rig`, `--rig-name`; else ./rigs.yaml, else the
 * built-in rig), contacts no node and writes no log.
 *
 * @module
 */

import { parse as parseYaml } from "jsr:@std/yaml@^1";
import { BUILTIN_RIG_YAML, DEFAULT_RIG_FILE } from "../mod.ts";
import {
  type CliSpec,
  describeFailure,
  helpText,
  optionsOf,
  type OptionSpec,
  parseCli,
  runCli,
  UsageError,
  userPath,
} from "./_cli.ts";
import {
  type PositionalModel,
  SHELLS,
  type SubcommandModel,
  type ValueKind,
} from "./_completion_scripts.ts";
import { writeAllSync } from "./_output.ts";

export type {
  OptionModel,
  PositionalModel,
  SubcommandModel,
  ValueKind,
} from "./_completion_scripts.ts";

/** `fiwi completions`. */
export const SPEC: CliSpec = {
  name: "completions",
  summary:
    "Print a completion script for bash, zsh or fish: subcommands, options, node names and @groups of the rig.",
  positional: "bash|zsh|fish",
  options: [],
  connects: false,
  notes:
    "Node names and groups are read from the rig file the command line names (--rig,\n" +
    "--rig-name; else ./rigs.yaml) when you press Tab; no node is contacted.",
  examples: [
    "source <(fiwi completions bash)         # in ~/.bashrc",
    "fiwi completions zsh > ~/.zfunc/_fiwi    # a directory of $fpath",
    "fiwi completions fish > ~/.config/fish/completions/fiwi.fish",
  ],
};

/** What an option's value completes to, from its name and placeholder. */
export function valueKind(o: OptionSpec): ValueKind | null {
  if (!o.arg) return null;
  if (o.name === "rig-name") return "rigs";
  if (/PATTERN|SET/.test(o.arg)) return "nodes";
  if (/DIR/.test(o.arg)) return "dirs";
  if (/FILE|PATH/.test(o.arg)) return "files";
  return "none";
}

/** What the positional arguments of a usage line complete to. */
export function positionalModel(positional: string): PositionalModel {
  const text = positional.replace(/[[\]]/g, "").trim();
  if (text === "") return { kind: "none" };
  if (/^[\w-]+(\|[\w-]+)+$/.test(text)) {
    return { kind: "words", words: text.split("|") };
  }
  if (/PATTERN|SET/.test(text)) return { kind: "nodes" };
  if (/^CMD\b/.test(text)) return { kind: "command" };
  return { kind: "files" };
}

function subcommandModel(spec: CliSpec, summary: string): SubcommandModel {
  const positional = positionalModel(spec.positional ?? "");
  return {
    name: spec.name,
    summary,
    options: optionsOf(spec).map((o) => ({
      ...(o.short ? { short: o.short } : {}),
      long: o.name,
      value: valueKind(o),
      repeat: o.repeat ?? false,
      help: o.help,
    })),
    positional,
    optionsAfter: positional.kind === "words" || positional.kind === "nodes",
  };
}

/**
 * The completion model of every subcommand, and of `help` (whose argument
 * is a subcommand), from their specs.
 */
export function completionModel(
  specs: readonly CliSpec[],
  summaries: Readonly<Record<string, string>> = {},
): SubcommandModel[] {
  const models = specs.map((s) =>
    subcommandModel(s, summaries[s.name] ?? s.summary)
  );
  models.push({
    name: "help",
    summary: "show a subcommand's help, or the man page (--man)",
    options: [{
      long: "man",
      value: null,
      repeat: false,
      help: "print the man page (roff)",
    }],
    positional: { kind: "words", words: specs.map((s) => s.name) },
    optionsAfter: false,
  });
  return models;
}

/**
 * Candidates for a node set being typed: rig node names, `@group`s and
 * `all`, after whatever the word holds up to its last operator (`,` `!` `&`
 * `^`), so `dut1,d` offers `dut1,dut2`. A leading `^` (a host file) gets
 * none.
 */
export function nodeCandidates(
  word: string,
  names: readonly string[],
  groups: readonly string[],
): string[] {
  const cut = Math.max(...[",", "!", "&", "^"].map((c) => word.lastIndexOf(c)));
  if (word.startsWith("^") && cut === 0) return [];
  const head = word.slice(0, cut + 1);
  const tail = word.slice(cut + 1);
  return ["all", ...names, ...groups.map((g) => `@${g}`)]
    .filter((w) => w.startsWith(tail))
    .map((w) => head + w);
}

/**
 * The rig names in the rig file (`--rig`, else ./rigs.yaml, else the
 * built-in one). Read as plain YAML: building a rig needs one chosen (a
 * file of several rigs without a default builds none), and the choice is
 * what is being completed.
 */
async function rigNames(rigFile: string | undefined): Promise<string[]> {
  const text = rigFile !== undefined
    ? await Deno.readTextFile(userPath(rigFile))
    : await Deno.readTextFile(userPath(DEFAULT_RIG_FILE)).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return BUILTIN_RIG_YAML;
      throw e;
    });
  const rigs = (parseYaml(text) as { rigs?: unknown } | null)?.rigs;
  return rigs && typeof rigs === "object" ? Object.keys(rigs) : [];
}

const COMPLETE_SPEC: CliSpec = {
  name: "__complete",
  summary: "List completion candidates for the completion scripts.",
  positional: "nodes|rigs WORD",
  options: [],
  connects: false,
};

/**
 * `fiwi __complete [--rig FILE] [--rig-name NAME] -- nodes|rigs WORD`: the
 * candidates for WORD, one a line. Reads the rig file only: no node is
 * contacted, no log written. Resolves with the exit code.
 */
export function complete(args: string[]): Promise<number> {
  return runCli(COMPLETE_SPEC, ["--no-log", ...args], async (ctx) => {
    const [kind, word = ""] = ctx.rest;
    let found: string[];
    if (kind === "nodes") {
      const { rig } = await ctx.selectNodes();
      const names = rig.nodes.map((n) => n.name);
      found = nodeCandidates(word, names, [...rig.groups.keys()]);
    } else if (kind === "rigs") {
      const rigFile = ctx.flags.rig as string | undefined;
      found = (await rigNames(rigFile)).filter((n) => n.startsWith(word));
    } else {
      throw new UsageError(
        `Unknown candidate kind "${kind}": give nodes or rigs`,
      );
    }
    writeAllSync(Deno.stdout, found.map((l) => `${l}\n`).join(""));
    return 0;
  });
}

/**
 * `fiwi completions SHELL`: print the script. `specs` lists every
 * subcommand's spec and `summaries` their one-line summaries, shown next to
 * the names (scripts/fiwi.ts knows both). Resolves with the exit code.
 */
export async function main(
  args: string[],
  specs: () => Promise<CliSpec[]>,
  summaries: Readonly<Record<string, string>> = {},
): Promise<number> {
  try {
    const { flags, rest } = parseCli(SPEC, args);
    if (flags.help) {
      writeAllSync(Deno.stdout, helpText(SPEC));
      return 0;
    }
    const [shell, extra] = rest;
    const make = Object.hasOwn(SHELLS, shell ?? "") ? SHELLS[shell] : null;
    if (!make || extra !== undefined) {
      throw new UsageError(
        `Give one shell: fiwi completions bash|zsh|fish${
          shell ? ` (not "${rest.join(" ")}")` : ""
        }`,
      );
    }
    writeAllSync(Deno.stdout, make(completionModel(await specs(), summaries)));
    return 0;
  } catch (e) {
    const { line, code } = describeFailure(SPEC.name, e);
    writeAllSync(Deno.stderr, line + "\n");
    return code;
  }
}
