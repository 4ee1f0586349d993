import { assertEquals, assertRejects } from "jsr:@std/assert@^1";
import { LineSplitter, pumpLines, type RawLine } from "../src/process/lines.ts";

async function split(
  chunks: Uint8Array[],
  eof: "emit" | "strict" = "emit",
): Promise<RawLine[]> {
  const got: RawLine[] = [];
  await pumpLines(
    ReadableStream.from(chunks),
    (text, partial) => got.push({ text, partial }),
    {
      eof,
    },
  );
  return got;
}

const enc = new TextEncoder();

Deno.test("pumpLines() gives the same lines wherever the chunks are cut", async () => {
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

Deno.test("pumpLines() byte by byte reassembles multi-byte characters", async () => {
  const bytes = enc.encode("ä€🚀\n");
  const chunks = [...bytes].map((b) => new Uint8Array([b]));
  assertEquals(await split(chunks), [{ text: "ä€🚀", partial: false }]);
});

Deno.test("pumpLines() drops the trailing fragment under eof strict", async () => {
  assertEquals(await split([enc.encode("a\nb")], "strict"), [{
    text: "a",
    partial: false,
  }]);
  assertEquals(await split([enc.encode("a\n")], "strict"), [{
    text: "a",
    partial: false,
  }]);
});

Deno.test("pumpLines() keeps a lone \\r inside a line and strips \\r before \\n", async () => {
  assertEquals(await split([enc.encode("10%\r50%\r100%\r\n")]), [
    { text: "10%\r50%\r100%", partial: false },
  ]);
});

Deno.test("pumpLines() reports every chunk's size before its lines", async () => {
  const events: string[] = [];
  await pumpLines(
    ReadableStream.from([
      enc.encode("ab"),
      enc.encode("c\nd"),
      enc.encode("é\nf\n"),
    ]),
    (text) => events.push(text),
    { onBytes: (n) => events.push(`${n} bytes`) },
  );
  assertEquals(events, [
    "2 bytes",
    "3 bytes",
    "abc",
    "5 bytes",
    "dé",
    "f",
  ]);
});

Deno.test("pumpLines() stops with the signal's reason when aborted", async () => {
  const controller = new AbortController();
  const never = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode("first\n"));
    },
  });
  const got: string[] = [];
  const pumping = pumpLines(never, (text) => {
    got.push(text);
    controller.abort(new Error("stop reading"));
  }, { signal: controller.signal });
  await assertRejects(() => pumping, Error, "stop reading");
  assertEquals(got, ["first"]);
});

Deno.test("LineSplitter joins a line across pushes and strips its \\r", () => {
  const s = new LineSplitter();
  const out: string[] = [];
  s.push("par", (l) => out.push(l));
  s.push("tial\r", (l) => out.push(l));
  s.push("\nnext", (l) => out.push(l));
  assertEquals([out, s.end(), s.end()], [["partial"], "next", null]);
});

Deno.test("pumpLines() of an empty stream yields nothing", async () => {
  assertEquals(await split([]), []);
});
