/**
 * The private directory of ControlMaster sockets. Whoever controls it
 * controls every command fiwi runs through a master: a socket planted there
 * receives the command text and the client's streams. So every component of
 * the path is checked with `lstat` before ssh gets to use it.
 *
 * The rules, walking from `/` down to the socket directory:
 * - each component is a directory owned by root or by us;
 * - none is writable by group or others, except a root-owned directory with
 *   the sticky bit (`/tmp`, mode 1777), where others cannot rename or remove
 *   what we create;
 * - a symbolic link is followed only when it is owned by root or us and sits
 *   in a directory nobody else can write (`/var/run`, macOS `/tmp`); the
 *   socket directory itself is never a link;
 * - a missing component is created with `mkdir` 0700, one level at a time,
 *   then checked like the others (whoever created it first, it must be ours);
 * - the socket directory must be ours. If it is group- or world-readable but
 *   writable only by us, it is chmod-ed to 0700 after `lstat` showed a real
 *   directory of ours in a parent nobody else can change. If others can
 *   write to it, it is refused rather than repaired: they may already have
 *   put a socket in it.
 *
 * Anything else is refused with a {@linkcode ConfigurationError} naming the
 * path and its owner.
 *
 * The same walk guards the local directory a pull writes into
 * (`destDir/<node>`, see {@linkcode ensureSafeDir}): there missing
 * components are created with the usual mode (0777 less the umask), and the
 * last one must belong to us or root and be writable by nobody else, but
 * keeps its mode.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

const MAX_LINKS = 8;

/**
 * What a checked directory is for: how it is named in messages, what a
 * refusal advises, and what becomes of the last component.
 */
export interface SafeDirRules {
  /** What the directory is, in messages: `ControlMaster directory`. */
  label: string;
  /** The advice that ends a refusal: `remove it, or …`. */
  hint: string;
  /** Mode of the missing components it creates (before the umask). */
  createMode: number;
  /**
   * `private`: the last component must be ours and is chmod-ed to 0700
   * when others can read it (the socket directory). `safe`: it must belong
   * to us or root and nobody else may write to it, sticky or not; its mode
   * is left alone (a pull's `destDir/<node>`).
   */
  last: "private" | "safe";
}

const CONTROL_DIR_RULES: SafeDirRules = {
  label: "ControlMaster directory",
  hint:
    "remove it, or set controlDir or FIWI_CONTROL_DIR to a directory only you can write",
  createMode: 0o700,
  last: "private",
};

/**
 * Create `dir` if missing and make sure it is private to the current user
 * (see the module documentation for the rules). Rejects with
 * {@linkcode ConfigurationError} naming the unsafe path and its owner.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await ensureSafeDir(dir, CONTROL_DIR_RULES);
}

/**
 * Create `dir` if missing and check every component of its path by the
 * rules of the module documentation, with `rules` deciding the label of
 * messages, the mode of what it creates and what the last component must
 * be. One checker for every directory fiwi must not be redirected out of:
 * the ControlMaster directory, and the local directory a pull writes into.
 * Rejects with {@linkcode ConfigurationError} naming the unsafe path and
 * its owner.
 */
export async function ensureSafeDir(
  dir: string,
  rules: SafeDirRules,
): Promise<void> {
  const uid = Deno.uid();
  if (uid === null) {
    // No owners to check (Windows): ssh does not multiplex there anyway.
    await Deno.mkdir(dir, { recursive: true });
    return;
  }
  const absolute = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
  await walk({ dir, uid, rules }, absolute, 0);
}

/** What every step of one walk shares. */
interface Walk {
  /** The directory as the caller named it, for messages. */
  dir: string;
  uid: number;
  rules: SafeDirRules;
}

