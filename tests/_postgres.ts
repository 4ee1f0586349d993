/**
 * A private PostgreSQL for the lease tests.
 *
 * {@linkcode startPostgres} runs `initdb` into a temp dir and `pg_ctl start`
 * with a free port on 127.0.0.1 and its socket in that dir, as an
 * unprivileged user (as root: {@linkcode NODE_USER}, which PostgreSQL needs
 * since it refuses to run as root). Loopback connections are trusted. A
 * database `fiwi` owned by a role `fiwi` that is not a superuser (what the
 * README's four setup lines give a team) is what {@linkcode Postgres.url}
 * names. Disposing it (`await using`) stops the server (`pg_ctl stop -m
 * immediate`, then SIGKILL) and removes the dir, also when a test fails;
 * and a lifeline shell whose stdin the test process holds does the same
 * when the test process itself is killed.
 *
 * Where PostgreSQL is not installed the tests that need it are skipped with
 * the reason ({@linkcode postgresSkipReason}), unless `CI=true`: there they
 * fail, saying what is missing, as the sshd tests do.
 *
 * @module
 */

import { CI, envGet } from "./_live_rig.ts";
import { NODE_USER } from "./_loopback.ts";
import { must, run } from "./_sh.ts";

export { NODE_USER };
/** Home of {@linkcode NODE_USER} (its Deno cache, for the contenders). */
export const NODE_HOME = `/var/lib/${NODE_USER}`;
/** Role and database the tests' URL names. */
const DB = "fiwi";
/** Longest a server may take to start or stop. */
const PG_CTL_TIMEOUT_S = 30;

/** A running private PostgreSQL. */
export interface Postgres extends AsyncDisposable {
  /** `postgres://fiwi@127.0.0.1:<port>/fiwi` (trusted: no password). */
  readonly url: string;
  /** The TCP port on 127.0.0.1. */
  readonly port: number;
  /** Temp dir: `data/`, the socket, `server.log`. */
  readonly dir: string;
  /** Stop the server at once (`-m immediate`); the data stays. */
  stop(): Promise<void>;
  /** Start it again after {@linkcode Postgres.stop}, on the same port. */
  start(): Promise<void>;
  /** Run SQL as the superuser through `psql -At`; its stdout. */
  psql(sql: string, database?: string): Promise<string>;
}

/**
 * Directory of the PostgreSQL binaries (`initdb`, `pg_ctl`, `psql`), or
 * null: `FIWI_PG_BIN` if set, else Debian's newest
 * `/usr/lib/postgresql/<version>/bin`, else the first on PATH.
 */
export function postgresBinDir(): string | null {
  const given = envGet("FIWI_PG_BIN");
  const candidates: string[] = given ? [given] : [];
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name)
      .filter((n) => /^\d+$/.test(n))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch { /* not Debian's layout */ }
  for (const p of (envGet("PATH") ?? "").split(":")) if (p) candidates.push(p);
  for (const dir of candidates) {
    try {
      for (const tool of ["initdb", "pg_ctl", "psql", "postgres"]) {
        Deno.statSync(`${dir}/${tool}`);
      }
      return dir;
    } catch { /* next */ }
  }
  return null;
}

/** What is missing for a private PostgreSQL, or null when it can start. */
export function postgresMissing(): string | null {
  return postgresBinDir() === null
    ? "no PostgreSQL (initdb, pg_ctl, psql) in /usr/lib/postgresql/*/bin or PATH (apt-get install postgresql)"
    : null;
}

/**
 * Why the PostgreSQL tests cannot run here, or null when they can. Under
 * {@linkcode CI} a missing PostgreSQL is no reason: the tests run, and
 * {@linkcode startPostgres} fails them saying what is missing. A reason is
 * said once on stderr (Deno prints only "ignored").
 */
export function postgresSkipReason(what: string): string | null {
  const why = CI ? null : postgresMissing();
  if (why !== null) console.warn(`skipped: ${what}: ${why}`);
  return why;
}

