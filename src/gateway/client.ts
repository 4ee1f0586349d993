/**
 * A client a gateway runs for fiwi: the ssh to one node, started by the
 * gateway program (program.ts) and seen here through the records of the
 * gateway's channel (channel.ts). It is a {@linkcode Client}, so a run, its
 * watchdog, its output router and its teardown treat it exactly as a local
 * ssh client: its stdin is the node's lifeline (closing it sends `C`), its
 * output arrives as the bytes the node printed, its exit after them.
 *
 * @module
 */

import { Client, type SharedPayload } from "../process/spawn.ts";
import {
  closeRecord,
  decodeHex,
  feedRecord,
  type GatewayRecord,
  gatewaySignal,
  inputRecord,
  killRecord,
} from "./_records.ts";

const NEWLINE = new Uint8Array([0x0a]);
const SIGNAL_NUMBERS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  KILL: 9,
  TERM: 15,
};

/** A payload the gateway holds for its clients (program.ts, `P`). */
export interface StagedPayload {
  /** Its id in `P`, `F` and `R` records. */
  readonly id: number;
  /** True once every byte was sent to the gateway; false if it never will be. */
  readonly ready: Promise<boolean>;
}

/** What a {@linkcode GatewayClient} needs of its channel. */
export interface ClientChannel {
  /** Send bytes to the gateway program; false once it cannot be reached. */
  send(bytes: Uint8Array): Promise<boolean>;
  /** The client has ended: forget it. */
  ended(id: number): void;
  /**
   * The gateway's copy of `payload`, staged once for every client that
   * shares it; `release` when this client no longer needs it.
   */
  stage(
    payload: SharedPayload,
    onChunk: () => void,
  ): { staged: StagedPayload; release: () => void };
}

/** One output stream fed from records. */
class RecordStream {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #open = true;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      cancel: () => {
        this.#open = false;
      },
    });
  }

  push(bytes: Uint8Array): void {
    if (this.#open && bytes.byteLength) this.#controller.enqueue(bytes);
  }

  end(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#controller.close();
  }
}

/**
 * A client started by a gateway; made by {@linkcode GatewayChannel.spawn}.
 * Its `status` resolves after the last byte of its output was pushed, or,
 * when the gateway is lost, at once, with {@linkcode Client.lostReason}
 * saying why.
 */
export class GatewayClient extends Client {
  /** The argv the gateway runs (the ssh to the node). */
  readonly argv: readonly string[];
  /** The node's stdout, as the gateway relayed it. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The node's stderr (and the gateway ssh's own), as relayed. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles when the gateway reported the client's exit, or was lost. */
  readonly status: Promise<Deno.CommandStatus>;
  /** The client's id in the channel's records. */
  readonly id: number;
  #out = new RecordStream();
  #err = new RecordStream();
  #channel: ClientChannel;
  #resolve!: (status: Deno.CommandStatus) => void;
  #exited = false;
  #released = false;
  #signalled: string | null = null;
  #lost: string | undefined;
  #unstage: (() => void) | null = null;
  #file: Deno.FsFile | null = null;
  #written: Promise<void> = Promise.resolve();
  #writeFailed = false;

