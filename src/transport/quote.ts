/**
 * Quoting for POSIX shells: every word fiwi hands to a remote or local shell
 * goes through {@linkcode shellQuote}. Pure.
 *
 * @module
 */

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote a string for a POSIX shell. Safe words pass unchanged; anything else
 * is put in single quotes, with embedded single quotes spelled `'\''`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { shellQuote } from "./quote.ts";
 * assertEquals(shellQuote("it's"), "'it'\\''s'");
 * ```
 */
export function shellQuote(value: string): string {
  if (value !== "" && SAFE_WORD.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Join argv into one command line for a POSIX shell. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}
