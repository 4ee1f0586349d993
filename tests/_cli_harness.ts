// Running the `fiwi` command in tests the ways a user does: through the
// `fiwi` task's exact flags, through `deno task --config`, through the
// command `deno install -g` writes, on a pipe or on a real pseudo-terminal
// (script(1)), with its output collected and its end awaited with a bound.

const ROOT = new URL("../", import.meta.url).pathname;
const CONFIG = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
const TASKS: Record<string, string> = CONFIG.tasks;

/** The `deno run` flags of the `fiwi` task (`-P=fiwi` and the V8 flags). */
export function fiwiFlags(): string[] {
  const m = /^deno run (.+) scripts\/fiwi\.ts$/.exec(TASKS.fiwi);
  if (!m) {
    throw new Error(`task "fiwi" is not "deno run <flags> scripts/fiwi.ts"`);
  }
  return m[1].split(" ");
}

/** A permission of a set in deno.json: all, none, or a list. */
type Grant = boolean | string[];

/**
 * The permission set `name` of deno.json written out as `--allow-*` flags,
 * in the order the README's install line gives them.
 */
export function permissionFlags(name: string): string[] {
  const set: Record<string, Grant> | undefined = CONFIG.permissions?.[name];
  if (!set) throw new Error(`deno.json has no permission set "${name}"`);
  const order = ["read", "write", "net", "run", "env", "sys", "ffi", "import"];
  for (const kind of Object.keys(set)) {
    if (!order.includes(kind)) {
      throw new Error(`permission "${kind}" of set "${name}" is not handled`);
    }
  }
  return order.flatMap((kind) => {
    const grant = set[kind];
    if (grant === undefined || grant === false) return [];
    return [grant === true ? `--allow-${kind}` : `--allow-${kind}=${grant}`];
  });
}

/**
 * The flags of the README's `deno install` line (between `--config
 * deno.json` and the script). `deno install` does not carry `-P` into the
 * command it writes (deno 2.9), so that line spells the `fiwi` set out.
 */
export function installFlags(): string[] {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const m =
    /^deno install -g -f -n fiwi --config deno\.json (.+) scripts\/fiwi\.ts$/m
      .exec(readme);
  if (!m) throw new Error("README.md has no `deno install` line for fiwi");
  return m[1].split(" ");
}

/** How to start fiwi. */
export type Via =
  /** `deno run <the task's flags> scripts/fiwi.ts` */
  | { kind: "run" }
  /** `deno task --config <repo>/deno.json fiwi` from the caller's cwd */
  | { kind: "task" }
  /** an installed command */
  | { kind: "installed"; path: string };

/** The argv that starts fiwi with `args`. */
export function fiwiArgv(via: Via, args: string[]): string[] {
  switch (via.kind) {
    case "run":
      return [
        Deno.execPath(),
        "run",
        "--config",
        `${ROOT}deno.json`,
        ...fiwiFlags(),
        `${ROOT}scripts/fiwi.ts`,
        ...args,
      ];
    case "task":
      return [
        Deno.execPath(),
        "task",
        "-q",
        "--config",
        `${ROOT}deno.json`,
        "fiwi",
        ...args,
      ];
    case "installed":
      return [via.path, ...args];
  }
}

