/**
 * The state file is the user's own and private, as the central log is:
 * never a symbolic link, a regular file of this user that group and others
 * cannot access (created 0600), in a directory of this user that group and
 * others cannot write (created 0700). The directory matters here because
 * SQLite creates `-wal` and `-shm` files next to the database, by name:
 * another user who could write there could plant links for them.
 *
 * @module
 */

import { dirname } from "jsr:@std/path@^1";
import { ConfigurationError } from "../errors.ts";
import {
  checkPrivateFile,
  myUid,
  octalMode,
  type PrivateFileKind,
  refusePrivateFile,
  replacedPrivateFile,
} from "./private_file.ts";

const KIND: PrivateFileKind = { label: "State store", option: "--db" };
const ELSEWHERE = "give --db a file of your own";

function refuse(path: string, why: string): ConfigurationError {
  return refusePrivateFile(KIND, path, why);
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Refuse a directory for the state file that another user could write to. */
function checkStateDir(path: string, dir: string, info: Deno.FileInfo): void {
  const where = `is in "${dir}"`;
  if (!info.isDirectory) {
    throw refuse(path, `${where}, which is not a directory: ${ELSEWHERE}`);
  }
  const uid = myUid();
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    throw refuse(
      path,
      `${where}, which belongs to uid ${info.uid}, not to you (uid ${uid}): ${ELSEWHERE}`,
    );
  }
  if (info.mode !== null && (info.mode & 0o022) !== 0) {
    throw refuse(
      path,
      `${where}, which group or others may write to (mode ${
        octalMode(info.mode)
      }): run chmod 700 "${dir}", or ${ELSEWHERE}`,
    );
  }
}

function cannot(path: string, what: string, e: unknown): ConfigurationError {
  const msg = e instanceof Error ? e.message : String(e);
  return new ConfigurationError(
    `Cannot ${what} for state store "${path}": ${msg}`,
    { cause: e },
  );
}

/**
 * Make `path` a private file fit for the store: create its directory (0700;
 * the ones above it with the usual mode) and the file (0600, O_EXCL: never
 * through anything planted meanwhile) when missing, and check both. Returns
 * the file's inode, for {@linkcode checkSameFile} once SQLite has opened it.
 */
export function preparePrivateFile(path: string): number | null {
  const dir = dirname(path);
  let dirInfo: Deno.FileInfo;
  try {
    dirInfo = Deno.statSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw cannot(path, `use the directory "${dir}"`, e);
    }
    try {
      Deno.mkdirSync(dirname(dir), { recursive: true });
      Deno.mkdirSync(dir, { mode: 0o700 });
      dirInfo = Deno.statSync(dir);
    } catch (e) {
      throw cannot(path, `create the directory "${dir}"`, e);
    }
  }
  checkStateDir(path, dir, dirInfo);
  let info = lstatOrNull(path);
  if (info === null) {
    try {
      Deno.openSync(path, { write: true, createNew: true, mode: 0o600 })
        .close();
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw cannot(path, "create the file", e);
      }
    }
    info = Deno.lstatSync(path);
  }
  checkPrivateFile(path, info, KIND);
  return info.ino;
}

/** Refuse when `path` is no longer the file {@linkcode preparePrivateFile} checked. */
export function checkSameFile(path: string, ino: number | null): void {
  const now = lstatOrNull(path);
  if (now === null || now.ino !== ino) {
    throw replacedPrivateFile(KIND, path);
  }
  checkPrivateFile(path, now, KIND);
}
