// Source files import std by fully qualified `jsr:@std/...@^1` specifiers,
// so mod.ts imported by URL resolves them from JSR; this repo's deno.json
// maps each of those exact specifiers to the same std code published on npm
// as deno-std, so tasks and tests run where only an npm registry (or a
// mirror of one) is reachable. This test keeps that honest: every jsr:@std
// specifier used in the repo is mapped to deno-std on npm, every map entry is
// used, and library code never uses a bare specifier (a module imported by
// URL never sees this import map).
import { assertEquals } from "jsr:@std/assert@^1";

const root = new URL("../", import.meta.url);

async function* sourceFiles(
  dir: URL,
  rel = "",
): AsyncGenerator<[string, string]> {
  for await (const entry of Deno.readDir(dir)) {
    if (
      entry.name.startsWith(".") || entry.name === "node_modules" ||
      entry.name === "logs"
    ) {
      continue;
    }
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    // "./" keeps a name with a colon (sysfs fixtures) from reading as a scheme.
    const url = new URL(
      "./" + entry.name + (entry.isDirectory ? "/" : ""),
      dir,
    );
    if (entry.isDirectory) yield* sourceFiles(url, path);
    else if (/\.(ts|tsx|js|mjs)$/.test(entry.name)) {
      yield [path, await Deno.readTextFile(url)];
    }
  }
}

const SPECIFIER = /["'](jsr:@std\/[^"']+)["']/g;
const BARE = /(?:from|import)\s*\(?\s*["'](@std\/|@logtape\/)[^"']*["']/g;

Deno.test("import map: every jsr:@std specifier is mapped to deno-std and every entry is used", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", root)),
  );
  const mapped = Object.keys(config.imports ?? {}).filter((k) =>
    k.startsWith("jsr:@std/")
  );
  const used = new Set<string>();
  for await (const [path, text] of sourceFiles(root)) {
    if (path === "tests/import_map_test.ts") continue;
    for (const m of text.matchAll(SPECIFIER)) used.add(m[1]);
  }
  assertEquals(
    [...used].filter((s) => !mapped.includes(s)).sort(),
    [],
    "used but not mapped",
  );
  assertEquals(
    mapped.filter((s) => !used.has(s)).sort(),
    [],
    "mapped but never used",
  );
  for (const key of mapped) {
    assertEquals(
      /^npm:deno-std@\^1\.4\.0\/[a-z_]+\/[a-z_]+\.js$/.test(
        config.imports[key],
      ),
      true,
      `${key} maps to ${config.imports[key]}`,
    );
  }
});

Deno.test("import map: no bare @std or @logtape specifier in mod.ts, src/ or scripts/", async () => {
  const offenders: string[] = [];
  for await (const [path, text] of sourceFiles(root)) {
    if (
      !(path === "mod.ts" || path.startsWith("src/") ||
        path.startsWith("scripts/"))
    ) continue;
    for (const m of text.matchAll(BARE)) offenders.push(`${path}: ${m[0]}`);
  }
  assertEquals(offenders, []);
});

Deno.test("import map: each mapped deno-std file exists in the package", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", root)),
  );
  for (const [key, target] of Object.entries<string>(config.imports ?? {})) {
    if (!key.startsWith("jsr:@std/")) continue;
    // Resolving through the map proves the entry points at a real module.
    const mod = await import(key);
    assertEquals(typeof mod, "object", `${key} -> ${target}`);
  }
});