/** `deno install -g` the README's way into `root`; the command's path. */
export async function installFiwi(root: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "install",
      "-g",
      "-f",
      "-q",
      "-n",
      "fiwi",
      "--root",
      root,
      "--config",
      `${ROOT}deno.json`,
      ...installFlags(),
      `${ROOT}scripts/fiwi.ts`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno install: ${new TextDecoder().decode(out.stderr)}`);
  }
  return `${root}/bin/fiwi`;
}

/** What a finished fiwi printed. */
export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode startFiwi}. */
export interface StartOptions {
  /** How to start it (default: the task's flags). */
  via?: Via;
  /** Working directory. */
  cwd: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Bytes for standard input (a pipe); default: /dev/null. */
  stdin?: Uint8Array;
  /**
   * On a pseudo-terminal that is fiwi's controlling terminal (script(1)):
   * stdout then carries both streams and {@linkcode Running.type} types.
   */
  terminal?: boolean;
}

const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;

/**
 * XDG_STATE_HOME of every fiwi a test starts (unless the test gives one):
 * the default central log goes there, never into the user's own
 * ~/.local/state. Its `fiwi/` exists, so no run prints the notice of its
 * creation (tested on a directory of its own). Removed when the test
 * process ends.
 */
export const STATE_HOME = Deno.makeTempDirSync({ prefix: "fiwi_state_" });
Deno.mkdirSync(`${STATE_HOME}/fiwi`, { mode: 0o700 });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(STATE_HOME, { recursive: true });
  } catch { /* gone already */ }
});

/** A fiwi that runs; its output can be awaited. */
export interface Running {
  /** The process (script(1) on a terminal). */
  child: Deno.ChildProcess;
  /** Everything on stdout so far. */
  stdout(): string;
  /** Resolves once stdout matches `re`; rejects if fiwi ends first or after 20 s. */
  waitFor(re: RegExp): Promise<void>;
  /** Type bytes on the terminal (`\x03` is Ctrl-C). */
  type(text: string): Promise<void>;
  /** Resolves when fiwi ended and its output is read (rejects after 60 s). */
  done: Promise<Finished>;
}

/** Start fiwi with `args`. */
export function startFiwi(args: string[], o: StartOptions): Running {
  const argv = fiwiArgv(o.via ?? { kind: "run" }, args);
  const [program, ...rest] = o.terminal
    ? ["script", "-qec", `exec ${argv.map(quote).join(" ")}`, "/dev/null"]
    : argv;
  // The test run's own INIT_CWD (set by an outer `deno task test`) would
  // win over the one a `deno task` under test sets: fiwi gets none.
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    XDG_STATE_HOME: STATE_HOME,
    ...o.env,
  };
  if (!o.env?.INIT_CWD) delete env.INIT_CWD;
  const child = new Deno.Command(program, {
    args: rest,
    cwd: o.cwd,
    clearEnv: true,
    env,
    stdin: o.terminal || o.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const seen = new EventTarget();
  const pump = async (
    s: ReadableStream<Uint8Array>,
    add: (t: string) => void,
  ) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) {
      add(t);
      seen.dispatchEvent(new Event("data"));
    }
  };
  const writer = o.terminal ? child.stdin.getWriter() : null;
  if (o.stdin && !o.terminal) {
    const w = child.stdin.getWriter();
    w.write(o.stdin).then(() => w.close()).catch(() => {});
  }
  const ended = Promise.all([
    pump(child.stdout, (t) => out += t),
    pump(child.stderr, (t) => err += t),
    child.status,
  ]).then(([, , s]) => ({ code: s.code, stdout: out, stderr: err }));
  const bounded = <T>(p: Promise<T>, ms: number, what: string) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: ${out}${err}`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  const done = bounded(ended, 60_000, "fiwi did not end within 60 s")
    .finally(() => writer?.close().catch(() => {}));
  return {
    child,
    stdout: () => out,
    waitFor(re) {
      if (re.test(out)) return Promise.resolve();
      let listener = () => {};
      const matched = new Promise<void>((resolve) => {
        listener = () => re.test(out) && resolve();
        seen.addEventListener("data", listener);
      });
      const early = ended.then((r) => {
        if (!re.test(r.stdout)) {
          throw new Error(`fiwi ended without ${re}: ${r.stdout}${r.stderr}`);
        }
      });
      return bounded(
        Promise.race([matched, early]),
        20_000,
        `no ${re} within 20 s`,
      )
        .finally(() => seen.removeEventListener("data", listener));
    },
    async type(text) {
      await writer!.write(new TextEncoder().encode(text));
    },
    done,
  };
}

/** Run fiwi to its end. */
export function fiwi(args: string[], o: StartOptions): Promise<Finished> {
  return startFiwi(args, o).done;
}

/** Poll `check` every 100 ms for up to 10 s (no event says "a process ended"). */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
