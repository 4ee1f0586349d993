/**
 * The rules for a file fiwi keeps for its user alone (the central log, the
 * state store): never a symbolic link, a regular file of this user that
 * group and others cannot access. One place states them, so every private
 * file is refused for the same reasons, in the same words.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

/** Which private file a refusal is about, for its one-line message. */
export interface PrivateFileKind {
  /** What the file is, capitalised: "Log file", "State store". */
  label: string;
  /** The option that names another file: "--log", "--db". */
  option: string;
}

/** `0644` for a mode, as `ls -l` users write it. */
export function octalMode(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, "0");
}

/** This process's uid, or null where it may not be read (no `--allow-sys`). */
export function myUid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null; // not permitted: the owner cannot be compared
  }
}

/** A one-line refusal of `path`, naming its kind. */
export function refusePrivateFile(
  kind: PrivateFileKind,
  path: string,
  why: string,
): ConfigurationError {
  return new ConfigurationError(`${kind.label} "${path}" ${why}`);
}

/**
 * Throw a one-line `ConfigurationError` when the file at `path`, whose
 * `lstat` is `info`, is not private: a symbolic link, not a regular file,
 * another user's, or open to group or others. Each message says what to do.
 *
 * @example
 * ```ts
 * import { checkPrivateFile } from "../../mod.ts";
 * const path = Deno.makeTempFileSync(); // created 0600
 * checkPrivateFile(path, Deno.lstatSync(path), { label: "Log file", option: "--log" });
 * Deno.removeSync(path);
 * ```
 */
export function checkPrivateFile(
  path: string,
  info: Deno.FileInfo,
  kind: PrivateFileKind,
): void {
  const elsewhere = `give ${kind.option} a file of your own`;
  const refuse = (why: string) => refusePrivateFile(kind, path, why);
  if (info.isSymlink) {
    throw refuse(
      `is a symbolic link, which fiwi does not follow: remove it, or ${elsewhere}`,
    );
  }
  if (!info.isFile) throw refuse(`is not a regular file: ${elsewhere}`);
  const uid = myUid();
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    throw refuse(
      `belongs to uid ${info.uid}, not to you (uid ${uid}): remove it, or ${elsewhere}`,
    );
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw refuse(
      `is open to group or others (mode ${
        octalMode(info.mode)
      }): run chmod 600 "${path}", or ${elsewhere}`,
    );
  }
}

/** The refusal for a path that named another file once fiwi had opened it. */
export function replacedPrivateFile(
  kind: PrivateFileKind,
  path: string,
): ConfigurationError {
  return refusePrivateFile(
    kind,
    path,
    `was replaced while fiwi opened it: check who else writes to its directory, or give ${kind.option} a file of your own`,
  );
}
