// What the `fiwi` command offers beyond its subcommands, tested the way a
// user meets it, through the command `deno install -g` writes: `--version`,
// shell completions (bash: `complete -p fiwi` and completion queries; zsh:
// Tab on a pseudo-terminal; fish: `complete -C`), which read node names and
// groups from the rig file without contacting a node or writing a log, and
// the man page (`fiwi help --man`, rendered by groff and man without a
// warning). The pure parts (candidates, kinds, roff escaping) are tables.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { dirname } from "jsr:@std/path@^1";
import { fiwi, installFiwi, type Via } from "./_cli_harness.ts";
import { specOf, SUBCOMMANDS, VERSION } from "../scripts/fiwi.ts";
import { type CliSpec, optionsOf } from "../scripts/_cli.ts";
import {
  nodeCandidates,
  positionalModel,
  valueKind,
} from "../scripts/completions.ts";
import { manPage, roffEscape } from "../scripts/_man.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const RIGS = `default: lab
rigs:
  lab:
    nodes:
      dut1: { host: 192.0.2.1, groups: [duts, ap] }
      dut2: { host: 192.0.2.2, groups: [duts] }
      pdu: { host: 192.0.2.3 }
  spare:
    nodes:
      s1: 192.0.2.9
`;
const OTHER = `rigs:
  far:
    nodes:
      far1: { host: 198.51.100.1, groups: [remote] }
  near:
    nodes:
      near1: 198.51.100.2
`;

/** Where a program is on PATH, or null. */
function which(program: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${program}`).isFile) {
        return `${dir}/${program}`;
      }
    } catch { /* next */ }
  }
  return null;
}

/** A user's directory with rig files, fiwi installed on PATH, a state home. */
interface Home {
  cwd: string;
  env: Record<string, string>;
  via: Via;
}

