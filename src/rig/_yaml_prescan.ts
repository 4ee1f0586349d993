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
  let valueStart = true;
  if (st.quote === null && st.flowDepth === 0 && !empty) {
    const tab = text.slice(start, i).indexOf("\t");
    if (tab >= 0) {
      return {
        message:
          "Tabs are not allowed for indentation: indent with spaces only",
        line,
        column: tab + 1,
      };
    }
    const indent = i - start;
    while (st.blocks.length > 0 && st.blocks.at(-1)! >= indent) {
      st.blocks.pop();
    }
    st.blocks.push(indent);
  }
  const deep = () =>
    st.blocks.length + st.flowDepth > maxDepth
      ? {
        message:
          `Collections nest more than ${maxDepth} levels deep: a rig file needs only a few`,
        line,
        column: i - start + 1,
      }
      : null;
  const tooDeep = deep();
  if (tooDeep) return tooDeep;
  for (; i < end; i++) {
    const ch = text[i];
    if (st.quote !== null) {
      if (ch === "\\" && st.quote === '"') i++;
      else if (ch === "'" && st.quote === "'" && text[i + 1] === "'") i++;
      else if (ch === st.quote) st.quote = null;
      continue;
    }
    if (isBlank(ch) || ch === "\r") continue;
    if (ch === "#" && (i === start || isBlank(text[i - 1]))) break;
    const next = text[i + 1];
    const spaced = next === undefined || isBlank(next) || next === "\n" ||
      next === "\r";
    if (valueStart && (ch === '"' || ch === "'")) {
      st.quote = ch;
      valueStart = false;
    } else if ((valueStart || st.flowDepth > 0) && (ch === "[" || ch === "{")) {
      st.flowDepth++;
      const problem = deep();
      if (problem) return problem;
      valueStart = true;
    } else if (st.flowDepth > 0 && (ch === "]" || ch === "}")) {
      st.flowDepth--;
      valueStart = false;
    } else if (st.flowDepth > 0 && ch === ",") {
      valueStart = true;
    } else if (ch === ":" && (spaced || st.flowDepth > 0)) {
      valueStart = true;
    } else if (st.flowDepth === 0 && valueStart && ch === "-" && spaced) {
      // A compact sequence entry (`- - x`, `- key: v`) opens a level.
      st.blocks.push(i - start);
      const problem = deep();
      if (problem) return problem;
    } else if (st.flowDepth === 0 && valueStart && (ch === "|" || ch === ">")) {
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
