// `fiwi run -w SET` with no command, as a user meets it: on a real
// pseudo-terminal (script(1), through the CLI harness) against the loopback
// rig. The prompt shows the set, a line runs on every node with its output
// gathered, `:w` changes the set, up-arrow recalls lines from the history
// file (a second session sees the first's), Ctrl-C stops a running line on
// every node and clears a typed one, Ctrl-D and SIGTERM leave with the
// terminal mode restored. The line parser, the prompt and the history file
// alone are tables.
import { assert, assertEquals, assertMatch } from "jsr:@std/assert@^1";
import {
  parsePromptLine,
  type PromptLine,
  promptText,
} from "../scripts/_interactive.ts";
import {
  HISTORY_SIZE,
  HistoryFile,
  historyLines,
  historyPath,
} from "../scripts/_line_editor.ts";
import {
  eventually,
  fiwi,
  fiwiArgv,
  type Running,
  startFiwi,
} from "./_cli_harness.ts";
import {
  countCarrying,
  countExact,
  loopRigYaml,
  marker,
  skipHere,
  startLoopbackRig,
} from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

Deno.test("parsePromptLine(): prompt commands, shell lines, mistakes", () => {
  const table: [string, PromptLine][] = [
    ["", { kind: "empty" }],
    ["   ", { kind: "empty" }],
    ["uptime", { kind: "run", cmd: "uptime" }],
    ["  echo a  b ", { kind: "run", cmd: "echo a  b" }],
    ["echo :w", { kind: "run", cmd: "echo :w" }],
    [":w n[1-4]", { kind: "nodes", pattern: "n[1-4]" }],
    [":w  @duts,!dut3 ", { kind: "nodes", pattern: "@duts,!dut3" }],
    [":w", { kind: "bad", message: 'Give a node set: ":w PATTERN"' }],
    [":help", { kind: "help" }],
    [":?", { kind: "help" }],
    [":q", { kind: "quit" }],
    [":quit", { kind: "quit" }],
    [":x y", {
      kind: "bad",
      message: 'Unknown prompt command ":x": :help lists them',
    }],
  ];
  for (const [text, want] of table) {
    assertEquals(parsePromptLine(text), want, JSON.stringify(text));
  }
});

