/**
 * What clients uploaded to the servers on one port: the TCP payload bytes
 * each server socket received (`bytes_received` of `ss -ti`), sampled about
 * every 100 ms, the largest value seen per connection, summed by the
 * server's address. Exact for connections that outlast their upload by a
 * sample (a master closed after a push, a gateway session waiting on its
 * nodes); a connection that closes within 100 ms of its last byte is
 * undercounted.
 *
 * @module
 */

/** Bytes received, by the server's local address. */
export type ReceivedBytes = Map<string, number>;

/** Samples the established server sockets on `port` until `stop()`. */
export class TcpReceivedSampler {
  #max = new Map<string, number>();
  #stopped = false;
  #loop: Promise<void>;

  /** Start sampling the sockets whose local port is `port`. */
  constructor(private port: number, private intervalMs = 100) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const t = performance.now();
      await this.#sample();
      const cost = performance.now() - t;
      await new Promise((r) =>
        setTimeout(r, Math.max(this.intervalMs - cost, cost * 4))
      );
    }
  }

  async #sample(): Promise<void> {
    const out = await new Deno.Command("ss", {
      args: ["-tinH", "state", "established", `( sport = :${this.port} )`],
      stdout: "piped",
      stderr: "null",
    }).output();
    // A socket's line ("local:port peer:port"), then its info line.
    let key = "";
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const addrs = /(\d+\.\d+\.\d+\.\d+:\d+)\s+(\d+\.\d+\.\d+\.\d+:\d+)/
        .exec(line);
      if (addrs) key = `${addrs[1]} ${addrs[2]}`;
      const got = /bytes_received:(\d+)/.exec(line);
      if (got && key) {
        this.#max.set(key, Math.max(this.#max.get(key) ?? 0, Number(got[1])));
        key = "";
      }
    }
  }

  /** Stop; bytes received by local address prefix, and connections seen. */
  async stop(): Promise<
    { bytes(prefix: string): number; connections: number }
  > {
    this.#stopped = true;
    await this.#loop;
    await this.#sample();
    const max = this.#max;
    return {
      bytes: (prefix) =>
        [...max].filter(([k]) => k.startsWith(prefix))
          .reduce((n, [, b]) => n + b, 0),
      connections: max.size,
    };
  }
}
