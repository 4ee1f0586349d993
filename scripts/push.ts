/**
 * `fiwi push SRC... DESTDIR`: copy local files or directories into DESTDIR on
 * many nodes at once, with a byte progress line on a
 * terminal, NDJSON with `--json`, a summary and the usual exit codes
 * (scripts/_transfer.ts).
 *
 * @module
 */

import { type CliSpec, runCli } from "./_cli.ts";
import { transfer, transferSpec } from "./_transfer.ts";

/** What `fiwi push` is and accepts (for --help, completions and the man page). */
export const SPEC: CliSpec = transferSpec("push");

/** `fiwi push`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(SPEC, args, (ctx) => transfer("push", ctx));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
