// A script given fewer permissions than a feature needs gets one clear
// ConfigurationError naming the grant, not "not found" or a NotCapable
// stack trace. Each case runs a real script under exactly the flags given.
import { assertEquals, assertStringIncludes } from "jsr:@std/assert@^1";
import { dirname, fromFileUrl, join } from "jsr:@std/path@^1";

const root = join(dirname(fromFileUrl(import.meta.url)), "..");

async function runScript(flags: string[], body: string) {
  const dir = await Deno.makeTempDir({ prefix: "fiwi_perm_" });
  try {
    const file = join(dir, "script.ts");
    await Deno.writeTextFile(
      file,
      `import { SshNode } from "${join(root, "mod.ts")}";\n${body}`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-q",
        "--no-prompt",
        "--config",
        join(root, "deno.json"),
        ...flags,
        file,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return {
      code: out.code,
      stdout: text(out.stdout),
      stderr: text(out.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an ssh node without --allow-read names the missing grant, not a missing ssh", async () => {
  const r = await runScript(
    ["--allow-run=ssh,sh", "--allow-env"],
    `const node = new SshNode({ name: "n", host: "127.0.0.1" });
try {
  await node.rexec("true");
} catch (e) {
  console.log((e as Error).name + ": " + (e as Error).message);
}`,
  );
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, 'ConfigurationError: Looking for "ssh"');
  assertStringIncludes(r.stdout, "needs read access: grant --allow-read");
});

Deno.test("a directory push without access to the temporary directory names the grant", async () => {
  const src = await Deno.makeTempDir({ prefix: "fiwi_perm_src_" });
  try {
    await Deno.writeTextFile(join(src, "a.txt"), "a\n");
    const r = await runScript(
      [
        `--allow-read=${src}`,
        "--allow-write",
        "--allow-run=sh,tar",
        "--allow-env",
      ],
      `const node = new SshNode({ name: "n", host: "localhost", transport: "local" });
try {
  await node.push(${JSON.stringify(src)}, "/tmp/fiwi_perm_dest");
} catch (e) {
  console.log((e as Error).name + ": " + (e as Error).message);
}`,
    );
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(
      r.stdout,
      "ConfigurationError: Packing the push needs",
    );
    assertStringIncludes(r.stdout, "grant --allow-read and --allow-write");
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});
