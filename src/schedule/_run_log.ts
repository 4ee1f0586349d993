/**
 * The per-command log file of a {@linkcode Command}: every run appended
 * under a banner naming the node, command, run index and start time, its
 * lines as they arrive, and a closing banner with the outcome and duration.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError } from "../errors.ts";
import type { Line } from "../process/lines.ts";
import type { RunResult } from "../process/run_options.ts";
import { describeOutcome } from "../process/outcome.ts";

const log = getLogger(["fiwi", "command"]);
const encoder = new TextEncoder();

/** An open log file; writes are queued, so line callbacks never wait. */
export class RunLog {
  readonly path: string;
  #file: Deno.FsFile;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #failed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
    this.#writer = file.writable.getWriter();
  }

  /** Open `path` for appending (created if missing). */
  static async open(path: string): Promise<RunLog> {
    try {
      return new RunLog(
        path,
        await Deno.open(path, { append: true, create: true }),
      );
    } catch (e) {
      throw new ConfigurationError(
        `Log file "${path}" cannot be opened: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  #write(text: string): void {
    if (this.#failed) return;
    this.#writer.write(encoder.encode(text)).catch((e) => {
      if (this.#failed) return;
      this.#failed = true;
      log.warn("Writing log file {path} failed: {error}", {
        path: this.path,
        error: e,
      });
    });
  }

  /** The banner that opens run `index`. */
  begin(node: string, cmd: string, index: number, startedAt: Date): void {
    this.#write(
      `===== run ${index} | node ${node} | ${startedAt.toISOString()} | ${cmd}\n`,
    );
  }

  /** One output line; stderr lines are marked. */
  line(line: Line): void {
    this.#write(
      `${line.stream === "stderr" ? "[stderr] " : ""}${line.text}\n`,
    );
  }

  /** The banner that closes run `index`: outcome and duration. */
  end(index: number, result: RunResult): void {
    this.#write(
      `===== end of run ${index} | node ${result.node} | ${
        describeOutcome(result).key
      } | ${Math.round(result.durationMs)} ms\n`,
    );
  }

  /** Flush what is queued and close the file; never rejects. */
  async close(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // The stream failed earlier (already reported): the file may still be
      // open under it.
      try {
        this.#file.close();
      } catch { /* closed with the stream */ }
    }
  }
}
