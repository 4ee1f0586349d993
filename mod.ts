/**
 * fiwi: control test rigs over SSH from Deno.
 *
 * Run a command on many nodes and stream every output line as it arrives,
 * with connect, command and io timeouts that really kill the remote process.
 *
 * @example
 * ```ts
 * import { SshNode } from "./mod.ts";
 *
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const result = await node.rexec("echo hello", {
 *   onLine: (line) => console.log(`${line.node}: ${line.text}`),
 * });
 * console.log(result.success, result.stdout);
 * ```
 *
 * @module
 */

export {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  FiwiError,
  HostKeyError,
  RigFileError,
  TimeoutError,
} from "./src/errors.ts";
export type { EofPolicy, Line, StreamName } from "./src/lines.ts";
export { SshSession } from "./src/session.ts";
export type { RunOptions, RunResult } from "./src/session.ts";
export { SshNode } from "./src/node.ts";
export type { OpenConsolesOptions, SshNodeOptions } from "./src/node.ts";
export type {
  HostKeyCheck,
  RelayMode,
  TransportKind,
  TransportSpec,
} from "./src/transport.ts";
export { DEFAULT_CONCURRENCY, runAll } from "./src/fanout.ts";
export type { FanoutNode, RunAllOptions } from "./src/fanout.ts";
export { collate, formatNodeList } from "./src/collate.ts";
export type {
  CollateOptions,
  CollateStreams,
  OutputGroup,
} from "./src/collate.ts";
export { Command, MAX_RUN_RECORDS } from "./src/command.ts";
export type {
  Clock,
  CommandNode,
  CommandOptions,
  CommandState,
  RunRecord,
} from "./src/command.ts";
export { CommandManager, MAX_ABNORMAL_HISTORY } from "./src/manager.ts";
export type {
  AbnormalStop,
  ActiveCommand,
  AddCommandOptions,
} from "./src/manager.ts";
export { DEFAULT_KILL_TIMEOUT, ProcessManager } from "./src/process.ts";
export type {
  ExitSource,
  ExitStatus,
  KillAllOptions,
  KillOptions,
  ProcessExit,
  ProcessInfo,
  ProcessManagerOptions,
  StartOptions,
} from "./src/process.ts";
export { DEFAULT_EXPECT_TIMEOUT, openShell, Shell } from "./src/shell.ts";
export type {
  ExpectOptions,
  ShellOptions,
  ShellResult,
  ShellRunOptions,
} from "./src/shell.ts";
export { DEFAULT_RETRY, isRetryable, resolveRetry } from "./src/retry.ts";
export type { RetryOptions, RetryPolicy } from "./src/retry.ts";
export { ControlPool, controlPool } from "./src/pool.ts";
export type {
  ControlPoolOptions,
  MasterState,
  MasterStatus,
} from "./src/pool.ts";
export {
  BUILTIN_RIG_YAML,
  DEFAULT_RIG_FILE,
  loadRig,
  parseRig,
  Rig,
} from "./src/rig.ts";
export type { ParseRigOptions } from "./src/rig.ts";
export { discover, parseProbeOutput, probeCommand } from "./src/discover.ts";
export type {
  DiscoverOptions,
  NodeInventory,
  PowerControl,
  PowerSupply,
  SerialPort,
  UsbDevice,
} from "./src/discover.ts";
export { findPowerDevice, POWER_DEVICES } from "./src/power_devices.ts";
export type { PowerDeviceKind, PowerDeviceSpec } from "./src/power_devices.ts";
