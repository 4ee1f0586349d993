// The gateway protocol's records (src/gateway/_records.ts): what fiwi
// sends is framed as the program reads it, and `b` records (od's hex)
// decode to the exact bytes, NULs and newlines included.
import { assertEquals } from "jsr:@std/assert@^1";
import {
  byteStartRecord,
  decodeHex,
  feedRecord,
  stageRecord,
  startRecord,
  unstageRecord,
} from "../src/gateway/_records.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("records fiwi sends carry their length and ids as the program reads them", async (t) => {
  const bytes = (head: string, ...tail: number[]) =>
    new Uint8Array([...new TextEncoder().encode(head), ...tail]);
  const table: { name: string; record: Uint8Array; want: Uint8Array }[] = [
    {
      name: "stage: header with the byte count, then the bytes",
      record: stageRecord(7, new Uint8Array([0, 10, 255])),
      want: bytes("P 7 3\n", 0, 10, 255),
    },
    { name: "feed", record: feedRecord(12, 7), want: bytes("F 12 7\n") },
    { name: "unstage", record: unstageRecord(7), want: bytes("R 7\n") },
    {
      name: "start: a command line read -r keeps whole goes on one line",
      record: startRecord(4, "ssh -- n 'a  b\tc'"),
      want: bytes("L 4 ssh -- n 'a  b\tc'\n"),
    },
    {
      name: "start: a newline in the command line needs the byte count",
      record: startRecord(5, "ssh -- n 'a\nb'"),
      want: bytes("S 5 14\nssh -- n 'a\nb'"),
    },
    {
      name: "start: a blank at either end (read -r strips it) too",
      record: startRecord(6, "x "),
      want: bytes("S 6 2\nx "),
    },
    {
      name: "byte start: the command line counted in UTF-8 bytes",
      record: byteStartRecord(3, "ssh -- n 'ü'"),
      want: bytes("B 3 13\nssh -- n 'ü'"),
    },
  ];
  for (const { name, record, want } of table) {
    await t.step(name, () => assertEquals(record, want, text(record)));
  }
});

Deno.test("decodeHex() gives back the bytes od -An -v -tx1 printed", async () => {
  const bytes = new Uint8Array(1000).map((_, i) => (i * 37) % 256);
  bytes.set([0, 0, 10, 13, 0], 500);
  const od = await new Deno.Command("od", {
    args: ["-An", "-v", "-tx1"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = od.stdin.getWriter();
  await writer.write(bytes);
  await writer.close();
  const { stdout } = await od.output();
  // The program joins 40 of od's lines into one record; any cut works.
  const lines = text(stdout).split("\n");
  const records = [lines.slice(0, 40).join(""), lines.slice(40).join("")];
  const got = records.flatMap((
    r,
  ) => [...decodeHex(new TextEncoder().encode(r))]);
  assertEquals(new Uint8Array(got), bytes);
  assertEquals(
    decodeHex(new TextEncoder().encode(" 00 0a ff")),
    new Uint8Array([0, 10, 255]),
  );
});
