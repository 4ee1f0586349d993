import { assertEquals } from "jsr:@std/assert@^1";
import { type RawLine, readLines } from "../src/lines.ts";

async function split(
  chunks: Uint8Array[],
  eof: "emit" | "strict" = "emit",
): Promise<RawLine[]> {
  return await Array.fromAsync(readLines(ReadableStream.from(chunks), eof));
}

const enc = new TextEncoder();

Deno.test("readLines() gives the same lines wherever the chunks are cut", async () => {
  const text = "héllo wörld\r\nsecond € line\n\nlast 🚀 fragment\r";
  const bytes = enc.encode(text);
  const want: RawLine[] = [
    { text: "héllo wörld", partial: false },
    { text: "second € line", partial: false },
    { text: "", partial: false },
    { text: "last 🚀 fragment", partial: true },
  ];
  for (let i = 0; i <= bytes.length; i++) {
    for (
      const j of [
        i,
        Math.min(bytes.length, i + 1),
        Math.min(bytes.length, i + 3),
      ]
    ) {
      const chunks = [bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)];
      assertEquals(await split(chunks), want, `cut at ${i}/${j}`);
    }
  }
});

Deno.test("readLines() byte by byte reassembles multi-byte characters", async () => {
  const bytes = enc.encode("ä€🚀\n");
  const chunks = [...bytes].map((b) => new Uint8Array([b]));
  assertEquals(await split(chunks), [{ text: "ä€🚀", partial: false }]);
});

Deno.test("readLines() drops the trailing fragment under eof strict", async () => {
  assertEquals(await split([enc.encode("a\nb")], "strict"), [{
    text: "a",
    partial: false,
  }]);
  assertEquals(await split([enc.encode("a\n")], "strict"), [{
    text: "a",
    partial: false,
  }]);
});

Deno.test("readLines() keeps a lone \\r inside a line and strips \\r before \\n", async () => {
  assertEquals(await split([enc.encode("10%\r50%\r100%\r\n")]), [
    { text: "10%\r50%\r100%", partial: false },
  ]);
});

Deno.test("readLines() reports every chunk's size", async () => {
  const sizes: number[] = [];
  const lines = readLines(
    ReadableStream.from([enc.encode("ab"), enc.encode("c\n")]),
    "emit",
    (n) => sizes.push(n),
  );
  assertEquals(await Array.fromAsync(lines), [{ text: "abc", partial: false }]);
  assertEquals(sizes, [2, 2]);
});

Deno.test("readLines() of an empty stream yields nothing", async () => {
  assertEquals(await split([]), []);
});
