/**
 * Where the state store is by default.
 *
 * @module
 */

import { isAbsolute, join } from "jsr:@std/path@^1";
import { ConfigurationError } from "../errors.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // not permitted: the default applies
  }
}

/**
 * The default state file: `$XDG_STATE_HOME/fiwi/state.db`, else
 * `~/.local/state/fiwi/state.db` (a relative XDG_STATE_HOME is ignored, as
 * the XDG spec says). Throws a `ConfigurationError` when neither variable
 * gives a place.
 *
 * @example
 * ```ts
 * import { defaultStatePath } from "../../mod.ts";
 * console.log(defaultStatePath()); // e.g. /home/me/.local/state/fiwi/state.db
 * ```
 */
export function defaultStatePath(): string {
  const state = env("XDG_STATE_HOME");
  if (state && isAbsolute(state)) return join(state, "fiwi", "state.db");
  const home = env("HOME");
  if (home && isAbsolute(home)) {
    return join(home, ".local", "state", "fiwi", "state.db");
  }
  throw new ConfigurationError(
    "No place for the state store: neither XDG_STATE_HOME nor HOME is an absolute path: set one, or give --db FILE",
  );
}
