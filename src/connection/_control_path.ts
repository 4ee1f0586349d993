/**
 * The control socket path of a node without asking ssh. `ssh -G` tells it
 * exactly, but costs a process start each (about 10 ms of CPU here): for
 * `fiwi close` over 1,000 nodes that was seconds before anything was
 * closed. OpenSSH 9.2 expands `%C` to the SHA-1 (hex) of the local host
 * name, the remote host, port and user; a guess built the same way from the
 * node's own argv is right unless the ssh config rewrites the host, port or
 * user (`Hostname`, `Port`, `User`, `Match`). So a guess is only trusted
 * when a socket is found under it; see {@linkcode guessControlPath}.
 *
 * @module
 */

import { controlArgv, type TransportSpec } from "../transport/argv.ts";

let localHost: string | null | undefined;
function hostName(): string | null {
  if (localHost !== undefined) return localHost;
  try {
    localHost = Deno.hostname();
  } catch {
    localHost = null; // no --allow-sys=hostname: never guess
  }
  return localHost;
}

/**
 * The control socket path ssh would use for `spec` if no ssh config rewrote
 * its host, port or user; null when it cannot be guessed (no user given,
 * `%` tokens other than `%C`, options that may change the hash).
 */
export async function guessControlPath(
  spec: TransportSpec,
): Promise<string | null> {
  const argv = controlArgv(spec, "check");
  const here = hostName();
  if (!argv || !here) return null;
  const path = argv.find((a) => a.startsWith("ControlPath="))
    ?.slice("ControlPath=".length);
  const dash = argv.indexOf("--");
  const dest = argv[dash + 1];
  const at = dest.lastIndexOf("@");
  if (!path || at < 0) return null;
  const template = path.replaceAll("%C", "");
  if (template.includes("%") || template.includes("~")) return null;
  const rewrites = Object.keys(spec.sshOptions).some((k) =>
    /^(hostname|port|user|controlpath|proxyjump|match)$/i.test(k)
  );
  if (rewrites) return null;
  const p = argv.indexOf("-p");
  const port = p >= 0 && p < dash ? argv[p + 1] : "22";
  const user = dest.slice(0, at);
  const host = dest.slice(at + 1);
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(`${here}${host}${port}${user}`),
  );
  const hex = [...new Uint8Array(digest)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return path.replaceAll("%C", hex);
}

/** The names in `dir` (sockets and anything else), as full paths; empty when it cannot be read. */
export async function entriesOf(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  try {
    for await (const e of Deno.readDir(dir)) found.add(`${dir}/${e.name}`);
  } catch { /* missing or unreadable: nothing to find there */ }
  return found;
}
