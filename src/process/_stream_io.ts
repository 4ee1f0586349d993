/**
 * The byte paths of a run that bypass lines: a stdin payload copied from a
 * stream of known size (file transfers), raw stdout handed to a sink, and
 * the growth of a file the client writes its stdout into.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { StdinStream } from "./run_options.ts";
import { type Client, forEachChunk } from "./spawn.ts";

const log = getLogger(["fiwi", "session"]);

/**
 * Copy `size` bytes of a stream payload as the client takes them, calling
 * `onChunk` after each write, or let the client feed a shared payload
 * itself ({@linkcode Client.feedShared}); resolves false when the stream
 * failed.
 */
export async function feedStream(
  client: Client,
  stdin: StdinStream,
  onChunk: () => void,
): Promise<boolean> {
  const { size, stream, share } = stdin;
  const shared = share === undefined
    ? null
    : client.feedShared({ share, size, stream }, onChunk);
  if (shared) return await shared;
  let left = size;
  try {
    for await (const chunk of stream) {
      if (left <= 0) break;
      const piece = chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
      left -= piece.byteLength;
      if (!(await client.write(piece))) break;
      onChunk();
    }
    return true;
  } catch (e) {
    if (!client.stopping) {
      log.warn("Reading the stdin stream failed: {error}", { error: e });
    }
    return false;
  }
}

/**
 * Hand every chunk of raw stdout to `sink`; once it throws, read and drop
 * the rest, so the client is never blocked on a full pipe.
 */
export async function pumpRaw(
  bytes: ReadableStream<Uint8Array>,
  sink: (chunk: Uint8Array) => void | Promise<void>,
  onBytes: () => void,
  signal: AbortSignal,
): Promise<void> {
  let failed = false;
  // Aborting `signal` cancels the read (see Client.drain).
  await forEachChunk(bytes, signal, async (chunk) => {
    onBytes();
    if (failed) return;
    try {
      await sink(chunk);
    } catch (e) {
      failed = true;
      log.debug("The stdout sink failed: {error}", { error: e });
    }
  });
}

/** How often the size of a client's stdout file is looked at, in ms. */
const FILE_POLL_MS = 200;

/**
 * Watch a file that a client writes by itself, calling `onGrowth` with its
 * size whenever it grew. Polled: an inotify watch (`Deno.watchFs`) wakes
 * this process on every write the client makes, which is the cost the
 * file spares. `stop` ends the watch and waits for a look in progress.
 */
export function watchGrowth(
  path: string,
  onGrowth: (bytes: number) => void,
): { stop(): Promise<void> } {
  let seen = 0;
  let looking: Promise<void> = Promise.resolve();
  const look = async () => {
    const size = (await Deno.stat(path).catch(() => null))?.size ?? 0;
    if (size > seen) onGrowth(seen = size);
  };
  const timer = setInterval(() => {
    looking = looking.then(look);
  }, FILE_POLL_MS);
  return {
    async stop() {
      clearInterval(timer);
      await (looking = looking.then(look));
    },
  };
}
