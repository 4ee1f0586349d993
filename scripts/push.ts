/**
 * `fiwi push SRC... DESTDIR`: copy local files or directories into DESTDIR on
 * many nodes at once, with a byte progress line on a
 * terminal, NDJSON with `--json`, a summary and the usual exit codes
 * (scripts/_transfer.ts).
 *
 * @module
 */

import { runCli } from "./_cli.ts";
import { transfer, transferSpec } from "./_transfer.ts";

/** `fiwi push`: resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCli(transferSpec("push"), args, (ctx) => transfer("push", ctx));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
