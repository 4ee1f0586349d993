/**
 * Lines: turning a byte stream from a subprocess into lines.
 *
 * Bytes are decoded with `TextDecoderStream` (a multi-byte character split
 * across chunks is reassembled) and split with std's `TextLineStream`
 * (`\r\n` and `\n` end a line). A trailing `\r` is removed; a lone `\r`
 * inside a line (progress bars) is kept. A final fragment without `\n` is
 * emitted with `partial: true` (`eof: "emit"`) or dropped (`eof: "strict"`).
 *
 * @module
 */

import { TextLineStream } from "jsr:@std/streams@^1/text-line-stream";

/** Which stream of the subprocess a line came from. */
export type StreamName = "stdout" | "stderr";

/** One line of output, as delivered to `onLine`. */
export interface Line {
  /** Name of the node that produced it. */
  node: string;
  /** Which stream it came from. */
  stream: StreamName;
  /** The text, without the line ending. */
  text: string;
  /** True for a final fragment that had no `\n`. */
  partial: boolean;
  /** When it arrived, in ms since the epoch. */
  time: number;
}

/** What to do with a trailing fragment that has no `\n` at end of stream. */
export type EofPolicy = "emit" | "strict";

/** A decoded line before it is given a node, stream and time. */
export interface RawLine {
  /** The text, without the line ending. */
  text: string;
  /** True for a final fragment that had no `\n`. */
  partial: boolean;
}

/**
 * Split a byte stream into lines.
 *
 * @param bytes the raw stream, e.g. `child.stdout`
 * @param eof policy for a trailing fragment
 * @param onBytes called with every chunk's byte length as it arrives (io
 *   watchdogs use it)
 * @param signal aborting it stops reading (the generator then throws)
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { readLines } from "./lines.ts";
 * const bytes = ReadableStream.from([new TextEncoder().encode("a\r\nb")]);
 * const got = await Array.fromAsync(readLines(bytes, "emit"));
 * assertEquals(got, [
 *   { text: "a", partial: false },
 *   { text: "b", partial: true },
 * ]);
 * ```
 */
export async function* readLines(
  bytes: ReadableStream<Uint8Array>,
  eof: EofPolicy = "emit",
  onBytes?: (n: number) => void,
  signal?: AbortSignal,
): AsyncGenerator<RawLine> {
  // Count newlines as text enters the splitter: a line numbered beyond that
  // count can only be the final fragment, so no look-ahead is needed.
  let newlines = 0;
  const counter = new TransformStream<string, string>({
    transform(chunk, controller) {
      for (
        let i = chunk.indexOf("\n");
        i !== -1;
        i = chunk.indexOf("\n", i + 1)
      ) {
        newlines++;
      }
      controller.enqueue(chunk);
    },
  });
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      onBytes?.(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
  const lines: ReadableStream<string> = bytes
    .pipeThrough(tap, { signal })
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(counter)
    .pipeThrough(new TextLineStream());
  let index = 0;
  for await (const text of lines) {
    index++;
    if (index <= newlines) {
      yield { text, partial: false };
    } else if (eof === "emit") {
      yield {
        text: text.endsWith("\r") ? text.slice(0, -1) : text,
        partial: true,
      };
    }
  }
}
