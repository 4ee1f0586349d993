/**
 * Folding: node names compressed into a clush-style node set for display,
 * the inverse of `expandRanges` (src/nodeset/nodeset.ts). Pure.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { foldNames, formatNodeList } from "./fold.ts";
 * assertEquals(formatNodeList(["n1", "n2", "n3", "n7", "relay"]), "n[1-3,7],relay");
 * assertEquals(foldNames(["n01", "n02", "root@h:2222"]), "n[01-02],root@h:2222");
 * ```
 *
 * @module
 */

interface Numbered {
  name: string;
  value: number;
  digits: string;
}

interface Bucket {
  prefix: string;
  suffix: string;
  items: Numbered[];
}

// The last run of digits is the index: "rack2-node07b" → "rack2-node",
// "07", "b"; "r1-eth0" → "r1-eth", "0", "".
const INDEXED = /^(.*?)(\d+)(\D*)$/;

function fits(a: Numbered, b: Numbered): boolean {
  if (b.value !== a.value + 1) return false;
  if (a.digits.length === b.digits.length) return true;
  // Unpadded numbers of any width continue each other (9, 10); zero-padded
  // ones only at their own width (07, 08).
  return !a.digits.startsWith("0") && !b.digits.startsWith("0");
}

/**
 * Compress node names into a pdsh-style host list: names that differ only in
 * their last number share a bracket of ranges (`node[0-3,7]`); zero padding
 * is kept (`n[01-12]`). Duplicates are listed once; name groups keep the
 * order of their first name.
 *
 * @param names node names
 * @returns the compressed list, comma-separated
 *
 * @example
 * ```ts
 * import { formatNodeList } from "./fold.ts";
 * console.log(formatNodeList(["n1", "n2", "n3", "pi"])); // e.g. "n[1-3],pi"
 * ```
 */
export function formatNodeList(names: readonly string[]): string {
  const buckets = new Map<string, Bucket>();
  const seen = new Set<string>();
  const parts: (string | Bucket)[] = [];
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    const m = INDEXED.exec(name);
    if (!m) {
      parts.push(name);
      continue;
    }
    const [, prefix, digits, suffix] = m;
    const key = `${prefix}\0${suffix}`;
    let bucket = buckets.get(key);
    if (!bucket) {
      bucket = { prefix, suffix, items: [] };
      buckets.set(key, bucket);
      parts.push(bucket);
    }
    bucket.items.push({ name, value: Number(digits), digits });
  }
  return parts.map((part) => {
    if (typeof part === "string") return part;
    if (part.items.length === 1) return part.items[0].name;
    const items = [...part.items].sort((a, b) =>
      a.value - b.value || a.digits.length - b.digits.length
    );
    const ranges: string[] = [];
    const range = (a: Numbered, b: Numbered) =>
      a === b ? a.digits : `${a.digits}-${b.digits}`;
    let first = items[0];
    let last = items[0];
    for (const item of items.slice(1)) {
      if (fits(last, item)) {
        last = item;
        continue;
      }
      ranges.push(range(first, last));
      first = last = item;
    }
    ranges.push(range(first, last));
    return `${part.prefix}[${ranges.join(",")}]${part.suffix}`;
  }).join(",");
}

/**
 * Fold names into a clush-style node set for display (`n01,n02,n03` →
 * `n[01-03]`); `expandRanges` of each item gives the names back. Names
 * holding `:` or brackets (ad-hoc hosts with a port, IPv6) are kept whole,
 * after the folded ones.
 *
 * @param names node names (ad-hoc host texts allowed)
 * @returns the folded set, comma-separated
 *
 * @example
 * ```ts
 * import { foldNames } from "./fold.ts";
 * console.log(foldNames(["n01", "n02", "n03", "n05", "pdu"])); // "n[01-03,05],pdu"
 * ```
 */
export function foldNames(names: readonly string[]): string {
  const whole = names.filter((n) => /[:[\]]/.test(n));
  const plain = names.filter((n) => !/[:[\]]/.test(n));
  return [formatNodeList(plain), ...new Set(whole)].filter((s) => s !== "")
    .join(",");
}
