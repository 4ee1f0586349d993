// A successful RunResult for pure unit tests; override any field.
import type { RunResult } from "../mod.ts";

/** A result of a run that began and exited 0, with `over` applied. */
export function fakeResult(over: Partial<RunResult> = {}): RunResult {
  return {
    node: "n",
    cmd: "x",
    argv: ["sh", "-c", "x"],
    code: 0,
    signal: null,
    success: true,
    stdout: "",
    stderr: "",
    truncated: false,
    started: true,
    remotePid: 1,
    killed: 0,
    notice: null,
    timedOut: null,
    aborted: false,
    error: null,
    startedAt: new Date(0),
    durationMs: 1,
    ...over,
  };
}
