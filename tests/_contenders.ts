/**
 * Lease contender processes for tests/lease_race_test.ts: each runs
 * tests/fixtures/lease_contender.ts with `deno run`, as root or as the
 * unprivileged `fiwitest` (NODE_USER), with only the permissions it needs
 * (read and write in the shared dir; for PostgreSQL, net to its port and
 * the postgres client's `PG*` variables) and a clean environment, so an
 * inherited `FIWI_LEASE_TOKEN` cannot make two contenders one owner.
 *
 * {@linkcode sharedDir} makes the dir that both users write: owned by root,
 * group `fiwitest` (NODE_USER), mode 2770 (setgid: what is created in it
 * keeps the group), with the log, `locks/` and, for SQLite, the empty
 * database file created group-writable beforehand (SQLite gives the `-wal`
 * and `-shm` files the database file's mode).
 *
 * @module
 */

import { asUser, NODE_HOME, unprivilegedUser } from "./_postgres.ts";
import { must, run, selfProof } from "./_sh.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const FIXTURE = `${REPO}/tests/fixtures/lease_contender.ts`;

/** What a contender is told (see tests/fixtures/lease_contender.ts). */
export interface ContenderConfig {
  mode: "race" | "hold";
  store: string;
  nodes: string[];
  name: string;
  forMs: number;
  dir?: string;
  durationMs?: number;
  holdMs?: number;
  waitMs?: number;
  renew?: boolean;
}

