// deno task bench: the pure hot paths, per operation.
import { LineSplitter } from "../src/lines.ts";
import {
  buildArgv,
  type TransportSpec,
  wrapCommand,
} from "../src/transport.ts";

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

Deno.bench("buildArgv: nested relay with ControlMaster", () => {
  buildArgv(spec, wrapCommand("uname -r; echo 'done'"));
});
