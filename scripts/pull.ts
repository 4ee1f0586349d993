/**
 * `fiwi pull SRC... DESTDIR`: copy remote files or directories from many
 * nodes at once into DESTDIR/<node>/, with a byte progress line on a
 * terminal, NDJSON with `--json`, a summary and the usual exit codes
 * (scripts/_transfer.ts).
 *
 * @module
 */

import { type CliSpec, runCli } from "./_cli.ts";
import { transfer, transferSpec } from "./_transfer.ts";

/** What `fiwi pull` is and accepts (for --help, completions and the man page). */
export const SPEC: CliSpec = transferSpec("pull");

/** `fiwi pull`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, (ctx) => transfer("pull", ctx));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
