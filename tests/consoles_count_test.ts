// `fiwi consoles` counts every stream it opened, serial ports included: the
// close summary agrees with the "Consoles open" line. Local nodes only; the
// serial port is missing, so its reader waits for it (and prints a notice)
// until the consoles close.
import { assertEquals, assertMatch } from "jsr:@std/assert@^1";
import { fiwi } from "./_cli_harness.ts";
import { countCarrying, marker } from "./_loopback.ts";
import { settlesToZero } from "./_wait.ts";

Deno.test("fiwi consoles counts serial consoles in its close summary", async (t) => {
  const cwd = await Deno.makeTempDir({ prefix: "fiwi_consoles_" });
  const [kernel, port] = [marker(), marker()];
  try {
    await Deno.writeTextFile(
      `${cwd}/rigs.yaml`,
      [
        "rigs:",
        "  here:",
        "    nodes:",
        `      me: { transport: local, console: true, consoleCommand: 'exec sleep ${kernel}' }`,
        "      early: { transport: local, console: true, consoleCommand: 'exit 3' }",
        `      dut: { transport: local, serial: { via: me, port: /nonexistent/${port}, baud: 115200 } }`,
        "",
      ].join("\n"),
    );
    const consoles = (...args: string[]) =>
      fiwi(["consoles", "--no-log", "--duration", "1s", ...args], { cwd });

    await t.step("a kernel console and a serial one: 2/2", async () => {
      const r = await consoles("-w", "me,dut");
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        r.stderr,
        "Consoles open: me, dut (serial) (closing in 1s)\nConsoles closed: 2/2 ok\n",
      );
      // The reader's notice, under the node's name.
      assertMatch(r.stdout, /\[dut\] \[fiwi serial\] port .* is not there yet/);
    });

    await t.step("a serial console alone: 1/1, not 0/0", async () => {
      const r = await consoles("-w", "dut");
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        r.stderr,
        "Consoles open: dut (serial) (closing in 1s)\nConsoles closed: 1/1 ok\n",
      );
    });

    await t.step(
      "a console that ended early counts against all of them",
      async () => {
        const r = await consoles("-w", "early,dut");
        assertEquals(r.code, 1, r.stderr);
        assertMatch(r.stderr, /^Consoles open: early, dut \(serial\) /);
        assertMatch(r.stderr, /\[early\] console ended: /);
        assertMatch(
          r.stderr,
          /\nConsoles closed: 1\/2 ok; ended early: early\n$/,
        );
      },
    );

    // Every stream closed, on the via node too.
    for (const m of [kernel, port]) {
      assertEquals(await settlesToZero(() => countCarrying(m)), 0, m);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
