/**
 * A linear pass over YAML text before anything parses it, for the two
 * things a recursive parser handles badly: collections nested so deep that
 * parsing would overflow the call stack (`@std/yaml` and the position
 * locator both recurse per level), and tabs used for indentation (YAML
 * forbids them, and std reads such a line as a new top-level key, which
 * makes every later message point at the wrong place).
 *
 * It knows just enough YAML to stay out of quoted and block scalars and
 * comments; for anything it misreads it only checks less, never refuses
 * valid text.
 *
 * @module
 */

/** How deep block and flow collections may nest together. */
export const MAX_YAML_NESTING = 64;

/** Where the first problem is, and what it is. */
export interface PrescanProblem {
  /** What is wrong, sentence case, no position. */
  message: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

const isBlank = (ch: string | undefined) => ch === " " || ch === "\t";

/** State of the scan, kept between lines. */
interface ScanState {
  /** Open `[` and `{`. */
  flowDepth: number;
  /** Columns of the open block collections, innermost last. */
  blocks: number[];
  /** The quote a multi-line quoted scalar is waiting for, if any. */
  quote: string | null;
  /** Lines indented deeper than this belong to a block scalar. */
  blockScalarParent: number | null;
}

/**
 * The first place where `text` nests deeper than `maxDepth` or indents with
 * a tab, or null when there is none.
 */
export function prescanYaml(
  text: string,
  maxDepth: number = MAX_YAML_NESTING,
): PrescanProblem | null {
  const st: ScanState = {
    flowDepth: 0,
    blocks: [],
    quote: null,
    blockScalarParent: null,
  };
  let start = 0;
  for (let line = 1; start <= text.length; line++) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const problem = scanLine(text, start, end, line, st, maxDepth);
    if (problem) return problem;
    start = end + 1;
  }
  return null;
}

function scanLine(
  text: string,
  start: number,
  end: number,
  line: number,
  st: ScanState,
  maxDepth: number,
): PrescanProblem | null {
  let i = start;
  while (i < end && isBlank(text[i])) i++;
  const empty = i >= end || text[i] === "#" || text[i] === "\r";
  if (st.blockScalarParent !== null) {
    if (empty || i - start > st.blockScalarParent) return null;
    st.blockScalarParent = null;
  }
  const at = (column: number, message: string): PrescanProblem => ({
    message,
    line,
    column,
  });
  const tooDeep = (offset: number) =>
    st.blocks.length + st.flowDepth > maxDepth
      ? at(
        offset - start + 1,
        `Collections nest more than ${maxDepth} levels deep: a rig file needs only a few`,
      )
      : null;
  if (st.quote === null && st.flowDepth === 0 && !empty) {
    const tab = text.slice(start, i).indexOf("\t");
    if (tab >= 0) {
      return at(
        tab + 1,
        "Tabs are not allowed for indentation: indent with spaces only",
      );
    }
    closeBlocks(st, i - start);
  }
  const fresh = st.quote === null && st.flowDepth === 0;
  return scanTokens(text, i, end, st, fresh, tooDeep);
}

/** `- ` (or `-` at the end of a line): a block sequence entry. */
function isDash(text: string, i: number): boolean {
  return text[i] === "-" && spacedAfter(text, i);
}

/** Close the block levels at `column` or deeper. */
function closeBlocks(st: ScanState, column: number): void {
  while (st.blocks.length > 0 && st.blocks.at(-1)! >= column) st.blocks.pop();
}

/** A block level opens at `column`: a key's mapping or a dash's sequence. */
function openBlock(st: ScanState, column: number): void {
  closeBlocks(st, column);
  st.blocks.push(column);
}

/**
 * The rest of a line from `i`: quotes, flow brackets, comments, block keys
 * and dashes (each opens a level where it stands: `- - x`, `- key: v`) and
 * block scalar headers. `fresh`: the line starts in block context.
 */
function scanTokens(
  text: string,
  i: number,
  end: number,
  st: ScanState,
  fresh: boolean,
  tooDeep: (offset: number) => PrescanProblem | null,
): PrescanProblem | null {
  const lineStart = text.lastIndexOf("\n", i - 1) + 1;
  let valueStart = true;
  /** Column of the token a key would start at; -2: the next token; -1: none. */
  let entry = fresh ? -2 : -1;
  for (; i < end; i++) {
    const ch = text[i];
    if (st.quote !== null) {
      if (ch === "\\" && st.quote === '"') i++;
      else if (ch === "'" && st.quote === "'" && text[i + 1] === "'") i++;
      else if (ch === st.quote) st.quote = null;
      continue;
    }
    if (isBlank(ch) || ch === "\r") continue;
    if (ch === "#" && (i === lineStart || isBlank(text[i - 1]))) break;
    const block = st.flowDepth === 0;
    if (valueStart && entry === -2) entry = i - lineStart;
    if (valueStart && (ch === '"' || ch === "'")) {
      st.quote = ch;
      valueStart = false;
    } else if ((valueStart || !block) && (ch === "[" || ch === "{")) {
      st.flowDepth++;
      if (tooDeep(i)) return tooDeep(i);
      valueStart = true;
    } else if (!block && (ch === "]" || ch === "}")) {
      st.flowDepth--;
      valueStart = false;
    } else if (!block && ch === ",") {
      valueStart = true;
    } else if (ch === ":" && (!block || spacedAfter(text, i))) {
      if (block && entry >= 0) {
        openBlock(st, entry);
        const problem = tooDeep(lineStart + entry);
        if (problem) return problem;
      }
      entry = -1;
      valueStart = true;
    } else if (block && valueStart && isDash(text, i)) {
      openBlock(st, i - lineStart);
      if (tooDeep(i)) return tooDeep(i);
      entry = -2; // the next token's column
    } else if (block && valueStart && (ch === "|" || ch === ">")) {
      st.blockScalarParent = st.blocks.at(-1) ?? 0;
      break;
    } else if (valueStart && (ch === "&" || ch === "!" || ch === "?")) {
      // Anchors and tags come before the value; the value may still start.
      while (i + 1 < end && !isBlank(text[i + 1])) i++;
    } else {
      valueStart = false;
    }
  }
  return null;
}

/** The character after `i` ends a token (`: `, `- `). */
function spacedAfter(text: string, i: number): boolean {
  const next = text[i + 1];
  return next === undefined || isBlank(next) || next === "\n" || next === "\r";
}
