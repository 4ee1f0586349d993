// A Server-Sent Events reader for tests: fetch with a body reader, parsed
// into messages as the browser's EventSource would (comment and retry-only
// blocks are not messages), each wait bounded.

/** One message. */
export interface SseMessage {
  /** The `id:` field, or null when the message has none. */
  id: string | null;
  /** The `event:` field ("message" when absent). */
  event: string;
  /** The `data:` lines joined with newlines. */
  data: string;
}

/** Parse one block (the text between blank lines); null when it is no message. */
export function parseBlock(block: string): SseMessage | null {
  let id: string | null = null;
  let event = "message";
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length === 0 ? null : { id, event, data: data.join("\n") };
}

/** An open event stream. */
export class SseClient implements AsyncDisposable {
  readonly response: Response;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #queue: SseMessage[] = [];
  /** A read that a timed-out wait left running: the next wait takes it over. */
  #reading: Promise<ReadableStreamReadResult<string>> | null = null;
  /** Every message read so far, in order. */
  readonly seen: SseMessage[] = [];

  private constructor(response: Response) {
    this.response = response;
    this.#reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
  }

  /** Open `url`; rejects unless the answer is a 200 event stream. */
  static async open(
    url: string,
    headers: Record<string, string> = {},
  ): Promise<SseClient> {
    const response = await fetch(url, { headers });
    if (response.status !== 200) {
      const body = await response.text();
      throw new Error(`GET ${url}: ${response.status} ${body}`);
    }
    return new SseClient(response);
  }

  /** The next message; rejects after `ms` or when the stream ends. */
  async next(ms = 5000): Promise<SseMessage> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no event within ${ms} ms`)),
        ms,
      );
    });
    try {
      while (this.#queue.length === 0) {
        this.#reading ??= this.#reader.read();
        const { value, done } = await Promise.race([this.#reading, timeout]);
        this.#reading = null;
        if (done) throw new Error("the event stream ended");
        this.#buffer += value;
        const blocks = this.#buffer.split(/\n\n/);
        this.#buffer = blocks.pop()!;
        for (const b of blocks) {
          const m = parseBlock(b);
          if (m) this.#queue.push(m);
        }
      }
      const m = this.#queue.shift()!;
      this.seen.push(m);
      return m;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The first message (from now) that `match` accepts; rejects after `ms`. */
  async until(
    match: (m: SseMessage) => boolean,
    ms = 5000,
  ): Promise<SseMessage> {
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${ms} ms`);
      const m = await this.next(left);
      if (match(m)) return m;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