async function walk(w: Walk, path: string, links: number): Promise<void> {
  const { uid } = w;
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  let parent = await check(w, "/");
  for (const [i, part] of parts.entries()) {
    const current = `${parent.path === "/" ? "" : parent.path}/${part}`;
    const last = i === parts.length - 1;
    const st = await lstatOrCreate(w, current);
    if (st.isSymlink) {
      if (last || links >= MAX_LINKS || parent.open || !trusted(st, uid)) {
        throw await unsafe(w, current, st, "is a symbolic link");
      }
      const rest = parts.slice(i + 1).join("/");
      const target = await Deno.realPath(current).catch((e) => {
        throw cannotCheck(w, current, e);
      });
      return walk(w, `${target}/${rest}`, links + 1);
    }
    parent = await check(w, current, st);
    if (last && w.rules.last === "private") {
      await makePrivate(w, current, st);
    } else if (last && parent.open) {
      // Sticky or not: others could create names in it before we do.
      throw await unsafe(w, current, st, "is writable by other users");
    }
  }
}

interface Checked {
  path: string;
  /** Others can create entries in it (a sticky, world-writable directory). */
  open: boolean;
}

async function check(
  w: Walk,
  path: string,
  known?: Deno.FileInfo,
): Promise<Checked> {
  const st = known ?? await lstat(w, path);
  if (!st.isDirectory) throw await unsafe(w, path, st, "is not a directory");
  if (!trusted(st, w.uid)) throw await unsafe(w, path, st, "belongs to");
  const writable = ((st.mode ?? 0) & 0o022) !== 0;
  const sticky = ((st.mode ?? 0) & 0o1000) !== 0;
  if (writable && !(sticky && st.uid === 0)) {
    throw await unsafe(w, path, st, "is writable by other users");
  }
  return { path, open: writable };
}

function trusted(st: Deno.FileInfo, uid: number): boolean {
  return st.uid === uid || st.uid === 0;
}

async function lstatOrCreate(w: Walk, path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw cannotCheck(w, path, e);
  }
  try {
    await Deno.mkdir(path, { mode: w.rules.createMode });
  } catch (e) {
    // Someone created it between lstat and mkdir: check what is there now.
    if (!(e instanceof Deno.errors.AlreadyExists)) {
      throw cannotCheck(w, path, e);
    }
  }
  return await lstat(w, path);
}

function lstat(w: Walk, path: string): Promise<Deno.FileInfo> {
  return Deno.lstat(path).catch((e) => {
    throw cannotCheck(w, path, e);
  });
}

async function makePrivate(
  w: Walk,
  path: string,
  st: Deno.FileInfo,
): Promise<void> {
  if (st.uid !== w.uid) throw await unsafe(w, path, st, "belongs to");
  const mode = st.mode ?? 0;
  if ((mode & 0o022) !== 0) {
    throw await unsafe(w, path, st, "is writable by other users");
  }
  // lstat showed a real directory of ours, in a parent others cannot change:
  // chmod reaches that directory and nothing else.
  if ((mode & 0o077) !== 0) await Deno.chmod(path, 0o700);
}

/** `label` in sentence case, to begin a message. */
function capitalized(label: string): string {
  return label[0].toUpperCase() + label.slice(1);
}

function cannotCheck(w: Walk, path: string, e: unknown): Error {
  return new ConfigurationError(
    `${capitalized(w.rules.label)} "${w.dir}" cannot be checked at "${path}": ${
      (e as Error).message
    }`,
    { cause: e },
  );
}

async function unsafe(
  w: Walk,
  path: string,
  st: Deno.FileInfo,
  what: string,
): Promise<ConfigurationError> {
  const owner = await ownerName(st.uid);
  const mode = ((st.mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
  const detail = what === "belongs to"
    ? `belongs to ${owner}`
    : `${what} (owner ${owner}, mode ${mode})`;
  const where = path === w.dir ? `"${w.dir}"` : `"${w.dir}": "${path}"`;
  return new ConfigurationError(
    `Unsafe ${w.rules.label} ${where} ${detail}; ${w.rules.hint}`,
  );
}

/** `user "name" (uid N)` from /etc/passwd, or `uid N` when it is not there. */
export async function ownerName(uid: number | null): Promise<string> {
  if (uid === null) return "unknown";
  try {
    const passwd = await Deno.readTextFile("/etc/passwd");
    for (const line of passwd.split("\n")) {
      const [name, , id] = line.split(":");
      if (id === String(uid) && name) return `user "${name}" (uid ${uid})`;
    }
  } catch { /* unreadable or no --allow-read: the uid alone */ }
  return `uid ${uid}`;
}
