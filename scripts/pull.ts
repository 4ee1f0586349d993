/**
 * `fiwi pull SRC... DESTDIR`: copy remote files or directories from many
 * nodes at once into DESTDIR/<node>/, with a byte progress line on a
 * terminal, NDJSON with `--json`, a summary and the usual exit codes
 * (scripts/_transfer.ts).
 *
 * @module
 */

import { runCli } from "./_cli.ts";
import { transfer, transferSpec } from "./_transfer.ts";

/** `fiwi pull`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(transferSpec("pull"), args, (ctx) => transfer("pull", ctx));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
