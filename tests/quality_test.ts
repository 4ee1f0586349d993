// The repo's own hygiene, checked where CI looks: formatting, lint, and JSDoc
// on every export of mod.ts (deno doc --lint).
import { assertEquals } from "jsr:@std/assert@^1";

const root = new URL("../", import.meta.url);

async function deno(args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    output: d.decode(out.stdout) + d.decode(out.stderr),
  };
}

for (
  const [name, args] of [
    ["deno fmt --check is clean", ["fmt", "--check"]],
    ["deno lint is clean", ["lint"]],
    ["every export of mod.ts has JSDoc (deno doc --lint)", [
      "doc",
      "--lint",
      "mod.ts",
    ]],
  ] as const
) {
  Deno.test(name, async () => {
    const r = await deno([...args]);
    assertEquals(r.code, 0, r.output);
  });
}