Deno.test("promptText() folds the set, and cuts a long one", () => {
  assertEquals(promptText(["n1", "n2", "n3", "n4"]), "fiwi n[1-4]> ");
  assertEquals(promptText(["local"]), "fiwi local> ");
  const long = promptText(Array.from({ length: 30 }, (_, i) => `h${i * 2}`));
  assertEquals(long.length, "fiwi > ".length + 40);
  assertMatch(long, /^fiwi h\[0,2,4,.*…> $/);
});

Deno.test("the history file: in the state directory, private, bounded", async (t) => {
  await t.step("its path is beside the central log", () => {
    const env = (vars: Record<string, string>) => (n: string) => vars[n];
    assertEquals(
      historyPath(env({ XDG_STATE_HOME: "/s", HOME: "/h" })),
      "/s/fiwi/history",
    );
    assertEquals(
      historyPath(env({ XDG_STATE_HOME: "rel", HOME: "/h" })),
      "/h/.local/state/fiwi/history",
    );
  });

  await t.step("historyLines() keeps the newest, without blanks", () => {
    assertEquals(historyLines("a\n\nb\nc\n", 2), ["b", "c"]);
    assertEquals(historyLines(""), []);
  });

  await t.step("appended, 0600, cut when opened and closed", async () => {
    const dir = await Deno.makeTempDir({ prefix: "fiwi_history_" });
    try {
      const path = `${dir}/state/fiwi/history`;
      const old = Array.from({ length: HISTORY_SIZE + 5 }, (_, i) => `l${i}`);
      {
        await using h = await HistoryFile.open(path);
        assertEquals(h.lines, []);
        assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
        assertEquals(
          (await Deno.stat(`${dir}/state/fiwi`)).mode! & 0o777,
          0o700,
        );
      }
      await Deno.writeTextFile(path, old.join("\n") + "\n");
      await Deno.chmod(path, 0o644);
      {
        await using h = await HistoryFile.open(path);
        assertEquals(h.lines, old.slice(5));
        assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
        await h.add("new");
        await h.add("new"); // the same again: kept once
        await h.add("  ");
      }
      const after = (await Deno.readTextFile(path)).split("\n");
      assertEquals(after.length, HISTORY_SIZE + 1, "cut on close");
      assertEquals(after.slice(-3), [`l${HISTORY_SIZE + 4}`, "new", ""]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

/**
 * A command that runs fiwi the way the harness runs the task, between two
 * `stty -g`, and says whether the terminal's mode came back: given to the
 * harness as an installed command. (Deno 2.9 also resets a raw terminal
 * when the process exits, so this proves the user's terminal is whole, not
 * which of the two restored it.)
 */
async function sttyWrapper(dir: string): Promise<string> {
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const path = `${dir}/fiwi-stty`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
before=$(stty -g)
${fiwiArgv({ kind: "run" }, []).map(quote).join(" ")} "$@"
code=$?
if [ "$(stty -g)" = "$before" ]; then echo "terminal mode restored"
else echo "terminal mode changed"; fi
exit $code
`,
    { mode: 0o755 },
  );
  return path;
}

/** The prompt for `set` (as a regex), once drawn after everything before it. */
function prompt(set: string): string {
  return `fiwi ${set.replace(/[[\]]/g, "\\$&")}> `;
}

/** Resolves once `text` (a regex source) is followed by the prompt for `set`. */
function thenPrompt(p: Running, text: string, set: string): Promise<void> {
  return p.waitFor(new RegExp(`${text}[\\s\\S]*${prompt(set)}`));
}

Deno.test({
  name:
    "fiwi run with no command on a terminal: a prompt that runs each line on the set",
  ignore: skipHere("fiwi interactive", "second-address", "node-is-local"),
  async fn(t) {
    await using rig = await startLoopbackRig();
    const cwd = await Deno.makeTempDir({ prefix: "fiwi_interactive_" });
    const state = `${cwd}/state`;
    await Deno.mkdir(`${state}/fiwi`, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(`${cwd}/rigs.yaml`, loopRigYaml(rig));
    const env = {
      FIWI_CONTROL_DIR: `${rig.dir}/cm`,
      NO_COLOR: "1",
      XDG_STATE_HOME: state,
    };
    const via = { kind: "installed" as const, path: await sttyWrapper(cwd) };
    const session = (...args: string[]) =>
      startFiwi(["run", ...args], { cwd, env, via, terminal: true });
    try {
      await t.step(
        "with no command and stdin not a terminal: the usage error",
        async () => {
          const r = await fiwi(["run", "-w", "n1"], { cwd, env });
          assertEquals([r.code, r.stdout], [2, ""]);
          assertEquals(
            r.stderr,
            "run: No command given: fiwi run [options] CMD (see --help)\n",
          );
        },
      );

      await t.step(
        "lines on every node, :w, Ctrl-C, history, Ctrl-D",
        async () => {
          const p = session("-w", "n[1-2]");
          await p.waitFor(new RegExp(prompt("n[1-2]")));
          // Output the typed line's echo cannot show: $((…)) is computed.
          await p.type("echo one-$((40+2))\r");
          await thenPrompt(
            p,
            "-+\\r\\nn\\[1-2\\]\\r\\n-+\\r\\none-42\\r\\nok: n\\[1-2\\] \\(exit 0",
            "n[1-2]",
          );

          await p.type(":w n2\r");
          await p.waitFor(new RegExp(prompt("n2")));
          await p.type("echo two-$((40+3))\r");
          await thenPrompt(
            p,
            "\\r\\nn2\\r\\n-+\\r\\ntwo-43\\r\\nok: n2 ",
            "n2",
          );
          await p.type(":w nosuch\r");
          await thenPrompt(
            p,
            'run: Node pattern "nosuch" matches no node',
            "n2",
          );
          await p.type(":w n[1-2]\r");
          await thenPrompt(p, "nosuch[\\s\\S]*", "n[1-2]");

          // Ctrl-C during a line: stopped on every node, the prompt stays.
          const m = marker();
          await p.type(`exec sleep ${m}\r`);
          await eventually(
            "both remote sleeps",
            async () => await countExact(`sleep ${m}`, rig) === 2,
          );
          await p.type("\x03");
          await thenPrompt(p, "aborted: n\\[1-2\\]\\r\\n", "n[1-2]");
          assertEquals(
            await settlesToZero(() => countCarrying(m, rig)),
            0,
            "remote sleep left",
          );
          assertEquals(await countCarrying(m), 0, "local client left");

          // Ctrl-C while typing clears the line.
          await p.type("junk\x03echo three-$((40+4))\r");
          await thenPrompt(p, "three-44\\r\\nok: ", "n[1-2]");
          // Up recalls the line before; Enter runs it again.
          await p.type("\x1b[A\r");
          await thenPrompt(p, "three-44[\\s\\S]*three-44\\r\\nok: ", "n[1-2]");
          assert(
            !/junkecho|not found/.test(p.stdout()),
            "nothing of the cleared line ran",
          );

          await p.type("\x04");
          const r = await p.done;
          assertEquals(r.code, 0, r.stdout);
          assertMatch(r.stdout, /terminal mode restored\r\n$/);
          const history = `${state}/fiwi/history`;
          assertEquals((await Deno.stat(history)).mode! & 0o777, 0o600);
          assertEquals(
            (await Deno.readTextFile(history)).split("\n").slice(-3),
            [`exec sleep ${m}`, "echo three-$((40+4))", ""],
          );
        },
      );

      await t.step(
        "a second session recalls the first's lines; -S; hostile output",
        async () => {
          const p = session("-S", "-w", "n1");
          await p.waitFor(new RegExp(prompt("n1")));
          await p.type("\x1b[A\r");
          await thenPrompt(p, "three-44\\r\\nok: n1 ", "n1");
          // Cursor keys switched to application mode, then a full reset:
          // the terminal now sends ESC O A for up, which still recalls.
          await p.type("printf 'a\\033[?1h\\033cb\\n'; exit 3\r");
          await thenPrompt(p, "exit 3: n1\\r\\n", "n1");
          await p.type("\x1bOA\x1bOA\r");
          await thenPrompt(p, "three-44[\\s\\S]*three-44\\r\\nok: n1 ", "n1");
          await p.type(":q\r");
          const r = await p.done;
          assertEquals(r.code, 3, `-S: the largest exit code\n${r.stdout}`);
          assertMatch(r.stdout, /terminal mode restored\r\n$/);
        },
      );

      await t.step(
        "SIGTERM at the prompt leaves with 143, the terminal restored",
        async () => {
          const log = `${cwd}/${marker()}.log`;
          const p = session("--log", log, "-w", "n1");
          await p.waitFor(new RegExp(prompt("n1")));
          const ps = await new Deno.Command("ps", {
            args: ["-eo", "pid=,comm=,args="],
            stdout: "piped",
          }).output();
          const pids = new TextDecoder().decode(ps.stdout).split("\n")
            .filter((l) => / deno .*--log /.test(l) && l.includes(log))
            .map((l) => Number(l.trim().split(/\s+/)[0]));
          assertEquals(pids.length, 1, "one fiwi");
          Deno.kill(pids[0], "SIGTERM");
          const r = await p.done;
          assertMatch(r.stdout, /terminal mode restored\r\n$/);
          assertEquals(r.code, 143, r.stdout);
        },
      );
    } finally {
      await fiwi(["close"], { cwd, env }).catch(() => {});
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
