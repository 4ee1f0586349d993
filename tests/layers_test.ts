// src/ is layered (the README's Architecture section names the layers and
// what each holds) and imports go one way only: a lower layer declares the
// narrow interface it needs instead of importing a higher one. This test reads
// every import of every file under src/ (type-only ones too: a type cycle is
// still a design cycle) and fails on an edge to a higher layer or on a cycle.
import { assertEquals } from "jsr:@std/assert@^1";
import { dirname, fromFileUrl, join, relative } from "jsr:@std/path@^1";

/** Lowest first. `errors.ts` sits below every folder. */
export const LAYERS = [
  "errors",
  "nodeset",
  "transport",
  "rigfile",
  "process",
  "connection",
  "lease",
  "state",
  "shell",
  "transfer",
  "gateway",
  "node",
  "process_manager",
  "schedule",
  "fanout",
  "hardware",
  "rig",
  "discover",
  "dashboard",
];
/** Folders that share a rank: neither may import the other. */
const RANK: Record<string, number> = {
  errors: 0,
  nodeset: 1,
  transport: 1,
  rigfile: 2,
  process: 2,
  connection: 3,
  lease: 3,
  state: 3,
  shell: 3,
  transfer: 4,
  gateway: 4,
  node: 5,
  process_manager: 6,
  schedule: 6,
  fanout: 6,
  hardware: 7,
  rig: 8,
  discover: 8,
  dashboard: 9,
};

const src = join(dirname(fromFileUrl(import.meta.url)), "..", "src");
const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\b[^"';]*?from\s*["'](\.{1,2}\/[^"']+)["']/g;

function layerOf(path: string): string {
  const rel = relative(src, path);
  return rel.includes("/") ? rel.split("/")[0] : rel.replace(/\.ts$/, "");
}

async function* files(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* files(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

async function graph(): Promise<Map<string, string[]>> {
  const edges = new Map<string, string[]>();
  for await (const file of files(src)) {
    const text = await Deno.readTextFile(file);
    const to = [...text.matchAll(IMPORT_RE)].map((m) =>
      join(dirname(file), m[1])
    );
    edges.set(file, to);
  }
  return edges;
}

Deno.test("layers: every folder of src/ has a rank", async () => {
  const unknown: string[] = [];
  for await (const file of files(src)) {
    if (!(layerOf(file) in RANK)) unknown.push(relative(src, file));
  }
  assertEquals(unknown, []);
});

Deno.test("layers: no file in src/ imports a higher or sibling layer", async () => {
  const upward: string[] = [];
  for (const [from, tos] of await graph()) {
    for (const to of tos) {
      const a = layerOf(from), b = layerOf(to);
      if (a !== b && RANK[b] >= RANK[a]) {
        upward.push(`${relative(src, from)} -> ${relative(src, to)}`);
      }
    }
  }
  assertEquals(upward, []);
});

Deno.test("layers: the imports of src/ have no cycle", async () => {
  const edges = await graph();
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      const loop = path.slice(path.indexOf(file)).concat(file);
      cycles.push(loop.map((p) => relative(src, p)).join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const to of edges.get(file) ?? []) visit(to, [...path, file]);
    state.set(file, "done");
  };
  for (const file of edges.keys()) visit(file, []);
  assertEquals(cycles, []);
});

// The fiwi command is a client of the library, like a user's script: every
// import that leaves scripts/ names one of the package's entry points
// (deno.json `exports`), so whatever the command needs the library offers.
const root = join(src, "..");
const SPECIFIER_RE =
  /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;

/** `file`'s imports that leave scripts/ for anything but an entry point. */
export function internalImports(
  file: string,
  text: string,
  entryPoints: readonly string[],
): string[] {
  const scripts = join(root, "scripts");
  return [...text.matchAll(SPECIFIER_RE)]
    .map((m) => join(dirname(file), m[1]))
    .filter((to) => !to.startsWith(scripts + "/") && !entryPoints.includes(to))
    .map((to) => `${relative(root, file)} -> ${relative(root, to)}`);
}

Deno.test("layers: scripts/ imports only the package's entry points", async (t) => {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const entryPoints = Object.values(config.exports as Record<string, string>)
    .map((p) => join(root, p))
    // Not code: `fiwi --version` reads "version" from deno.json as a JSON
    // module, so the version is written in one place.
    .concat(join(root, "deno.json"));
  await t.step("the check sees an internal import", () => {
    const file = join(root, "scripts", "x.ts");
    assertEquals(
      internalImports(
        file,
        'import { a } from "../src/a.ts";\nimport { b } from "../mod.ts";\n' +
          'import("../src/c.ts");\nimport { d } from "./_d.ts";',
        entryPoints,
      ),
      ["scripts/x.ts -> src/a.ts", "scripts/x.ts -> src/c.ts"],
    );
  });
  const found: string[] = [];
  for await (const file of files(join(root, "scripts"))) {
    found.push(
      ...internalImports(file, await Deno.readTextFile(file), entryPoints),
    );
  }
  assertEquals(found, []);
});
