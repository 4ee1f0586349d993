/**
 * The dashboard's event stream: every update gets an id, is kept in a
 * bounded ring, and goes to every connected browser as a Server-Sent Event
 * (std's `ServerSentEventStream` writes the wire format). A browser that
 * reconnects sends `Last-Event-ID`; when that id is still in the ring it
 * gets the events after it and nothing else, otherwise (an id of another
 * server run, or one that fell out of the ring) a fresh snapshot.
 *
 * Ids are `EPOCH-SEQ`: the epoch tells this server run's ids from those of
 * an earlier one on the same port, so a stale id never resumes at a wrong
 * place.
 *
 * @module
 */

import { ServerSentEventStream } from "jsr:@std/http@^1/server-sent-event-stream";

/**
 * One message as std's `ServerSentEventStream` takes it. Written out here:
 * the npm build of std this repository maps `jsr:@std` to carries no types.
 */
export interface ServerSentEventMessage {
  comment?: string;
  event?: string;
  data?: string;
  id?: string | number;
  retry?: number;
}

/** One update, as the browser gets it: an event name and JSON data. */
export interface DashboardEvent {
  /** `EPOCH-SEQ`. */
  id: string;
  /** Event name: `node`, `sample`, `invocation`, `console`. */
  event: string;
  /** The JSON text of its data (one line: JSON.stringify never emits a newline). */
  data: string;
}

/** A connected browser: where its messages go. */
interface Subscriber {
  controller: ReadableStreamDefaultController<ServerSentEventMessage>;
}

/** Default number of events kept for resuming. */
export const DEFAULT_RING_SIZE = 4096;
/**
 * Messages queued for one slow browser before it is dropped: it reconnects
 * and resumes from the ring, or gets a snapshot, instead of holding memory.
 */
const MAX_QUEUED = 2048;
/** How soon a browser reconnects after the stream ends (EventSource's `retry`). */
const RETRY_MS = 1000;
/** A comment this often keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

/** The events of one server run and the browsers that follow them. */
export class EventHub {
  /** This server run's id prefix. */
  readonly epoch: string;
  #seq = 0;
  #ring: DashboardEvent[] = [];
  #size: number;
  #subscribers = new Set<Subscriber>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** @param size events kept for resuming (default {@linkcode DEFAULT_RING_SIZE}) */
  constructor(size = DEFAULT_RING_SIZE) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `Invalid ring size ${size}: give a whole number >= 1`,
      );
    }
    this.#size = size;
    this.epoch = Date.now().toString(36);
  }

  /** The id of the newest event (`EPOCH-0` before the first). */
  get lastId(): string {
    return `${this.epoch}-${this.#seq}`;
  }

  /** Browsers connected now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Record an event and send it to every browser; its id. */
  publish(event: string, data: unknown): string {
    const e: DashboardEvent = {
      id: `${this.epoch}-${++this.#seq}`,
      event,
      data: JSON.stringify(data),
    };
    this.#ring.push(e);
    if (this.#ring.length > this.#size) {
      this.#ring.splice(0, this.#ring.length - this.#size);
    }
    for (const s of this.#subscribers) this.#send(s, e);
    return e.id;
  }

  /**
   * The events after `lastEventId`, or null when they cannot be told
   * apart from a gap: another epoch, a malformed id, or one older than
   * the ring holds.
   */
  since(lastEventId: string | null): DashboardEvent[] | null {
    const m = /^([0-9a-z]+)-(\d+)$/.exec(lastEventId ?? "");
    if (!m || m[1] !== this.epoch) return null;
    const seq = Number(m[2]);
    if (seq > this.#seq) return null;
    const first = this.#seq - this.#ring.length; // seq before the ring's first
    if (seq < first) return null;
    return this.#ring.slice(seq - first);
  }

  /**
   * A stream of SSE bytes for one browser: `first` (the resumed events or a
   * snapshot), then every event published until the browser goes away or
   * {@linkcode EventHub.close}.
   */
  stream(
    first: readonly (DashboardEvent | ServerSentEventMessage)[],
  ): ReadableStream<Uint8Array> {
    let subscriber: Subscriber | undefined;
    const messages = new ReadableStream<ServerSentEventMessage>({
      start: (controller) => {
        controller.enqueue({ retry: RETRY_MS, comment: "fiwi dashboard" });
        for (const m of first) controller.enqueue(m);
        if (this.#closed) return controller.close();
        subscriber = { controller };
        this.#subscribers.add(subscriber);
        this.#startHeartbeat();
      },
      cancel: () => {
        if (subscriber) this.#subscribers.delete(subscriber);
      },
    }, { highWaterMark: MAX_QUEUED });
    const encode: TransformStream<ServerSentEventMessage, Uint8Array> =
      new ServerSentEventStream();
    return messages.pipeThrough(encode);
  }

  #send(s: Subscriber, m: ServerSentEventMessage): void {
    if ((s.controller.desiredSize ?? 0) <= 0) {
      // Too far behind: drop it; its EventSource reconnects and resumes.
      this.#subscribers.delete(s);
      try {
        s.controller.close();
      } catch { /* already closed */ }
      return;
    }
    try {
      s.controller.enqueue(m);
    } catch {
      this.#subscribers.delete(s); // the browser went away meanwhile
    }
  }

  #startHeartbeat(): void {
    this.#heartbeat ??= setInterval(() => {
      for (const s of this.#subscribers) this.#send(s, { comment: "" });
    }, HEARTBEAT_MS);
  }

  /** End every stream and stop the heartbeat. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    for (const s of this.#subscribers) {
      try {
        s.controller.close();
      } catch { /* already closed */ }
    }
    this.#subscribers.clear();
  }
}
