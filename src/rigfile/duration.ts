/**
 * Durations as people write them in rig files and on command lines:
 * `500ms`, `15s`, `2m`, `1h`, `1m30s`, `1.5s`; `0`, `none` and `off` mean
 * "no limit". A bare number is refused: `15` could mean seconds or
 * milliseconds, and guessing wrong silently is worse than asking.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Parse a duration into milliseconds, or return why it is not one (a
 * phrase to follow "Invalid x "value": "). Never throws.
 *
 * @example
 * ```ts
 * import { parseDuration } from "../../mod.ts";
 * console.log(parseDuration("1m30s")); // 90000
 * console.log(parseDuration("off")); // 0: no limit
 * console.log(typeof parseDuration("15")); // "string": why it is not one
 * ```
 */
export function parseDuration(value: unknown): number | string {
  if (value === 0 || value === "0") return 0;
  if (typeof value === "number") {
    return `a duration needs a unit: write "${value}s" or "${value}ms"`;
  }
  if (typeof value !== "string") {
    return `use a duration like "500ms", "15s" or "2m"`;
  }
  const text = value.trim();
  if (text === "none" || text === "off") return 0;
  if (/^\d+(\.\d+)?$/.test(text)) {
    return `a duration needs a unit: write "${text}s" or "${text}ms"`;
  }
  let total = 0;
  let at = 0;
  while (at < text.length) {
    PART.lastIndex = at;
    const m = PART.exec(text);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]];
    at = PART.lastIndex;
  }
  if (text === "" || at < text.length) {
    return `use a number and a unit (ms, s, m, h) like "500ms", "15s" or "2m"`;
  }
  return Math.round(total);
}

/** Format milliseconds the way {@linkcode parseDuration} reads them. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A value as shown in error messages: quoted scalars, described collections. */
export function shown(value: unknown): string {
  if (value === null || value === undefined) return "(empty)";
  if (Array.isArray(value)) return "(a list)";
  if (typeof value === "object") return "(a mapping)";
  return JSON.stringify(value);
}