  /**
   * @internal use {@linkcode GatewayChannel.spawn}
   *
   * With `stdoutFile` (an existing file, truncated here), the node's stdout
   * (`b` records) goes into it, as a local client's does, and `stdout`
   * stays empty.
   */
  constructor(
    id: number,
    argv: readonly string[],
    channel: ClientChannel,
    stdoutFile?: string,
  ) {
    super();
    this.id = id;
    this.argv = argv;
    this.#channel = channel;
    if (stdoutFile !== undefined) {
      this.#file = Deno.openSync(stdoutFile, { write: true, truncate: true });
    }
    this.stdout = this.#out.stream;
    this.stderr = this.#err.stream;
    this.status = new Promise((r) => this.#resolve = r);
  }

  /** True once the gateway reported the exit, or was lost. */
  get exited(): boolean {
    return this.#exited;
  }

  /** "gateway lost: …" once the gateway's session ended under this client. */
  override get lostReason(): string | undefined {
    return this.#lost;
  }

  /** Send `bytes` to the client's stdin through the gateway. */
  async write(bytes: Uint8Array): Promise<boolean> {
    if (this.#released || this.#exited) return false;
    if (bytes.byteLength === 0) return true;
    return await this.#channel.send(inputRecord(this.id, bytes));
  }

  /**
   * Feed stdin from the gateway's copy of `payload` (`F`): the first
   * client behind this gateway to ask uploads it, once, and every other
   * one is fed from there. Resolves once the gateway was told, not once
   * the node read it all: the node's own run says whether it arrived.
   */
  override feedShared(
    payload: SharedPayload,
    onChunk: () => void,
  ): Promise<boolean> {
    if (this.#released || this.#exited || this.#unstage) {
      payload.stream.cancel().catch(() => {});
      return Promise.resolve(true);
    }
    const { staged, release } = this.#channel.stage(payload, onChunk);
    this.#unstage = release;
    return staged.ready.then(async (ok) => {
      // Gone meanwhile: as a write to a gone client, not a failed stream.
      if (this.#released || this.#exited) return true;
      if (!ok) return false;
      await this.#channel.send(feedRecord(this.id, staged.id));
      onChunk();
      return true;
    });
  }

  /** Close the client's stdin on the gateway (`C`): the node's lifeline. */
  releaseLifeline(): void {
    if (this.#released) return;
    this.#released = true;
    if (!this.#lost) void this.#channel.send(closeRecord(this.id));
  }

  /** Signal the client's ssh on the gateway (`K`). */
  kill(signal: Deno.Signal): void {
    const name = gatewaySignal(signal);
    if (this.#exited || !name) return;
    this.#signalled = name;
    void this.#channel.send(killRecord(this.id, name));
  }

  /** Take one record the gateway printed for this client. */
  receive(record: GatewayRecord): void {
    const { type, payload } = record;
    if (type === "b") {
      const bytes = decodeHex(payload);
      if (this.#file) this.#toFile(bytes);
      else this.#out.push(bytes);
    } else if (type === "o" || type === "e") {
      const stream = type === "o" ? this.#out : this.#err;
      stream.push(payload.slice());
      stream.push(NEWLINE);
    } else if (type === "O" || type === "p") this.#out.push(payload.slice());
    else if (type === "E" || type === "q") this.#err.push(payload.slice());
    else if (type === "x") {
      this.#exit(Number(new TextDecoder().decode(payload)));
    }
  }

  /** The gateway is gone: end as a lost connection with `reason`. */
  lose(reason: string): void {
    if (this.#exited) return;
    this.#lost = reason;
    this.#released = true;
    this.#finish({ success: false, code: 255, signal: null });
  }

  #exit(code: number): void {
    if (this.#exited) return;
    const sent = this.#signalled;
    const bySignal = sent !== null && code === 128 + SIGNAL_NUMBERS[sent];
    this.#finish({
      success: code === 0,
      code: Number.isInteger(code) ? code : 255,
      signal: bySignal ? `SIG${sent}` as Deno.Signal : null,
    });
    // The holder of its stdin on the gateway goes now, not at the end.
    this.releaseLifeline();
  }

  /** Append to the stdout file, in order; the exit waits for it. */
  #toFile(bytes: Uint8Array): void {
    const file = this.#file!;
    this.#written = this.#written.then(async () => {
      if (this.#writeFailed) return;
      try {
        let done = 0;
        while (done < bytes.byteLength) {
          done += await file.write(bytes.subarray(done));
        }
      } catch (e) {
        // What reads the file finds it short; this says why.
        this.#writeFailed = true;
        this.#err.push(new TextEncoder().encode(
          `fiwi: writing the stdout file failed: ${(e as Error).message}\n`,
        ));
      }
    });
  }

  #finish(status: Deno.CommandStatus): void {
    this.#exited = true;
    this.#unstage?.();
    this.#channel.ended(this.id);
    const file = this.#file;
    this.#file = null;
    // The exit comes after the last byte is in the file, as for a local
    // client whose shell wrote it.
    void this.#written.finally(() => {
      file?.close();
      this.#out.end();
      this.#err.end();
      this.#resolve(status);
    });
  }
}
