/**
 * What a tool's processes cost on the controller, sampled from /proc about
 * every 100 ms: peak process count, peak ssh count and peak RSS summed over
 * them, and the CPU of those that escaped the tool's process tree.
 *
 * A process belongs to the tool when its environment carries the tool's
 * token (`FIWI_SCALE_TOKEN=<token>`, inherited by every descendant, also
 * by an ssh ControlMaster that detached and was reparented to init), or
 * when its parent belongs. Processes sshd starts on the loopback nodes and
 * gateways do not carry it, so they never count: they stand for other
 * machines.
 *
 * CPU: `/usr/bin/time` reports the tool and every descendant reaped in its
 * tree (getrusage); a process that escaped it (a detached master) is
 * reaped by init, so its CPU is taken from the samples instead: its ticks
 * at the last sample, less its ticks when the window opened.
 *
 * Reading another process's /proc takes `--allow-all` in Deno.
 *
 * @module
 */

/** The environment variable that marks a tool's processes. */
export const TOKEN_VAR = "FIWI_SCALE_TOKEN";

const CLK_TCK = 100;
const PAGE = 4096;
const decoder = new TextDecoder();

/** One process as /proc/<pid>/stat shows it. */
interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime, ticks. */
  ticks: number;
  start: number;
  rssPages: number;
}

function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = decoder.decode(Deno.readFileSync(`/proc/${pid}/stat`));
  } catch {
    return null;
  }
  // comm may hold spaces and parentheses: the fields start after the last ")".
  const close = text.lastIndexOf(")");
  const f = text.slice(close + 2).split(" ");
  const field = (n: number) => Number(f[n - 3]);
  return {
    comm: text.slice(text.indexOf("(") + 1, close),
    ppid: field(4),
    ticks: field(14) + field(15),
    start: field(22),
    rssPages: field(24),
  };
}

/**
 * Whether `pid`'s command line holds one of `marks`. ssh's setproctitle
 * reuses the environment's memory for a master's title ("ssh: <control
 * path> [mux]"), so a detached master is known by its control dir instead.
 */
function named(pid: number, marks: string[]): boolean {
  if (marks.length === 0) return false;
  try {
    const cmd = decoder.decode(Deno.readFileSync(`/proc/${pid}/cmdline`));
    return marks.some((m) => cmd.includes(m));
  } catch {
    return false;
  }
}

function carries(pid: number, tokens: string[]): boolean {
  let env: string;
  try {
    env = decoder.decode(Deno.readFileSync(`/proc/${pid}/environ`));
  } catch {
    return false;
  }
  return tokens.some((t) => env.includes(`\0${TOKEN_VAR}=${t}\0`)) ||
    tokens.some((t) => env.startsWith(`${TOKEN_VAR}=${t}\0`));
}

/** A member process seen so far. */
interface Member {
  start: number;
  comm: string;
  /** Ticks when first seen, if it already ran when the window opened. */
  baseTicks: number;
  lastTicks: number;
  lastPpid: number;
  rssPages: number;
  alive: boolean;
}

/** What {@linkcode TreeSampler.stop} reports. */
export interface TreeStats {
  /** Most member processes alive at one sample. */
  peakProcs: number;
  /** Most member processes named `ssh` alive at one sample. */
  peakSsh: number;
  /** Largest sum of members' RSS at one sample, MB. */
  peakRssMb: number;
  /** CPU seconds of members outside the reaped tree (detached masters). */
  escapedCpuS: number;
  /** Members alive at the last sample whose parent was not a member. */
  escapedAlive: number[];
  /** Samples taken. */
  samples: number;
}

/**
 * Samples the processes carrying any of `tokens` until {@linkcode stop}.
 * The first sample runs at construction, so processes alive before the
 * window (warm masters) count from their ticks then.
 */
export class TreeSampler {
  #members = new Map<number, Member>();
  /** Pids known not to belong (forgotten when they vanish). */
  #others = new Map<number, number>();
  #peakProcs = 0;
  #peakSsh = 0;
  #peakRss = 0;
  #samples = 0;
  #stopped = false;
  #loop: Promise<void>;

  /**
   * Start sampling the processes that carry any of `tokens`, or whose
   * command line holds one of `marks` (a control dir).
   */
  constructor(
    private tokens: string[],
    private marks: string[] = [],
    private intervalMs = 100,
  ) {
    this.#sample(true);
    this.#loop = this.#run();
  }

