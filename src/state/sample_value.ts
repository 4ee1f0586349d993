/**
 * The numeric value of a poll sample, read from its output.
 *
 * @module
 */

/**
 * A decimal number: a sign only where it cannot be a hyphen inside a word,
 * digits not continuing an earlier number, an optional fraction and
 * exponent.
 */
const NUMBER =
  /(?:(?<![\w.])[-+])?(?<![\d.])(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?/;

/** The first number in `text`, or null. */
function firstNumber(text: string): number | null {
  const m = NUMBER.exec(text);
  if (!m) return null;
  const value = Number(m[0]);
  return Number.isFinite(value) ? value : null;
}

/**
 * The numeric value of a poll sample's `output`.
 *
 * Without `pattern`, the first number in the output (`load average: 0.52,
 * 0.58` gives 0.52, `temp=-3.5C` gives -3.5). With `pattern`, the part it
 * picks: the group named `value`, else the first group that matched, else
 * the whole match; that part is read as a number (its first number, so
 * `(\S+)` on `42%` gives 42). Null when nothing matches or no number is
 * there. A global or sticky pattern is read from the start each time.
 *
 * @param output the sample's output
 * @param pattern picks the value (`--value REGEX`)
 * @returns the value, or null
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { parseSampleValue } from "../../mod.ts";
 * assertEquals(parseSampleValue("load average: 0.52, 0.58"), 0.52);
 * assertEquals(parseSampleValue("cpu 3 load=17", /load=(\d+)/), 17);
 * assertEquals(parseSampleValue("link up"), null);
 * ```
 */
export function parseSampleValue(
  output: string,
  pattern?: RegExp,
): number | null {
  if (pattern === undefined) return firstNumber(output);
  if (pattern.global || pattern.sticky) pattern.lastIndex = 0;
  const m = pattern.exec(output);
  if (!m) return null;
  const picked = m.groups?.value ?? m.slice(1).find((g) => g !== undefined) ??
    m[0];
  return firstNumber(picked);
}