async function withInstalled(fn: (h: Home) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_polish_" });
  try {
    const cwd = `${dir}/work`;
    await Deno.mkdir(cwd);
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, RIGS);
    await Deno.writeTextFile(`${cwd}/other.yaml`, OTHER);
    const path = await installFiwi(`${dir}/install`);
    const env = {
      PATH: `${dir}/install/bin:${dirname(Deno.execPath())}:${
        Deno.env.get("PATH")
      }`,
      XDG_STATE_HOME: `${dir}/state`,
      HOME: dir,
      NO_COLOR: "1",
    };
    await fn({ cwd, env, via: { kind: "installed", path } });
    // Completing read the rig files only: no log anywhere.
    assertEquals(await Deno.stat(`${dir}/state`).catch(() => null), null);
    assertEquals(await Deno.stat(`${cwd}/logs`).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Run `program args` in the user's directory; its output. */
async function shell(
  h: Home,
  program: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(program, {
    args,
    cwd: h.cwd,
    env: h.env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

const sq = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
const sorted = (words: string[]) => [...words].sort().join(" ");

/** Every option word of a subcommand, as its --help lists them. */
function optionWords(spec: CliSpec): string[] {
  return optionsOf(spec).flatMap((o) => [
    ...(o.short ? [`-${o.short}`] : []),
    `--${o.name}`,
  ]);
}

/**
 * Bash completion queries, each the words of a command line as bash splits
 * them (the last is the word being completed): COMPREPLY of each, sorted.
 */
async function bashComplete(h: Home, queries: string[][]): Promise<string[]> {
  const script = [
    "source <(fiwi completions bash) || exit 9",
    // The function `complete -p` names, as readline would call it.
    "fn=$(complete -p fiwi | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')",
    'q() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));',
    '  COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=();',
    '  "$fn" fiwi "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"',
    "  printf '%s\\n' \"${COMPREPLY[*]}\"; }",
    ...queries.map((words) => `q ${words.map(sq).join(" ")}`),
  ].join("\n");
  const r = await shell(h, "bash", ["-c", script]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.split("\n").slice(0, queries.length).map((l) =>
    sorted(l.split(" ").filter((w) => w !== ""))
  );
}

Deno.test("fiwi --version prints the version of deno.json, then Deno's", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assertEquals(VERSION, config.version);
  const want = `fiwi ${config.version}\ndeno ${Deno.version.deno}\n`;
  await withInstalled(async ({ cwd, env, via }) => {
    for (const args of [["--version"], ["-V"], ["version"]]) {
      const r = await fiwi(args, { cwd, env, via });
      assertEquals([r.code, r.stdout, r.stderr], [0, want, ""], args[0]);
    }
    const task = await fiwi(["--version"], { cwd, env, via: { kind: "run" } });
    assertEquals(task.stdout, want);
  });
});

Deno.test({
  name:
    "fiwi completions bash: registered for fiwi, completes subcommands, options, node names, groups and rig names",
  ignore: !which("bash"),
  async fn(t) {
    await withInstalled(async (h) => {
      await t.step("complete -p shows the function registered", async () => {
        const r = await shell(h, "bash", [
          "-c",
          "source <(fiwi completions bash); complete -p fiwi",
        ]);
        assertEquals([r.code, r.stdout], [0, "complete -F _fiwi fiwi\n"]);
      });

      const names = Object.keys(SUBCOMMANDS);
      const specs = await Promise.all(names.map(specOf));
      // Every module exports its SPEC: none falls back to the bare summary.
      assertEquals(
        names.filter((_, i) => specs[i].positional === "[ARGS...]"),
        [],
      );
      await t.step("every option of every subcommand's --help", async () => {
        const got = await bashComplete(h, names.map((n) => ["fiwi", n, "-"]));
        assertEquals(got, specs.map((s) => sorted(optionWords(s))));
      });

      await t.step("subcommands, values and node sets", async () => {
        const runR = optionWords(specs[names.indexOf("run")])
          .filter((w) => w.startsWith("--ri"));
        const cases: [string[], string][] = [
          [["fiwi", ""], sorted([...names, "help", "--help", "--version"])],
          [["fiwi", "co"], "completions consoles"],
          [["fiwi", "run", "--ri"], sorted(runR)],
          [["fiwi", "run", "-w", ""], "@ap @duts all dut1 dut2 pdu"],
          [["fiwi", "run", "-w", "dut1,d"], "dut1,dut1 dut1,dut2"],
          [
            ["fiwi", "run", "-w", "@duts!"],
            "@duts!@ap @duts!@duts @duts!all @duts!dut1 @duts!dut2 @duts!pdu",
          ],
          [["fiwi", "run", "--nodes", "=", "@"], "@ap @duts"],
          [["fiwi", "check", "--rig-name", ""], "lab spare"],
          [["fiwi", "check", "--rig-name", "sp"], "spare"],
          [["fiwi", "check", "--rig-name", "spare", "-w", ""], "all s1"],
          [
            [
              "fiwi",
              "run",
              "--rig",
              "other.yaml",
              "--rig-name",
              "far",
              "-w",
              "",
            ],
            "@remote all far1",
          ],
          [
            ["fiwi", "run", "--rig", "other.yaml", "--rig-name", ""],
            "far near",
          ],
          [["fiwi", "run", "--rig", "o"], "other.yaml"],
          [["fiwi", "completions", ""], "bash fish zsh"],
          [["fiwi", "help", ""], sorted(names)],
          // The command's own options belong to the command.
          [["fiwi", "run", "hostname", "-"], ""],
        ];
        const got = await bashComplete(h, cases.map(([words]) => words));
        assertEquals(
          got,
          cases.map(([, want]) => want),
          cases.map(([w]) => w.join(" ")).join("\n"),
        );
      });

      await t.step({
        name: "each subcommand's own options and arguments",
        fn: async () => {
          const got = await bashComplete(h, [
            ["fiwi", "run", "--fa"],
            ["fiwi", "power", ""],
            ["fiwi", "power", "on", "--wa"],
            ["fiwi", "nodes", "d"],
          ]);
          assertEquals(got, [
            "--fail-fast --fanout",
            "cycle off on status",
            "--wait",
            "dut1 dut2",
          ]);
        },
      });
    });
  },
});

// Tab typed into an interactive zsh on a pseudo-terminal (zsh/zpty), once
// for each command line given after the script: a line of the matches the
// completion system adds, for each.
const ZSH_TAB = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT=; unsetopt zle_bracketed_paste 2>/dev/null'
zpty -w z 'autoload -U compinit; compinit -u -D'
zpty -w z "source \${(q)1}"
zpty -w z 'compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return; fi; local -a h; builtin compadd -A h "$@"; local m; for m in $h; do print -r -- "MA""TCH:$IPREFIX$m"; done; builtin compadd "$@" }'
zpty -w z '__fiwi_done() { print -r -- "DO""NE" }'
local line query
local -a found
for query in "\${@[2,-1]}"; do
  found=()
  zpty -w z 'comppostfuncs=(__fiwi_done)'
  zpty -w -n z "$query"$'\\t'
  while zpty -r z line; do
    line=\${line//$'\\r'/}
    line=\${line%$'\\n'}
    [[ $line == *MATCH:* ]] && found+=("\${line##*MATCH:}")
    [[ $line == *DONE ]] && break
  done
  print -r -- "\${(j: :)found}"
  zpty -w -n z $'\\C-e\\C-u'
done
zpty -d z
`;

Deno.test({
  name:
    "fiwi completions zsh: valid zsh, and Tab completes subcommands, options, node names and rig names",
  ignore: !which("zsh"),
  async fn() {
    await withInstalled(async (h) => {
      const script = await shell(h, "fiwi", ["completions", "zsh"]);
      assertEquals(script.code, 0, script.stderr);
      assertMatch(script.stdout, /^#compdef fiwi\n/);
      const file = `${h.cwd}/../_fiwi`;
      await Deno.writeTextFile(file, script.stdout);
      const syntax = await shell(h, "zsh", ["-n", file]);
      assertEquals([syntax.code, syntax.stderr], [0, ""]);
      const capture = `${h.cwd}/../tab.zsh`;
      await Deno.writeTextFile(capture, ZSH_TAB);
      const cases: [string, string][] = [
        ["fiwi comp", "completions"],
        ["fiwi run --rig-", "--rig-name"],
        ["fiwi run -w ", "@ap @duts all dut1 dut2 pdu"],
        ["fiwi run -w dut1,p", "dut1,pdu"],
        ["fiwi run --nodes=@d", "--nodes=@duts"],
        ["fiwi run --rig other.yaml --rig-name far -w ", "@remote all far1"],
        ["fiwi run --rig other.yaml --rig-name ", "far near"],
        ["fiwi check --rig-name ", "lab spare"],
        ["fiwi completions ", "bash fish zsh"],
      ];
      const r = await shell(h, "timeout", [
        "60",
        "zsh",
        "-f",
        capture,
        file,
        ...cases.map(([line]) => line),
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        r.stdout.split("\n").slice(0, cases.length).map((l) =>
          sorted(l.split(" ").filter((w) => w !== ""))
        ),
        cases.map(([, want]) => want),
      );
    });
  },
});

Deno.test({
  name:
    "fiwi completions fish: valid fish, and complete -C offers subcommands, options, node names and rig names",
  ignore: !which("fish"),
  async fn() {
    await withInstalled(async (h) => {
      const script = await shell(h, "fiwi", ["completions", "fish"]);
      assertEquals(script.code, 0, script.stderr);
      const syntax = await shell(h, "fish", ["-n"], script.stdout);
      assertEquals([syntax.code, syntax.stderr], [0, ""]);
      const cases: [string, string][] = [
        ["fiwi comp", "completions"],
        ["fiwi run --rig-", "--rig-name"],
        ["fiwi run -w ", "@ap @duts all dut1 dut2 pdu"],
        ["fiwi run -w dut1,p", "dut1,pdu"],
        ["fiwi run --rig other.yaml --rig-name far -w ", "@remote all far1"],
        ["fiwi run --rig other.yaml --rig-name ", "far near"],
        ["fiwi check --rig-name ", "lab spare"],
        ["fiwi completions ", "bash fish zsh"],
        ["fiwi run hostname -", ""],
      ];
      const queries = cases.map(([line]) =>
        `echo (complete -C${sq(line)} | string replace -r '\\t.*' '' | sort)`
      );
      const r = await shell(h, "fish", [
        "-c",
        ["fiwi completions fish | source", ...queries].join("\n"),
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        r.stdout.split("\n").slice(0, cases.length),
        cases.map(([, want]) => want),
      );
    });
  },
});

Deno.test("fiwi completions and __complete: usage errors are one line, exit 2", async () => {
  await withInstalled(async ({ cwd, env, via }) => {
    const o = { cwd, env, via };
    for (
      const [args, line] of [
        [
          ["completions"],
          "completions: Give one shell: fiwi completions bash|zsh|fish",
        ],
        [
          ["completions", "tcsh"],
          'completions: Give one shell: fiwi completions bash|zsh|fish (not "tcsh")',
        ],
        [
          ["__complete", "--", "users", ""],
          '__complete: Unknown candidate kind "users": give nodes or rigs',
        ],
      ] as const
    ) {
      const r = await fiwi([...args], o);
      assertEquals([r.code, r.stdout, r.stderr], [2, "", line + "\n"]);
    }
    const help = await fiwi(["completions", "--help"], o);
    assertMatch(
      help.stdout,
      /^Usage: fiwi completions \[options\] bash\|zsh\|fish$/m,
    );
    const listed = await fiwi(["--help"], o);
    assertMatch(listed.stdout, /^ {2}completions +print a bash, zsh or fish/m);
  });
});

Deno.test({
  name:
    "fiwi help --man is man(7) roff that groff and man render without a warning, with every subcommand and option",
  ignore: !which("groff"),
  async fn() {
    await withInstalled(async (h) => {
      const r = await fiwi(["help", "--man"], h);
      assertEquals(r.code, 0, r.stderr);
      const roff = r.stdout;
      assertMatch(roff, new RegExp(`^\\.TH FIWI 1 "" "fiwi ${VERSION}" `));
      for (const name of Object.keys(SUBCOMMANDS)) {
        assertMatch(roff, new RegExp(`^\\.SS fiwi ${name}$`, "m"));
        for (const o of optionsOf(await specOf(name))) {
          assert(
            roff.includes(`\\fB${roffEscape(`--${o.name}`)}\\fR`),
            `${name} --${o.name}`,
          );
        }
      }
      const groff = await shell(h, "groff", [
        "-man",
        "-Tutf8",
        "-ww",
        "-z",
      ], roff);
      assertEquals([groff.code, groff.stderr], [0, ""]);
      if (which("man")) {
        const man = await shell(h, "man", ["-l", "-"], roff);
        assertEquals([man.code, man.stderr], [0, ""]);
        assertMatch(
          man.stdout,
          /^ +fiwi completions \[options\] bash\|zsh\|fish$/m,
        );
      }
    });
  },
});

Deno.test("nodeCandidates() completes the item after the last operator of a node set", () => {
  const names = ["dut1", "dut2", "pdu"];
  const groups = ["duts"];
  const cases: [string, string[]][] = [
    ["", ["all", "dut1", "dut2", "pdu", "@duts"]],
    ["d", ["dut1", "dut2"]],
    ["@", ["@duts"]],
    ["dut1,p", ["dut1,pdu"]],
    ["all!d", ["all!dut1", "all!dut2"]],
    ["@duts&dut2,@", ["@duts&dut2,@duts"]],
    ["!p", ["!pdu"]],
    ["a^d", ["a^dut1", "a^dut2"]],
    ["^hosts", []],
    ["x", []],
  ];
  for (const [word, want] of cases) {
    assertEquals(nodeCandidates(word, names, groups), want, word);
  }
});

Deno.test("valueKind() and positionalModel() read what a value completes to from its placeholder", () => {
  const kinds: [string, string | undefined, string | null][] = [
    ["nodes", "PATTERN", "nodes"],
    ["rig", "FILE", "files"],
    ["rig-name", "NAME", "rigs"],
    ["output-dir", "DIR", "dirs"],
    ["fanout", "N", "none"],
    ["json", undefined, null],
  ];
  for (const [name, arg, want] of kinds) {
    assertEquals(valueKind({ name, arg, help: "" }), want, name);
  }
  const positionals: [string, unknown][] = [
    ["", { kind: "none" }],
    ["CMD...", { kind: "command" }],
    ["on|off|cycle|status", {
      kind: "words",
      words: ["on", "off", "cycle", "status"],
    }],
    ["[PATTERN...]", { kind: "nodes" }],
    ["SRC... DESTDIR", { kind: "files" }],
  ];
  for (const [text, want] of positionals) {
    assertEquals(positionalModel(text), want, text);
  }
});

Deno.test("manPage() describes shared options once and each subcommand's own, and escapes roff", () => {
  const cases: [string, string][] = [
    ["--rig", "\\-\\-rig"],
    [".hidden", "\\&.hidden"],
    ["'quote", "\\&'quote"],
    ["a\\b", "a\\eb"],
  ];
  for (const [text, want] of cases) assertEquals(roffEscape(text), want, text);
  const page = manPage({
    version: "9.9.9",
    usage:
      "Do things.\n\nSubcommands:\n  zap   zap the nodes\n  list  list them\n",
    specs: [
      {
        name: "zap",
        summary: "Zap every node.",
        positional: "CMD...",
        options: [{ name: "force", short: "F", help: "zap -harder" }],
        notes: "Plain text.\n  indented line",
        examples: ["fiwi zap -w all now"],
      },
      { name: "list", summary: "List them.", options: [], connects: false },
    ],
  });
  assertMatch(page, /^\.TH FIWI 1 "" "fiwi 9\.9\.9" "User Commands"\n/);
  assertMatch(page, /\.TP\n\\fBzap\\fR\nzap the nodes\n/);
  assertMatch(
    page,
    /\.SS fiwi zap\n\\fBfiwi zap\\fR \[\\fIoptions\\fR\] \\fICMD\.\.\.\\fR\n/,
  );
  assertMatch(page, /\.TP\n\\fB\\-F\\fR, \\fB\\-\\-force\\fR\nzap \\-harder\n/);
  assertMatch(page, /\nPlain text\.\n\.nf\nindented line\n\.fi\n/);
  assertMatch(page, /\.nf\nfiwi zap \\-w all now\n\.fi\n/);
  // A subcommand that contacts no node lacks the connection options.
  const shared = optionsOf({ name: "", summary: "", options: [] });
  const listed = new Set(
    optionsOf({ name: "list", summary: "", options: [], connects: false })
      .map((o) => o.name),
  );
  const lacks = shared.filter((o) => !listed.has(o.name));
  if (lacks.length > 0) {
    assert(
      page.includes(
        `It takes none of ${
          lacks.map((o) => `\\fB${roffEscape(`--${o.name}`)}\\fR`).join(", ")
        }.`,
      ),
    );
  }
  assertEquals(
    page.match(/^\.TP\n\\fB\\-w\\fR, \\fB\\-\\-nodes\\fR/gm)?.length,
    1,
  );
});
