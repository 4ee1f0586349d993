/**
 * The byte paths of a run that bypass lines: a stdin payload copied from a
 * stream of known size (file transfers), and raw stdout handed to a sink.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { StdinStream } from "./run_options.ts";
import { type Client, forEachChunk } from "./spawn.ts";

const log = getLogger(["fiwi", "session"]);

/**
 * Copy `size` bytes of a stream payload as the client takes them, calling
 * `onChunk` after each write; resolves false when the stream failed.
 */
export async function feedStream(
  client: Client,
  { size, stream }: StdinStream,
  onChunk: () => void,
): Promise<boolean> {
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