/**
 * argv running `cmd` as `user` ({@linkcode NODE_USER}, what
 * {@linkcode unprivilegedUser} returns as root) through `setpriv`, which
 * execs: the pid is the command's own, for signals; HOME, USER and LOGNAME
 * are the user's. With `user` null, as this user.
 */
export function asUser(
  user: string | null,
  cmd: string,
  args: string[],
): { cmd: string; args: string[] } {
  if (user === null) return { cmd, args };
  return {
    cmd: "setpriv",
    args: [
      `--reuid=${user}`,
      `--regid=${user}`,
      "--init-groups",
      "--",
      "env",
      `HOME=${NODE_HOME}`,
      `USER=${user}`,
      `LOGNAME=${user}`,
      cmd,
      ...args,
    ],
  };
}

/**
 * As root: make sure {@linkcode NODE_USER} exists, with a home, and return
 * it; otherwise null (everything runs as this user).
 */
export async function unprivilegedUser(): Promise<string | null> {
  if (Deno.uid() !== 0) return null;
  if ((await run("id", ["-u", NODE_USER])).code !== 0) {
    await must("useradd", ["-M", "-d", NODE_HOME, "-s", "/bin/sh", NODE_USER]);
  }
  await Deno.mkdir(NODE_HOME, { recursive: true, mode: 0o700 });
  await must("chown", [`${NODE_USER}:`, NODE_HOME]);
  return NODE_USER;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Whether process `pid` is running. A zombie counts as gone: an init that
 * reaps late (as in some containers) leaves the stopped postmaster one.
 */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Options of {@linkcode startPostgres}. */
export interface PostgresOptions {
  /**
   * Keep fsync on, as a team's server has it; default false: the tests'
   * data need not survive a crash of the machine, so they turn it off for
   * speed.
   */
  durable?: boolean;
}

/**
 * The shell that keeps a server from outliving its test run: it waits on
 * its stdin, which the test process holds, then stops the server (`$1` the
 * temp dir, `$2` the binaries' dir), SIGKILLing the postmaster if `pg_ctl`
 * cannot. `stop()` writes "keep" first (a restart follows); a bare end of
 * file means the test process died, however it died, and the temp dir goes
 * too.
 */
const LIFELINE = `read -r word
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
"$2/pg_ctl" stop -D "$1/data" -m immediate -w -t 10 >/dev/null 2>&1 ||
  { [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; }
[ "$word" = keep ] || rm -rf "$1"
exit 0`;

/** A server in `dir`, run by `user` (null: this user) from `bin`. */
class PrivatePostgres implements Postgres {
  readonly dir: string;
  port = 0;
  readonly #bin: string;
  readonly #user: string | null;
  readonly #durable: boolean;
  #running = false;
  /** The lifeline of the running server (see {@linkcode LIFELINE}). */
  #lifeline: Deno.ChildProcess | null = null;

  constructor(bin: string, user: string | null, dir: string, durable: boolean) {
    this.#bin = bin;
    this.#user = user;
    this.dir = dir;
    this.#durable = durable;
  }

  get url(): string {
    return `postgres://${DB}@127.0.0.1:${this.port}/${DB}`;
  }

  get #data(): string {
    return `${this.dir}/data`;
  }

  #log(): Promise<string> {
    return Deno.readTextFile(`${this.dir}/server.log`).catch(() => "");
  }

  async #tool(name: string, args: string[]) {
    const c = asUser(this.#user, `${this.#bin}/${name}`, args);
    return await run(c.cmd, c.args);
  }

  async #must(name: string, args: string[]): Promise<string> {
    const r = await this.#tool(name, args);
    if (r.code !== 0) {
      throw new Error(
        `${name} ${args.join(" ")} failed: ${
          (r.stderr + await this.#log()).trim()
        }`,
      );
    }
    return r.stdout;
  }

  /** initdb, start on a free port, and create the role and database. */
  async init(): Promise<void> {
    if (this.#user !== null) await must("chown", [`${this.#user}:`, this.dir]);
    await this.#must("initdb", [
      "-D",
      this.#data,
      "-U",
      "postgres",
      "--auth=trust",
      "--no-locale",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
    // A free port is free only until someone takes it: try a few.
    for (let attempt = 1;; attempt++) {
      this.port = freePort();
      try {
        await this.#launch();
        break;
      } catch (e) {
        const bindFailed = /could not bind|already in use/i.test(String(e));
        if (!bindFailed || attempt >= 3) throw e;
      }
    }
    await this.psql(`CREATE ROLE ${DB} LOGIN`);
    await this.psql(`CREATE DATABASE ${DB} OWNER ${DB}`);
  }

  async #launch(): Promise<void> {
    const settings = [
      `-p ${this.port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${this.dir}`,
      // 20 contender processes, each with its own connections.
      "-c max_connections=300",
      // Without fsync a commit still reaches the OS before it returns, so
      // an immediate stop (a crash of the server, not of the machine)
      // loses nothing; synchronous_commit stays on for that.
      ...(this.#durable ? [] : ["-c fsync=off"]),
    ];
    this.#lifeline = this.#spawnLifeline();
    const r = await this.#tool("pg_ctl", [
      "start",
      "-D",
      this.#data,
      "-l",
      `${this.dir}/server.log`,
      "-w",
      "-t",
      String(PG_CTL_TIMEOUT_S),
      "-o",
      settings.join(" "),
    ]);
    if (r.code !== 0) {
      const why = (r.stderr + await this.#log()).trim();
      await this.stop();
      throw new Error(`PostgreSQL did not start on port ${this.port}: ${why}`);
    }
    this.#running = true;
  }

  async start(): Promise<void> {
    if (!this.#running) await this.#launch();
  }

  #spawnLifeline(): Deno.ChildProcess {
    // Deno SIGKILLs its children when it dies of an uncaught error: the
    // shell runs in a session of its own (`setsid --fork`) so that only
    // its waiting parent dies then, and the shell sees the end of file.
    const c = asUser(this.#user, "setsid", [
      "--fork",
      "--wait",
      "sh",
      "-c",
      LIFELINE,
      "sh",
      this.dir,
      this.#bin,
    ]);
    return new Deno.Command(c.cmd, {
      args: c.args,
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  /**
   * Whatever state it is in: `pg_ctl stop -m immediate` (by closing the
   * lifeline), then SIGKILL.
   */
  async stop(): Promise<void> {
    const pidFile = await Deno.readTextFile(`${this.#data}/postmaster.pid`)
      .catch(() => "");
    const pid = Number(pidFile.split("\n")[0]) || null;
    const lifeline = this.#lifeline;
    this.#lifeline = null;
    if (lifeline !== null) {
      const w = lifeline.stdin.getWriter();
      await w.write(new TextEncoder().encode("keep\n")).catch(() => {});
      await w.close().catch(() => {});
      // pg_ctl's own wait is 10 s.
      const timer = setTimeout(() => lifeline.kill("SIGKILL"), 15_000);
      await lifeline.status;
      clearTimeout(timer);
    }
    if (pid !== null && alive(pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
      // Its children end once the postmaster is gone; bounded.
      const until = Date.now() + 5_000;
      while (alive(pid) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    this.#running = false;
  }

  psql(sql: string, database = "postgres"): Promise<string> {
    return this.#must("psql", [
      "-X",
      "-At",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      this.dir,
      "-p",
      String(this.port),
      "-U",
      "postgres",
      "-d",
      database,
      "-c",
      sql,
    ]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Start a private PostgreSQL on 127.0.0.1 (see the module doc). */
export async function startPostgres(
  options: PostgresOptions = {},
): Promise<Postgres> {
  const bin = postgresBinDir();
  if (bin === null) {
    throw new Error(
      `PostgreSQL cannot start: ${postgresMissing()}; under CI=true a test that needs it fails instead of being skipped`,
    );
  }
  const user = await unprivilegedUser();
  const dir = await Deno.makeTempDir({ prefix: "fiwi_pg_" });
  const pg = new PrivatePostgres(bin, user, dir, options.durable ?? false);
  try {
    await pg.init();
    return pg;
  } catch (e) {
    await pg[Symbol.asyncDispose]();
    throw e;
  }
}
