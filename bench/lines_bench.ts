// deno task bench: the pure hot paths, per operation.
import { type Line, LineSplitter, pumpLines } from "../src/process/lines.ts";
import { buildArgv, type TransportSpec } from "../src/transport/argv.ts";
import { wrapCommand } from "../src/transport/wrapper.ts";

const text =
  Array.from({ length: 10_000 }, (_, i) => `line ${i} of output`).join("\n") +
  "\n";
const spec: TransportSpec = {
  host: "10.0.0.5",
  user: "root",
  transport: "ssh",
  relay: "ops@bastion",
  relayMode: "nested",
  ushPath: "ush",
  controlMaster: true,
  controlDir: "/run/fiwi/cm",
  controlPersist: 300,
  sshOptions: {},
  hostKeyCheck: "default",
  connectTimeout: 15_000,
};

Deno.bench("LineSplitter: 10 000 lines in 64 KiB pushes", () => {
  const splitter = new LineSplitter();
  let n = 0;
  const count = () => n++;
  for (let i = 0; i < text.length; i += 65_536) {
    splitter.push(text.slice(i, i + 65_536), count);
  }
  if (n !== 10_000) throw new Error(`got ${n} lines`);
});

// What `seq 1 200000` costs fiwi per line once the bytes are here: decode,
// split, one Line object and one callback each (bench/compare_rexec.ts
// measures the same with ssh in the loop).
const seqBytes = new TextEncoder().encode(
  Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join(""),
);
const seqChunks: Uint8Array[] = [];
for (let i = 0; i < seqBytes.length; i += 65_536) {
  seqChunks.push(seqBytes.subarray(i, i + 65_536));
}
Deno.bench(
  "pumpLines: seq 1 200000 in 64 KiB chunks, a Line each",
  async () => {
    let n = 0;
    const onLine = (_line: Line) => n++;
    await pumpLines(
      ReadableStream.from(seqChunks),
      (text, partial) =>
        onLine({ node: "n", stream: "stdout", text, partial, time: 0 }),
    );
    if (n !== 200_000) {
      throw new Error(`got ${n} lines`);
    }
  },
);

Deno.bench("buildArgv: nested relay with ControlMaster", () => {
  buildArgv(spec, wrapCommand("uname -r; echo 'done'"));
});