  /**
   * The measuring wrapper's pid (`timeout`): a member, but neither the tool
   * nor escaped from it.
   */
  root = 0;

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const t = performance.now();
      this.#sample(false);
      const cost = performance.now() - t;
      // Keep the sampler's own CPU near a tenth of one core.
      await new Promise((r) =>
        setTimeout(r, Math.max(this.intervalMs - cost, cost * 9))
      );
    }
  }

  #sample(first: boolean): void {
    this.#samples++;
    const seen = new Set<number>();
    const fresh: [number, Stat][] = [];
    for (const entry of Deno.readDirSync("/proc")) {
      const pid = Number(entry.name);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      seen.add(pid);
      const known = this.#members.get(pid);
      const other = this.#others.get(pid);
      if (known === undefined && other !== undefined) continue;
      const stat = readStat(pid);
      if (stat === null) continue;
      if (known !== undefined && known.start === stat.start) {
        known.lastTicks = stat.ticks;
        known.lastPpid = stat.ppid;
        known.rssPages = stat.rssPages;
        known.alive = true;
        known.comm = stat.comm;
        continue;
      }
      fresh.push([pid, stat]);
    }
    // Parents first, so a child of a new member joins in the same sample.
    fresh.sort((a, b) => a[1].start - b[1].start);
    for (const [pid, stat] of fresh) {
      const parent = this.#members.get(stat.ppid);
      const member = pid === this.root ||
        (parent !== undefined && parent.alive) || carries(pid, this.tokens) ||
        named(pid, this.marks);
      if (!member) {
        this.#others.set(pid, stat.start);
        continue;
      }
      this.#members.set(pid, {
        start: stat.start,
        comm: stat.comm,
        baseTicks: first ? stat.ticks : 0,
        lastTicks: stat.ticks,
        lastPpid: stat.ppid,
        rssPages: stat.rssPages,
        alive: true,
      });
    }
    let procs = 0;
    let ssh = 0;
    let rssPages = 0;
    for (const [pid, m] of this.#members) {
      if (!seen.has(pid)) m.alive = false;
      if (!m.alive) continue;
      procs++;
      if (m.comm === "ssh") ssh++;
      rssPages += m.rssPages;
    }
    for (const pid of this.#others.keys()) {
      if (!seen.has(pid)) this.#others.delete(pid);
    }
    this.#peakProcs = Math.max(this.#peakProcs, procs);
    this.#peakSsh = Math.max(this.#peakSsh, ssh);
    this.#peakRss = Math.max(this.#peakRss, rssPages * PAGE / 2 ** 20);
  }

  /** Take a last sample and stop. */
  async stop(): Promise<TreeStats> {
    this.#stopped = true;
    await this.#loop;
    this.#sample(false);
    let ticks = 0;
    const escapedAlive: number[] = [];
    for (const [pid, m] of this.#members) {
      const parent = this.#members.get(m.lastPpid);
      const escaped = pid !== this.root && parent === undefined;
      if (!escaped) continue;
      ticks += m.lastTicks - m.baseTicks;
      if (m.alive) escapedAlive.push(pid);
    }
    return {
      peakProcs: this.#peakProcs,
      peakSsh: this.#peakSsh,
      peakRssMb: this.#peakRss,
      escapedCpuS: ticks / CLK_TCK,
      escapedAlive,
      samples: this.#samples,
    };
  }
}

/**
 * Pids of live processes carrying `token` or a token `<token>-…`, or whose
 * command line holds one of `marks` (leftovers after a tool and the runs
 * that followed it).
 */
export function carriers(token: string, marks: string[] = []): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === Deno.pid) continue;
    if (named(pid, marks)) {
      out.push(pid);
      continue;
    }
    let env: string;
    try {
      env = decoder.decode(Deno.readFileSync(`/proc/${pid}/environ`));
    } catch {
      continue;
    }
    const at = `\0${env}`.indexOf(`\0${TOKEN_VAR}=${token}`);
    if (at === -1) continue;
    const next = env[at + TOKEN_VAR.length + token.length + 1];
    if (next === "\0" || next === "-") out.push(pid);
  }
  return out;
}
