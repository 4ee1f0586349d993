/**
 * YAML with source positions: `@std/yaml` parses the document (and reports
 * syntax errors with their line and column); a small locator then reads the
 * same text for where each key and value starts, so a validator working on
 * the plain data can point at the exact line and column of a bad key.
 *
 * Why not the npm `yaml` package, which keeps positions: it reads the
 * environment variables `LOG_TOKENS` and `LOG_STREAM` on every parse, so
 * under Deno it needs `--allow-env` for them and throws without it, which a
 * library must not impose on its callers.
 *
 * The locator understands the YAML a rig file uses: block mappings and
 * sequences (also `- key: value` items), flow collections over one or more
 * lines, plain and quoted keys, comments, anchors and tags, block and
 * multi-line quoted scalars. For anything else, a path without a position
 * falls back to its nearest located ancestor: still the right region, never
 * a wrong line. It only runs on text std has accepted.
 *
 * @module
 */

import { parse } from "jsr:@std/yaml@^1";
import { prescanYaml } from "./_yaml_prescan.ts";

/** A 1-based place in the source text. */
export interface Pos {
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

/** One step of a path: a mapping key or a sequence index. */
export type PathStep = string | number;

/** A key given twice in one mapping. */
export interface DuplicateKey {
  /** Path of the key (its mapping's path plus the key). */
  path: PathStep[];
  /** Where the key is first given. */
  first: Pos;
  /** Where it is given again. */
  again: Pos;
}

/** A YAML syntax error at a place. */
export class YamlSyntaxError extends Error {
  /** Where the error is. */
  readonly pos: Pos;
  /**
   * @param message what is wrong, without the place
   * @param pos where
   */
  constructor(message: string, pos: Pos) {
    super(message);
    this.name = "YamlSyntaxError";
    this.pos = pos;
  }
}

/** A parsed document: plain data plus positions by path. */
export interface LocatedYaml {
  /** The document as plain JavaScript values (null when empty). */
  data: unknown;
  /** Where the key (or sequence item) at `path` starts; nearest ancestor if unknown. */
  keyAt(path: readonly PathStep[]): Pos;
  /** Where the value at `path` starts; its key if the value is empty. */
  valueAt(path: readonly PathStep[]): Pos;
  /** Keys given twice in a mapping, in document order. */
  duplicates: DuplicateKey[];
}

const ORIGIN: Pos = { line: 1, column: 1 };

function keyOf(path: readonly PathStep[]): string {
  return JSON.stringify(path);
}

/**
 * Parse one YAML document. Throws {@linkcode YamlSyntaxError} (with the
 * place std reports) for malformed text, too deep nesting or tab
 * indentation. Duplicate keys the locator sees are not an error here: they
 * are listed in {@linkcode LocatedYaml.duplicates} (the last value wins in
 * the data) for the caller to report. Positions are located on the first
 * lookup only: a file that checks out never pays for them.
 */
export function parseYamlWithPositions(text: string): LocatedYaml {
  const problem = prescanYaml(text);
  if (problem) {
    const { message, line, column } = problem;
    throw new YamlSyntaxError(message, { line, column });
  }
  let located: Located | undefined;
  const locator = (): Located => located ??= locateOrNothing(text);
  let data: unknown;
  let duplicates: DuplicateKey[] = [];
  try {
    data = parse(text);
  } catch (e) {
    const message = (e as Error).message;
    if (e instanceof RangeError) {
      // The prescan misread something and let a deep nesting through.
      throw new YamlSyntaxError(
        "Collections nest too deeply to parse: a rig file needs only a few levels",
        ORIGIN,
      );
    }
    if (/duplicated key/.test(message) && locator().duplicates.length > 0) {
      // The caller reports duplicates with both places and their meaning.
      duplicates = locator().duplicates;
      data = parse(text, { allowDuplicateKeys: true });
    } else {
      const m = /^(.*?)(?: at line (\d+), column (\d+))?:?\n/s.exec(
        message + "\n",
      );
      const what = (m?.[1] ?? message).trim();
      throw new YamlSyntaxError(
        what.charAt(0).toUpperCase() + what.slice(1),
        m?.[2] ? { line: Number(m[2]), column: Number(m[3]) } : ORIGIN,
      );
    }
  }
  const nearest = (path: readonly PathStep[]): Pos => {
    for (let n = path.length; n > 0; n--) {
      const hit = locator().find(path.slice(0, n));
      if (hit) return hit.key;
    }
    return ORIGIN;
  };
  return {
    data: data ?? null,
    keyAt: nearest,
    valueAt: (path) => locator().find(path)?.value ?? nearest(path),
    duplicates,
  };
}

/** {@linkcode locate}, or no positions at all if it overflows the stack. */
function locateOrNothing(text: string): Located {
  try {
    return locate(text);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return { find: () => undefined, duplicates: [] };
  }
}

/** Where a key (or sequence item) and its value start. */
export interface Entry {
  /** The key, or the dash of a sequence item. */
  key: Pos;
  /** The value; the key when the value is empty. */
  value: Pos;
}

/** What {@linkcode locate} found. */
export interface Located {
  /** Where the key and value at `path` start, if the locator saw them. */
  find(path: readonly PathStep[]): Entry | undefined;
  /** Keys given twice in a mapping, in document order. */
  duplicates: DuplicateKey[];
}

interface Context {
  /** 0-based column of this collection's keys or dashes. */
  indent: number;
  kind: "map" | "seq";
  path: PathStep[];
  /** Next sequence index. */
  next: number;
  /** Keys seen in this mapping. */
  keys: Map<string, Pos>;
}

/**
 * Where keys and values start, by path. Never throws; parts it does not
 * understand are left out.
 */
export function locate(text: string): Located {
  // Offsets only: positions are worked out for the few paths looked up.
  const table = new Map<string, [number, number]>();
  const duplicates: DuplicateKey[] = [];
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\n") lineStarts.push(i + 1);
  }
  const pos = (offset: number): Pos => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - lineStarts[lo] + 1 };
  };
  const lineEnd = (offset: number): number => {
    const n = text.indexOf("\n", offset);
    return n < 0 ? text.length : n;
  };
  const record = (
    path: PathStep[],
    keyOff: number,
    valueOff: number,
    keys?: Map<string, Pos>,
  ) => {
    const name = path.at(-1);
    if (keys && typeof name === "string") {
      const first = keys.get(name);
      if (first) duplicates.push({ path, first, again: pos(keyOff) });
      else keys.set(name, pos(keyOff));
    }
    table.set(keyOf(path), [keyOff, valueOff]);
  };

  const isSpace = (ch: string | undefined) =>
    ch === " " || ch === "\t" || ch === "\r";
  const isBreak = (ch: string | undefined) => ch === undefined || ch === "\n";
  const skipSpaces = (i: number): number => {
    while (isSpace(text[i])) i++;
    return i;
  };
  /** Skip whitespace, line breaks and comments (flow context). */
  const skipAll = (i: number): number => {
    for (;;) {
      while (isSpace(text[i]) || text[i] === "\n") i++;
      if (text[i] !== "#") return i;
      i = lineEnd(i);
    }
  };
  /** End offset (after the closing quote) and decoded text of a quoted scalar. */
  const readQuoted = (i: number): { end: number; value: string } => {
    const q = text[i];
    let j = i + 1;
    while (j < text.length) {
      if (q === '"' && text[j] === "\\") j += 2;
      else if (q === "'" && text[j] === "'" && text[j + 1] === "'") j += 2;
      else if (text[j] === q) break;
      else j++;
    }
    const raw = text.slice(i + 1, Math.min(j, text.length));
    let value = raw.replaceAll("''", "'");
    if (q === '"') {
      try {
        value = JSON.parse(`"${raw.replace(/\n\s*/g, " ")}"`);
      } catch { /* keep raw */ }
    }
    return { end: Math.min(j + 1, text.length), value };
  };
  /** Anchors (`&a`) and tags (`!t`, `!!str`) before a value. */
  const skipProperties = (i: number): number => {
    while (text[i] === "&" || text[i] === "!") {
      while (i < text.length && !isSpace(text[i]) && !isBreak(text[i])) i++;
      i = skipSpaces(i);
    }
    return i;
  };

  /** A flow value at `i`; returns the offset after it. */
  const flowValue = (i: number, path: PathStep[]): number => {
    const ch = text[i];
    if (ch === "{" || ch === "[") return flowCollection(i, path);
    if (ch === '"' || ch === "'") return readQuoted(i).end;
    while (i < text.length && !",]}\n".includes(text[i])) {
      if (text[i] === "#" && isSpace(text[i - 1])) return lineEnd(i);
      i++;
    }
    return i;
  };
  /** A flow mapping or sequence at `i`; returns the offset after it. */
  const flowCollection = (start: number, path: PathStep[]): number => {
    const isMap = text[start] === "{";
    const close = isMap ? "}" : "]";
    const keys = new Map<string, Pos>();
    let index = 0;
    let i = start + 1;
    while (i < text.length) {
      i = skipAll(i);
      const ch = text[i];
      if (ch === close) return i + 1;
      if (ch === ",") {
        i++;
        continue;
      }
      const before = i;
      if (!isMap) {
        const p = [...path, index++];
        record(p, i, i);
        i = flowValue(i, p);
      } else {
        const keyOff = i;
        let name: string;
        if (ch === '"' || ch === "'") {
          const q = readQuoted(i);
          name = q.value;
          i = q.end;
        } else {
          let j = i;
          while (
            j < text.length && !",}\n".includes(text[j]) &&
            !(text[j] === ":" && /[\s,\]}]/.test(text[j + 1] ?? " "))
          ) j++;
          name = text.slice(i, j).trim();
          i = j;
        }
        i = skipAll(i);
        const p = [...path, name];
        if (text[i] === ":") {
          const v = skipProperties(skipAll(i + 1));
          const empty = text[v] === "," || text[v] === "}";
          record(p, keyOff, empty ? keyOff : v, keys);
          i = empty ? v : flowValue(v, p);
        } else {
          record(p, keyOff, keyOff, keys);
        }
      }
      if (i <= before) i = before + 1; // never stall on text we do not understand
    }
    return i;
  };

  const stack: Context[] = [];
  let pending: PathStep[] | null = null;
  const top = () => stack.at(-1);

  /**
   * The block content starting at offset `off`, column `col` (0-based).
   * Returns the offset where line-by-line scanning resumes.
   */
  const content = (off: number, col: number): number => {
    const ch = text[off];
    if (ch === "-" && (isSpace(text[off + 1]) || isBreak(text[off + 1]))) {
      while (top() && top()!.indent > col) stack.pop();
      let ctx = top();
      if (!(ctx && ctx.kind === "seq" && ctx.indent === col)) {
        const path = pending ?? (stack.length === 0 ? [] : null);
        if (path === null) return lineEnd(off);
        ctx = { indent: col, kind: "seq", path, next: 0, keys: new Map() };
        stack.push(ctx);
      }
      const p = [...ctx.path, ctx.next++];
      const rest = skipProperties(skipSpaces(off + 1));
      pending = p;
      if (isBreak(text[rest]) || text[rest] === "#") {
        record(p, off, off);
        return lineEnd(off);
      }
      record(p, off, rest);
      return content(rest, col + (rest - off));
    }
    if (ch === "{" || ch === "[") {
      const path = pending ?? (stack.length === 0 ? [] : null);
      pending = null;
      return path === null ? lineEnd(off) : flowCollection(off, path);
    }
    // A key: plain up to ": " (or ":" at the end of the line), or quoted.
    let name: string | null = null;
    let after = off;
    if (ch === '"' || ch === "'") {
      const q = readQuoted(off);
      const colon = skipSpaces(q.end);
      if (
        text[colon] === ":" &&
        (isSpace(text[colon + 1]) || isBreak(text[colon + 1]))
      ) {
        name = q.value;
        after = colon + 1;
      }
    } else if (ch !== "?" && ch !== "|" && ch !== ">" && ch !== "#") {
      const end = lineEnd(off);
      for (let j = off; j < end; j++) {
        if (text[j] === "#" && j > off && isSpace(text[j - 1])) break;
        if (text[j] === ":" && (isSpace(text[j + 1]) || isBreak(text[j + 1]))) {
          name = text.slice(off, j).trim();
          after = j + 1;
          break;
        }
      }
    }
    if (name === null) {
      // A scalar: a multi-line quoted one is skipped whole.
      if (ch === '"' || ch === "'") return readQuoted(off).end;
      return lineEnd(off);
    }
    while (
      top() &&
      (top()!.indent > col || (top()!.indent === col && top()!.kind === "seq"))
    ) stack.pop();
    let ctx = top();
    if (!(ctx && ctx.kind === "map" && ctx.indent === col)) {
      const path = pending ?? (stack.length === 0 ? [] : null);
      if (path === null) return lineEnd(off);
      ctx = { indent: col, kind: "map", path, next: 0, keys: new Map() };
      stack.push(ctx);
    }
    pending = null;
    const p = [...ctx.path, name];
    const v = skipProperties(skipSpaces(after));
    if (isBreak(text[v]) || text[v] === "#") {
      record(p, off, off, ctx.keys);
      pending = p;
      return lineEnd(off);
    }
    record(p, off, v, ctx.keys);
    if (text[v] === "{" || text[v] === "[") return flowCollection(v, p);
    if (text[v] === '"' || text[v] === "'") return readQuoted(v).end;
    if (text[v] === "|" || text[v] === ">") {
      // Block scalar: every following line that is blank or indented deeper.
      let i = lineEnd(v);
      while (i < text.length) {
        const next = i + 1;
        const ind = skipSpaces(next) - next;
        const blank = isBreak(text[next + ind]);
        if (!blank && ind <= col) return i;
        i = lineEnd(next);
      }
      return i;
    }
    return lineEnd(v);
  };

  let i = 0;
  while (i < text.length) {
    const start = i;
    const first = skipSpaces(start);
    const ch = text[first];
    const col = first - start;
    let resume: number;
    if (isBreak(ch) || ch === "#") resume = lineEnd(first);
    else if (
      col === 0 &&
      (text.startsWith("---", first) || text.startsWith("...", first) ||
        ch === "%")
    ) resume = lineEnd(first);
    else resume = content(first, col);
    // Go on at the line after wherever that content ended.
    i = lineEnd(Math.max(resume, first)) + 1;
  }
  const find = (path: readonly PathStep[]): Entry | undefined => {
    const hit = table.get(keyOf(path));
    return hit && { key: pos(hit[0]), value: pos(hit[1]) };
  };
  return { find, duplicates };
}
