/**
 * The channel to one gateway: one client that runs the gateway program
 * (program.ts) there, shared by every node behind that gateway. Opened on
 * the first client, closed a moment after the last one ends (or by
 * {@linkcode closeGateways}).
 *
 * The channel's own client is whatever the gateway node spawns: a local ssh
 * for a gateway fiwi reaches directly, a {@linkcode GatewayClient} of its
 * parent's channel for a gateway behind a gateway. So nested gateways need
 * nothing more: their records travel as the lines of a client of the
 * parent.
 *
 * When the channel's client ends while clients are open (the gateway's sshd
 * was killed, the network dropped, the parent gateway was lost), each of
 * them ends at once as a connection failure saying "gateway lost: …".
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { Admission, SessionNode } from "../process/session.ts";
import {
  type Client,
  forEachChunk,
  hasControllingTerminal,
  type SharedPayload,
  spawnClient,
  type SpawnOptions,
} from "../process/spawn.ts";
import { ConfigurationError } from "../errors.ts";
import { shellJoin } from "../transport/quote.ts";
import { matchSshError } from "../transport/ssh_errors.ts";
import {
  byteStartRecord,
  LineSplitter,
  parseRecord,
  stageRecord,
  startRecord,
  unstageRecord,
} from "./_records.ts";
import { GatewayClient, type StagedPayload } from "./client.ts";
import { gatewayCommand } from "./program.ts";

const log = getLogger(["fiwi", "gateway"]);

/**
 * How long an idle channel stays open after its last client ended, in ms:
 * back-to-back runs share it, and a script that is done exits soon after.
 */
export const GATEWAY_IDLE_MS = 200;
/**
 * How long a staged payload stays on the gateway after its last client
 * ended, in ms: a fan-out bounded by its concurrency starts the next node a
 * moment later, and a retry comes after a backoff; neither should upload
 * the payload again.
 */
export const STAGED_IDLE_MS = 2_000;
/** The gateway's stderr kept for the "gateway lost" message, in bytes. */
const STDERR_KEPT = 4096;

/**
 * What a channel needs of the node that is the gateway: what a run needs
 * of a node, but its output and timeouts (`spawn` is there for a gateway
 * behind a gateway). `SshNode` satisfies it.
 */
export type GatewayNode = Pick<
  SessionNode,
  "name" | "connectTimeout" | "prepare" | "transportArgv" | "admit" | "spawn"
>;

/** A payload staged on the gateway, with the clients it feeds. */
interface Staged extends StagedPayload {
  ready: Promise<boolean>;
  users: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const sentTo = new WeakMap<GatewayNode, number>();

/**
 * Bytes fiwi has written to the gateway programs on `node`, over every
 * channel to it so far: records, commands, stdin and staged payloads. For
 * a gateway fiwi reaches directly, this is the controller's upload to it
 * (ssh's own framing aside); a push to the nodes behind it costs one copy.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { SshNode } from "../../mod.ts";
 * import { gatewayBytesSent } from "./channel.ts";
 * assertEquals(gatewayBytesSent(new SshNode({ name: "g", host: "10.0.0.1" })), 0);
 * ```
 */
export function gatewayBytesSent(node: GatewayNode): number {
  return sentTo.get(node) ?? 0;
}

/** The channel to one gateway; get it with {@linkcode gatewayChannel}. */
export class GatewayChannel {
  /** The gateway. */
  readonly node: GatewayNode;
  #nonce = crypto.randomUUID().replaceAll("-", "");
  #clients = new Map<number, GatewayClient>();
  #nextId = 1;
  #transport: Promise<Client | null>;
  #chain: Promise<unknown> = Promise.resolve();
  #closer = new AbortController();
  #lost: string | null = null;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #stderr = "";
  #ready = false;
  #watching: Promise<void> = Promise.resolve();
  #onGone: (channel: GatewayChannel) => void;
  #staged = new Map<object, Staged>();

  /** @internal use {@linkcode gatewayChannel} */
  constructor(node: GatewayNode, onGone: (channel: GatewayChannel) => void) {
    this.node = node;
    this.#onGone = onGone;
    this.#transport = this.#open();
  }

  /** False once the channel was lost or closed: a new one is needed. */
  get usable(): boolean {
    return this.#lost === null && !this.#closer.signal.aborted;
  }