/** One running contender process. */
export class Contender implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;
  #buffer = "";
  /** The deno process's pid (setpriv execs it). */
  readonly pid: number;

  constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(child.stderr).text();
  }

  /** The next JSON line it prints, within `ms`; throws with its stderr. */
  async next<T>(ms: number): Promise<T> {
    const timer = setTimeout(() => this.#lines.cancel(), ms);
    try {
      while (!this.#buffer.includes("\n")) {
        const { value, done } = await this.#lines.read();
        if (done) break;
        this.#buffer += value;
      }
    } finally {
      clearTimeout(timer);
    }
    const at = this.#buffer.indexOf("\n");
    if (at < 0) {
      this.kill();
      await this.#child.status;
      throw new Error(
        `Contender ${this.pid} printed no line within ${ms} ms: ${await this
          .#stderr}`,
      );
    }
    const line = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 1);
    return JSON.parse(line) as T;
  }

  /** Write a line to its stdin ("go"). */
  async tell(text: string): Promise<void> {
    const w = this.#child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(text + "\n"));
    } finally {
      w.releaseLock();
    }
  }

  /** SIGKILL it (a no-op when it is gone). */
  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  /** Its exit, within `ms`: the code and what it said on stderr. */
  async exit(ms: number): Promise<{ code: number; stderr: string }> {
    const timer = setTimeout(() => this.kill(), ms);
    try {
      const status = await this.#child.status;
      return { code: status.code, stderr: await this.#stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.#child.status;
    await this.#child.stdin.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
    await this.#stderr.catch(() => "");
  }
}

/** Where contenders of both users meet (see the module doc). */
export interface SharedDir extends AsyncDisposable {
  dir: string;
  /** The second user, or null when it cannot take part (then said why). */
  user: string | null;
  /** A SQLite store path in it, created group-writable. */
  sqlite: string;
}

/** Make the shared dir (see the module doc). */
export async function sharedDir(): Promise<SharedDir> {
  const user = await secondUser();
  const dir = await Deno.makeTempDir({ prefix: "fiwi_lease_" });
  const sqlite = `${dir}/leases.db`;
  await Deno.mkdir(`${dir}/locks`);
  for (const f of [`${dir}/log`, sqlite]) {
    await Deno.writeFile(f, new Uint8Array());
  }
  // Mode bits beyond the umask, and the group, explicitly.
  for (const d of [dir, `${dir}/locks`]) await Deno.chmod(d, 0o2770);
  for (const f of [`${dir}/log`, sqlite]) await Deno.chmod(f, 0o660);
  if (user !== null) await must("chgrp", ["-R", user, dir]);
  return {
    dir,
    user,
    sqlite,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

let checkedUser: Promise<string | null> | undefined;

/**
 * The unprivileged second contender user, with its Deno cache filled (as
 * that user: its own `~/.cache/deno`), or null, said once on stderr, when
 * not root or when it cannot read the repository.
 */
function secondUser(): Promise<string | null> {
  checkedUser ??= (async () => {
    const user = await unprivilegedUser();
    if (user === null) {
      console.warn(
        "lease contenders: not root, so all run as this user (the second user needs root)",
      );
      return null;
    }
    const readable = asUser(user, "test", ["-r", FIXTURE]);
    if ((await run(readable.cmd, readable.args)).code !== 0) {
      console.warn(
        `lease contenders: ${user} cannot read ${FIXTURE}, so all run as root`,
      );
      return null;
    }
    // First as root (the lock file is root's), then the user's own cache
    // (whatever DENO_DIR this process was given is root's).
    await must(Deno.execPath(), [
      "cache",
      "-q",
      "--config",
      `${REPO}/deno.json`,
      FIXTURE,
    ]);
    const cache = asUser(user, "env", [
      `DENO_DIR=${NODE_HOME}/.cache/deno`,
      Deno.execPath(),
      "cache",
      "-q",
      "--frozen",
      "--config",
      `${REPO}/deno.json`,
      FIXTURE,
    ]);
    await must(cache.cmd, cache.args);
    return user;
  })();
  return checkedUser;
}

/** The permissions a contender needs for `store`, and nothing else. */
function permissions(store: string, dir: string): string[] {
  // The SQLite file (and its -wal, -shm), the log and the lock dirs. fiwi
  // reads FIWI_LEASE_TOKEN, USER and the host name only where allowed.
  const perms = [`--allow-read=${dir}`, `--allow-write=${dir}`];
  const url = new URL(store, "file:///");
  if (url.protocol.startsWith("postgres")) {
    // The postgres client reads its PG* defaults (PGPASSWORD, PGAPPNAME …).
    perms.push(`--allow-net=${url.hostname}:${url.port}`, "--allow-env=PG*");
  }
  return perms;
}

/**
 * Start a contender as `user` (null: this user), its command line carrying
 * `marker` so the test can count what is left of its run.
 */
export function spawnContender(
  config: ContenderConfig,
  shared: SharedDir,
  user: string | null,
  marker: string,
): Contender {
  const args = [
    "run",
    "-q",
    "--no-prompt",
    ...(user === null ? [] : ["--frozen"]),
    "--config",
    `${REPO}/deno.json`,
    ...permissions(config.store, shared.dir),
    FIXTURE,
    JSON.stringify(config),
    marker,
  ];
  const c = asUser(user, Deno.execPath(), args);
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
  };
  if (user === null) {
    const home = Deno.env.get("HOME");
    if (home) env.HOME = home;
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.DENO_DIR = denoDir;
  } else {
    env.DENO_DIR = `${NODE_HOME}/.cache/deno`;
  }
  return new Contender(
    new Deno.Command(c.cmd, {
      args: c.args,
      clearEnv: true,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
}

/** How many processes, of any user, carry `marker` in their command line. */
export async function countMarked(marker: string): Promise<number> {
  const r = await run("pgrep", ["-c", "-f", selfProof(marker)]);
  return Number(r.stdout.trim() || "0");
}

/**
 * What the node-side log shows wrong: a clash (a lock dir that existed), a
 * start on a node someone else still held, an end by one who did not hold
 * it. Empty when every node had one holder at a time.
 */
export function doubleHolders(log: string): string[] {
  const holder = new Map<string, string>();
  const problems: string[] = [];
  for (const line of log.split("\n")) {
    const [kind, node, pid] = line.split(" ");
    if (kind === "clash") problems.push(`${pid} found ${node} locked`);
    else if (kind === "start") {
      if (holder.has(node)) {
        problems.push(`${pid} started on ${node} held by ${holder.get(node)}`);
      }
      holder.set(node, pid);
    } else if (kind === "end") {
      if (holder.get(node) !== pid) {
        problems.push(`${pid} ended on ${node} held by ${holder.get(node)}`);
      }
      holder.delete(node);
    }
  }
  return problems;
}

/** Per contender pid, how many times it started on its nodes. */
export function startsByPid(log: string): Map<string, number> {
  const starts = new Map<string, number>();
  for (const line of log.split("\n")) {
    const [kind, , pid] = line.split(" ");
    if (kind === "start") starts.set(pid, (starts.get(pid) ?? 0) + 1);
  }
  return starts;
}
