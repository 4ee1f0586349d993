// Serial consoles: the reader loop sets the port raw at the baud rate and
// streams it, reopens it with a notice when it disappears and comes back,
// and dies with fiwi. A pty pair (python3's pty module) behind a symlink
// stands in for /dev/ttyUSB0 on a loopback via node.
import {
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "jsr:@std/assert@^1";
import type { Line } from "../mod.ts";
import {
  openSerialConsole,
  SERIAL_NOTICE,
  serialReaderCommand,
} from "../src/hardware/serial.ts";
import {
  countCarrying,
  countExact,
  type LoopbackRig,
  skipReasonFor,
  startLoopbackRig,
} from "./_loopback.ts";
import { GONE_WITHIN, settlesTo, settlesToZero } from "./_wait.ts";

const PTY = new URL("./fixtures/serial_pty.py", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

function pythonReason(): string | null {
  try {
    const ok = new Deno.Command("python3", {
      args: ["-c", "import pty"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
    return ok ? null : "python3 cannot import pty";
  } catch {
    return "no python3";
  }
}
// The stand-in serial ports live in the rig's local temp dir.
const skip = skipReasonFor("serial console tests", "node-is-local") ??
  pythonReason();

/** A list that grows as events arrive, and can be awaited for an item. */
class Feed<T> {
  readonly items: T[] = [];
  #waiters = new Set<() => void>();

  push(...items: T[]): void {
    this.items.push(...items);
    for (const wake of this.#waiters) wake();
  }

  /** The first item from `from` on that `match` accepts, as soon as it arrives. */
  find(
    what: string,
    match: (item: T) => boolean,
    from = 0,
    timeoutMs = 10_000,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.items.slice(from).find(match);
        if (found === undefined) return;
        done();
        resolve(found);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `Timed out waiting for ${what}; have ${JSON.stringify(this.items)}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/** Push each line of `stream` to `feed`; resolves at EOF. */
async function feedLines(
  stream: ReadableStream<Uint8Array>,
  feed: Feed<string>,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    const lines = buf.split("\n");
    buf = lines.pop()!;
    feed.push(...lines);
  }
}

/** The pty helper: a fake USB serial adapter behind `link`. */
class FakeAdapter implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #said = new Feed<string>();
  #reading: Promise<void>;

  constructor(readonly link: string) {
    const child = new Deno.Command("python3", {
      args: [PTY, link],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#writer = this.#child.stdin.getWriter();
    this.#reading = feedLines(child.stdout, this.#said);
  }

  /** Send one command and wait for its answer line. */
  async send(cmd: string, answer: string): Promise<string> {
    const before = this.#said.items.length;
    await this.#writer.write(new TextEncoder().encode(cmd + "\n"));
    return await this.#said.find(
      `"${answer}" from the pty helper`,
      (l) => l.startsWith(answer),
      before,
    );
  }

  ready(): Promise<string> {
    return this.#said.find("the pty", (l) => l.startsWith("ready"));
  }

  async [Symbol.asyncDispose]() {
    await this.#writer.close();
    await this.#reading;
    await this.#child.status;
  }
}

/** `fiwi consoles` as a subprocess with its task's permissions, on `rig`. */
function consolesCommand(rig: LoopbackRig, args: string[]): Deno.Command {
  const task = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks
    .consoles as string;
  const flags = task.replace(/^deno run /, "")
    .replace(/ scripts\/consoles\.ts$/, "").split(" ");
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      ...flags,
      `${ROOT}scripts/consoles.ts`,
      ...args,
    ],
    cwd: rig.dir,
    // The default log goes under the rig's directory, not ~/.local/state.
    env: {
      FIWI_CONTROL_DIR: `${rig.dir}/cm`,
      XDG_STATE_HOME: `${rig.dir}/state`,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function serialDir(rig: LoopbackRig): Promise<string> {
  const dir = `${rig.dir}/serial`;
  await Deno.mkdir(dir, { mode: 0o755 });
  await Deno.chmod(dir, 0o755);
  return dir;
}

Deno.test("serialReaderCommand() sets the port raw at the baud rate with stty -F and quotes the path", () => {
  const cmd = serialReaderCommand({
    via: "pi1",
    port: "/dev/tty USB0",
    baud: 115200,
  });
  assertStringIncludes(cmd, "p='/dev/tty USB0'; b=115200;");
  assertStringIncludes(cmd, 'stty -F "$p" raw -echo clocal "$b"');
  assertStringIncludes(cmd, 'cat "$p"');
});

Deno.test({
  name:
    "a serial console streams the port under the node's name, reopens it with notices when it comes back, and leaves nothing on the via node",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    const link = `${await serialDir(rig)}/ttyUSB0`;
    await using adapter = new FakeAdapter(link);
    await adapter.ready();
    // Written before the reader opens the port: the pty keeps it queued.
    await adapter.send("write boot: U-Boot 2024.01", "written");
    const via = rig.node({ name: "pi1" });
    const lines = new Feed<Line>();
    const console = openSerialConsole("dut1", via, {
      via: "pi1",
      port: link,
      baud: 115200,
    }, { silent: true, onLine: (l) => lines.push(l) });
    try {
      const first = await lines.find(
        "the first line",
        (l) => l.text === "boot: U-Boot 2024.01",
      );
      assertEquals([first.node, first.stream], ["dut1", "stdout"]);
      // The reader set the line speed (the pty started at 38400).
      const speed = await new Deno.Command("stty", {
        args: ["-F", link, "speed"],
      }).output();
      assertEquals(new TextDecoder().decode(speed.stdout).trim(), "115200");
      await adapter.send("unplug", "unplugged");
      await lines.find(
        "the went-away notice",
        (l) => l.text.includes("went away"),
      );
      await adapter.send("plug", "ready");
      await adapter.send("write login: ", "written");
      await lines.find("the is-back notice", (l) => l.text.includes("is back"));
      await lines.find("a line after the replug", (l) => l.text === "login: ");
      const notices = lines.items.filter((l) =>
        l.text.startsWith(SERIAL_NOTICE)
      );
      assertEquals(notices.map((l) => l.text.replace(link, "PORT")), [
        `${SERIAL_NOTICE} port PORT went away: waiting for it to come back`,
        `${SERIAL_NOTICE} port PORT is back: reading at 115200 baud`,
      ]);
      assertEquals(console.node, "dut1");
    } finally {
      const result = await console.close();
      await via.close();
      assertEquals(result?.aborted, true);
    }
    // The reader's shell, its stty and its cat: the port's path is in the
    // rig's own temp dir, so nothing else carries it.
    assertEquals(await settlesToZero(() => countCarrying(link, rig)), 0);
  },
});

Deno.test({
  name:
    "a serial port missing at start is announced once and read when it appears",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    const link = `${await serialDir(rig)}/ttyACM0`;
    const via = rig.node({ name: "pi1" });
    const lines = new Feed<Line>();
    await using console = openSerialConsole("dut2", via, {
      via: "pi1",
      port: link,
      baud: 9600,
    }, { silent: true, onLine: (l) => lines.push(l) });
    try {
      const notice = await lines.find(
        "the not-there notice",
        (l) => l.text.includes("not there yet"),
      );
      assertMatch(
        notice.text,
        /^\[fiwi serial\] port .+ttyACM0 is not there yet: waiting for it$/,
      );
      await using adapter = new FakeAdapter(link);
      await adapter.ready();
      await adapter.send("write hello", "written");
      await lines.find("the line", (l) => l.text === "hello");
      assertEquals(
        lines.items.filter((l) => l.text.includes("not there yet")).length,
        1,
      );
      await console.close();
    } finally {
      await via.close();
    }
  },
});

Deno.test({
  name:
    "fiwi consoles streams a serial: node's port under its name to stdout and the central log, and a killed fiwi leaves no reader on the via node",
  ignore: skip !== null,
  async fn() {
    await using rig = await startLoopbackRig();
    const link = `${await serialDir(rig)}/ttyUSB0`;
    await using adapter = new FakeAdapter(link);
    await adapter.ready();
    await adapter.send("write [    0.000000] Linux version 6.1.0", "written");
    const file = `${rig.dir}/rigs.yaml`;
    await Deno.writeTextFile(
      file,
      [
        "rigs:",
        "  lab:",
        `    defaults: { user: ${rig.user}, sshConfig: ssh_config }`,
        "    nodes:",
        `      pi1: { host: 127.0.0.1, port: ${rig.port} }`,
        `      dut: { host: 127.0.0.2, port: ${rig.port}, serial: { via: pi1, port: ${link}, baud: 115200 } }`,
        "",
      ].join("\n"),
    );
    const consoles = (...args: string[]) =>
      consolesCommand(rig, ["--rig", file, "-w", "dut", ...args]);
    // A run that ends by itself: the line reaches stdout and the central log.
    const log = `${rig.dir}/consoles.log`;
    const timed = await consoles("--duration", "3s", "--log", log).output();
    const stdout = new TextDecoder().decode(timed.stdout);
    assertEquals(timed.code, 0, new TextDecoder().decode(timed.stderr));
    assertMatch(
      stdout,
      /^\S+ \[dut\] \[ {4}0\.000000\] Linux version 6\.1\.0$/m,
    );
    assertStringIncludes(
      await Deno.readTextFile(log),
      "[    0.000000] Linux version 6.1.0",
    );
    // A run killed outright: its reader must not outlive it.
    const child = consoles("--no-log").spawn();
    await adapter.send("write [    1.000000] Run /sbin/init", "written");
    const seen = new Feed<string>();
    const reading = feedLines(child.stdout, seen);
    const errText = new Response(child.stderr).text();
    try {
      const line = await seen.find(
        "the serial line in consoles' output",
        (l) => l.includes("Run /sbin/init"),
      );
      assertMatch(line, /^\S+ \[dut\] \[ {4}1\.000000\] Run \/sbin\/init$/);
      const cat = () => countExact(`cat ${link}`, rig);
      assertEquals(await settlesTo(cat, 1, GONE_WITHIN), 1);
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await reading;
      await errText;
    }
    // The lifeline: the reader dies with fiwi (within 2 s of its ssh client).
    assertEquals(await settlesToZero(() => countCarrying(link, rig)), 0);
  },
});