  /**
   * Start `argv` on the gateway; its records arrive on the returned client.
   * With `raw`, the node's stdout travels as bytes (`B`, NUL-safe), not
   * lines; with `stdoutFile` too (an existing local file), it goes there.
   */
  spawn(
    argv: readonly string[],
    { raw = false, stdoutFile }: { raw?: boolean; stdoutFile?: string } = {},
  ): GatewayClient {
    clearTimeout(this.#idle);
    const id = this.#nextId++;
    const client = new GatewayClient(id, argv, {
      send: (bytes) => this.send(bytes),
      ended: (done) => this.#ended(done),
      stage: (payload, onChunk) => this.#stage(payload, onChunk),
    }, stdoutFile);
    this.#clients.set(id, client);
    const start = raw || stdoutFile !== undefined
      ? byteStartRecord
      : startRecord;
    if (this.#lost !== null) client.lose(this.#lost);
    else void this.send(start(id, shellJoin(argv)));
    return client;
  }

  /** Send bytes to the program, in order; false when the gateway cannot be reached. */
  send(bytes: Uint8Array): Promise<boolean> {
    const sent = this.#chain.then(async () => {
      const transport = await this.#transport;
      if (transport === null || this.#lost !== null) return false;
      sentTo.set(this.node, gatewayBytesSent(this.node) + bytes.byteLength);
      return await transport.write(bytes);
    });
    this.#chain = sent.catch(() => false);
    return sent;
  }

  /**
   * Close the channel: the program's stdin reaches EOF and it ends every
   * client it still runs. Clients still open here end as lost.
   */
  async close(): Promise<void> {
    clearTimeout(this.#idle);
    // The program's exit trap removes the staged files with its directory.
    for (const staged of this.#staged.values()) clearTimeout(staged.timer);
    this.#staged.clear();
    if (!this.#closer.signal.aborted) this.#closer.abort();
    this.#loseAll(`gateway lost: gateway "${this.node.name}" was closed`);
    const transport = await this.#transport;
    if (transport) await transport.stop();
    await this.#watching;
  }

  async #open(): Promise<Client | null> {
    let admission: Admission | null = null;
    try {
      await this.node.prepare();
      const argv = this.node.transportArgv(gatewayCommand(this.#nonce));
      if (this.node.admit) {
        admission = await this.node.admit(
          this.#closer.signal,
          this.node.connectTimeout,
        );
        if (!admission) {
          this.#loseAll(`gateway lost: gateway "${this.node.name}" was closed`);
          return null;
        }
      }
      const options: SpawnOptions = { ownSession: hasControllingTerminal() };
      const transport = this.node.spawn
        ? this.node.spawn(argv, options)
        : spawnClient(argv, options);
      this.#watching = this.#watch(transport, admission);
      return transport;
    } catch (e) {
      await admission?.release(false);
      const why = e instanceof ConfigurationError ? e.message : String(e);
      this.#loseAll(
        `gateway lost: gateway "${this.node.name}" could not be started: ${why}`,
      );
      return null;
    }
  }

  async #watch(transport: Client, admission: Admission | null): Promise<void> {
    const splitter = new LineSplitter();
    const out = forEachChunk(transport.stdout, transport.readSignal, (c) => {
      for (const line of splitter.push(c)) this.#dispatch(line, admission);
    }).catch((e) => {
      log.error("Reading gateway {gateway} failed: {error}", {
        gateway: this.node.name,
        error: e,
      });
    });
    const decoder = new TextDecoder();
    const err = forEachChunk(transport.stderr, transport.readSignal, (c) => {
      this.#stderr = (this.#stderr + decoder.decode(c, { stream: true }))
        .slice(-STDERR_KEPT);
    }).catch(() => {});
    const status = await transport.status;
    await transport.drain(Promise.all([out, err]));
    if (!this.#ready) await admission?.release(false);
    this.#loseAll(this.#lostMessage(status));
    this.#onGone(this);
  }

  #dispatch(line: Uint8Array, admission: Admission | null): void {
    const record = parseRecord(line);
    if (!record) {
      log.warn("Gateway {gateway} printed a line that is not a record", {
        gateway: this.node.name,
      });
      return;
    }
    if (record.id === 0) {
      if (record.type === "r" && !this.#ready) {
        this.#ready = true;
        void admission?.release(true);
      }
      return;
    }
    this.#clients.get(record.id)?.receive(record);
  }

  #lostMessage(status: Deno.CommandStatus): string {
    const gateway = `gateway "${this.node.name}"`;
    if (this.#closer.signal.aborted) {
      return `gateway lost: ${gateway} was closed`;
    }
    const said = matchSshError(this.#stderr).detail ??
      (this.#stderr.trim().split("\n").at(-1) || null);
    return `gateway lost: the session to ${gateway} ended (exit ${
      status.signal ?? status.code
    })${said ? `: ${said}` : ""}`;
  }

  #loseAll(reason: string): void {
    if (this.#lost === null && this.#clients.size > 0) {
      log.warn("{reason}", { gateway: this.node.name, reason });
    }
    this.#lost ??= reason;
    for (const client of [...this.#clients.values()]) client.lose(reason);
  }

  /**
   * The gateway's copy of `payload`, uploaded by the first client that
   * asks (from its stream, as `P` records); later ones cancel theirs and
   * share it. Each caller calls `release` once done with it.
   */
  #stage(
    payload: SharedPayload,
    onChunk: () => void,
  ): { staged: StagedPayload; release: () => void } {
    let staged = this.#staged.get(payload.share);
    if (staged) {
      clearTimeout(staged.timer);
      payload.stream.cancel().catch(() => {});
    } else {
      const entry: Staged = {
        id: this.#nextId++,
        ready: Promise.resolve(false),
        users: 0,
        timer: undefined,
      };
      entry.ready = this.#upload(entry, payload, onChunk);
      this.#staged.set(payload.share, entry);
      staged = entry;
    }
    const entry = staged;
    entry.users++;
    let released = false;
    return {
      staged: entry,
      release: () => {
        if (released) return;
        released = true;
        if (--entry.users > 0) return;
        clearTimeout(entry.timer);
        entry.timer = setTimeout(
          () => this.#unstage(payload.share, entry),
          STAGED_IDLE_MS,
        );
      },
    };
  }

  async #upload(
    entry: Staged,
    { share, size, stream }: SharedPayload,
    onChunk: () => void,
  ): Promise<boolean> {
    let left = size;
    try {
      for await (const chunk of stream) {
        if (left <= 0) break;
        // Nobody waits for it any more (every run stopped): stop uploading.
        if (entry.users === 0) return this.#failed(share, entry);
        const piece = chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
        left -= piece.byteLength;
        // stageRecord copies the chunk: the stream may reuse its buffer.
        if (!(await this.send(stageRecord(entry.id, piece)))) {
          return this.#failed(share, entry);
        }
        onChunk();
      }
    } catch (e) {
      log.debug("Staging a payload on {gateway} failed: {error}", {
        gateway: this.node.name,
        error: e,
      });
      return this.#failed(share, entry);
    }
    return left === 0 || this.#failed(share, entry);
  }

  /** A failed upload: forgotten, so that a retry stages the payload anew. */
  #failed(share: object, entry: Staged): false {
    this.#unstage(share, entry);
    return false;
  }

  #unstage(share: object, entry: Staged): void {
    clearTimeout(entry.timer);
    if (this.#staged.get(share) !== entry) return;
    this.#staged.delete(share);
    if (this.usable) void this.send(unstageRecord(entry.id));
  }

  #ended(id: number): void {
    this.#clients.delete(id);
    if (this.#clients.size > 0 || !this.usable) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => {
      // The registry forgets it and closes it; a new run opens another.
      if (this.#clients.size === 0) this.#onGone(this);
    }, GATEWAY_IDLE_MS);
  }
}

const channels = new Map<GatewayNode, GatewayChannel>();
const closing = new Set<Promise<void>>();

function forget(channel: GatewayChannel): void {
  if (channels.get(channel.node) === channel) channels.delete(channel.node);
}

/**
 * The open channel to `node`, or a new one. Every node behind the same
 * gateway shares it.
 */
export function gatewayChannel(node: GatewayNode): GatewayChannel {
  const open = channels.get(node);
  if (open?.usable) return open;
  const channel = new GatewayChannel(node, (c) => {
    forget(c);
    trackClose(c);
  });
  channels.set(node, channel);
  return channel;
}

function trackClose(channel: GatewayChannel): void {
  const done = channel.close().finally(() => closing.delete(done));
  closing.add(done);
}

/**
 * Close the channel to every gateway (or only to `node`) and wait until
 * each gateway program and its clients are gone. Runs still open behind
 * them end as "gateway lost". A channel also closes by itself a moment
 * ({@linkcode GATEWAY_IDLE_MS}) after its last run; call this before a
 * test ends or a program exits at once.
 *
 * @example
 * ```ts
 * import { closeGateways } from "../../mod.ts";
 * await closeGateways();
 * ```
 */
export async function closeGateways(node?: GatewayNode): Promise<void> {
  const open = [...channels.values()].filter((c) =>
    node === undefined || c.node === node
  );
  for (const c of open) forget(c);
  await Promise.all(open.map((c) => c.close()));
  await Promise.all([...closing]);
}
