/**
 * `fiwi help --man`: the man page (man(7) roff), made from what `fiwi --help`
 * and every `fiwi SUBCOMMAND --help` are made of: the subcommand table, each
 * spec and `optionsOf`. One page, fiwi(1), with a section per subcommand; the
 * options most subcommands share are described once. Read it with
 * `fiwi help --man | man -l -`.
 *
 * @module
 */

import { type CliSpec, helpText, optionsOf, type OptionSpec } from "./_args.ts";

/** What the man page is made of. */
export interface ManInput {
  /** fiwi's version, for the page's footer. */
  version: string;
  /** `fiwi --help`. */
  usage: string;
  /** Every subcommand's spec, in the order to describe them. */
  specs: readonly CliSpec[];
}

/**
 * `text` as roff running text: backslashes and hyphens escaped (a plain `-`
 * may print as a hyphen, which breaks copying an option), and a leading `.`
 * or `'` kept from reading as a request.
 */
export function roffEscape(text: string): string {
  const escaped = text.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped;
}

const bold = (t: string) => `\\fB${roffEscape(t)}\\fR`;
const italic = (t: string) => `\\fI${roffEscape(t)}\\fR`;

/** `-f, --fanout N` in bold and italics. */
function optionTag(o: OptionSpec): string {
  const names = [o.short ? bold(`-${o.short}`) : "", bold(`--${o.name}`)]
    .filter((n) => n !== "").join(", ");
  return o.arg ? `${names} ${italic(o.arg)}` : names;
}

/** `.TP` entries for `options`. */
function optionList(options: readonly OptionSpec[]): string[] {
  return options.flatMap((o) => [".TP", optionTag(o), roffEscape(o.help)]);
}

/** Lines of help text: running text, indented lines kept as they are. */
function paragraph(text: string): string[] {
  const out = [".PP"];
  let verbatim = false;
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      out.push(verbatim ? "" : ".PP");
      continue;
    }
    const indented = /^\s/.test(line);
    if (indented !== verbatim) out.push(indented ? ".nf" : ".fi");
    verbatim = indented;
    out.push(roffEscape(indented ? line.replace(/^\s+/, "") : line));
  }
  if (verbatim) out.push(".fi");
  return out;
}

/** The paragraph of `--help` that starts with `heading`, as one line. */
function helpParagraph(text: string, heading: string): string {
  const block = text.split(/\n\s*\n/).find((b) => b.startsWith(heading)) ?? "";
  return block.slice(heading.length).replace(/\s+/g, " ").trim();
}

const sameOption = (a: OptionSpec, b: OptionSpec) =>
  a.short === b.short && a.arg === b.arg && a.help === b.help;

/**
 * A subcommand's section: usage, summary, the options that are its own or
 * differ from the shared ones, the shared ones it lacks, notes, examples.
 */
function subcommandSection(spec: CliSpec, shared: OptionSpec[]): string[] {
  const options = optionsOf(spec);
  const byName = new Map(options.map((o) => [o.name, o]));
  const own = options.filter((o) => {
    const common = shared.find((c) => c.name === o.name);
    return !common || !sameOption(common, o);
  });
  const lacks = shared.filter((c) => !byName.has(c.name));
  const out = [
    `.SS ${roffEscape(`fiwi ${spec.name}`)}`,
    `${bold(`fiwi ${spec.name}`)} [${italic("options")}]${
      spec.positional ? ` ${italic(spec.positional)}` : ""
    }`,
    ...paragraph(spec.summary),
  ];
  if (own.length > 0) {
    out.push(".PP", "Options:", ".RS 4", ...optionList(own), ".RE");
  }
  if (lacks.length > 0) {
    out.push(
      ".PP",
      `It takes none of ${lacks.map((o) => bold(`--${o.name}`)).join(", ")}.`,
    );
  }
  if (spec.notes) out.push(...paragraph(spec.notes));
  if (spec.examples?.length) {
    out.push(
      ".PP",
      "Examples:",
      ".RS 4",
      ".nf",
      ...spec.examples.map(roffEscape),
      ".fi",
      ".RE",
    );
  }
  return out;
}

/** The subcommands `fiwi --help` lists, as `[name, summary]`. */
function listedSubcommands(usage: string): [string, string][] {
  const list = usage.split(/\n\s*\n/).find((b) => b.startsWith("Subcommands:"));
  return (list ?? "").split("\n").slice(1).flatMap((line) => {
    const m = /^\s+(\S+)\s+(.*)$/.exec(line);
    return m ? [[m[1], m[2]] as [string, string]] : [];
  });
}

/** The options every subcommand that contacts nodes takes. */
function sharedOptions(): OptionSpec[] {
  return optionsOf({ name: "", summary: "", options: [] });
}

/** The man page of fiwi and every subcommand, as roff. */
export function manPage(input: ManInput): string {
  const shared = sharedOptions();
  const [tagline] = input.usage.split("\n");
  const exitStatus = helpParagraph(
    helpText({ name: "", summary: "", options: [] }),
    "Exit status:",
  );
  const lines = [
    `.TH FIWI 1 "" "fiwi ${input.version}" "User Commands"`,
    ".SH NAME",
    `fiwi \\- ${roffEscape(tagline.replace(/\.$/, ""))}`,
    ".SH SYNOPSIS",
    `${bold("fiwi")} ${italic("SUBCOMMAND")} [${italic("options")}] [${
      italic("ARGS...")
    }]`,
    ".br",
    `${bold("fiwi help")} [${italic("SUBCOMMAND")} | ${bold("--man")}]`,
    ".br",
    bold("fiwi --version"),
    ".SH DESCRIPTION",
    roffEscape(tagline),
    "Each subcommand works on a node set of the rig file and has options of",
    `its own; ${bold("fiwi")} ${italic("SUBCOMMAND")} ${
      bold("--help")
    } lists them.`,
    ".SH SUBCOMMANDS",
    ...listedSubcommands(input.usage).flatMap(([name, summary]) => [
      ".TP",
      bold(name),
      roffEscape(summary),
    ]),
    ".SH COMMON OPTIONS",
    "Every subcommand that contacts nodes takes these; a section below names",
    "those a subcommand lacks.",
    ...optionList(shared),
    ".SH COMMANDS",
    ...input.specs.flatMap((s) => subcommandSection(s, shared)),
    ".SH EXIT STATUS",
    roffEscape(exitStatus),
    ".SH SEE ALSO",
    `${bold("ssh")}(1), ${bold("ssh_config")}(5), ${bold("pdsh")}(1), ${
      bold("clush")
    }(1), and README.md of fiwi's repository.`,
  ];
  return lines.join("\n") + "\n";
}
