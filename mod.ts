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
export type { EofPolicy, Line, StreamName } from "./src/process/lines.ts";
export { SshSession } from "./src/process/session.ts";
export type { Admission, RunTarget } from "./src/process/session.ts";
export type { RunOptions, RunResult } from "./src/process/run_options.ts";
export { describeOutcome } from "./src/process/outcome.ts";
export type { Outcome, OutcomeFacts } from "./src/process/outcome.ts";
export { SshNode } from "./src/node/node.ts";
export type { OpenConsolesOptions, SshNodeOptions } from "./src/node/node.ts";
export type { ConsoleNode } from "./src/node/console.ts";
export type {
  HostKeyCheck,
  RelayMode,
  TransportKind,
  TransportSpec,
} from "./src/transport/argv.ts";
export { DEFAULT_CONCURRENCY, runAll } from "./src/fanout/run_all.ts";
export type { FanoutNode, RunAllOptions } from "./src/fanout/run_all.ts";
export { mapPool } from "./src/fanout/pool.ts";
export type { PoolOptions } from "./src/fanout/pool.ts";
export { pullAll, pushAll } from "./src/fanout/transfer_all.ts";
export type { TransferAllOptions } from "./src/fanout/transfer_all.ts";
export type {
  TransferOptions,
  TransferResult,
  TransferTarget,
} from "./src/transfer/transfer.ts";
export type { StdinStream } from "./src/process/run_options.ts";
export { collate } from "./src/fanout/collate.ts";
export { formatNodeList } from "./src/nodeset/fold.ts";
export type {
  CollateOptions,
  CollateStreams,
  OutputGroup,
} from "./src/fanout/collate.ts";
export { Command, MAX_RUN_RECORDS } from "./src/schedule/command.ts";
export { scheduleTicks } from "./src/schedule/ticks.ts";
export type { ScheduleTicksOptions, Tick } from "./src/schedule/ticks.ts";
export type {
  Clock,
  CommandNode,
  CommandOptions,
  CommandState,
  RunRecord,
} from "./src/schedule/command.ts";
export {
  CommandManager,
  MAX_ABNORMAL_HISTORY,
} from "./src/schedule/manager.ts";
export type {
  AbnormalStop,
  ActiveCommand,
  AddCommandOptions,
} from "./src/schedule/manager.ts";
export {
  DEFAULT_KILL_TIMEOUT,
  ProcessManager,
} from "./src/process_manager/process_manager.ts";
export type {
  ExitSource,
  ExitStatus,
  KillAllOptions,
  KillOptions,
  ProcessExit,
  ProcessInfo,
  ProcessManagerOptions,
  StartOptions,
} from "./src/process_manager/process_manager.ts";
export { DEFAULT_EXPECT_TIMEOUT, openShell, Shell } from "./src/shell/shell.ts";
export type {
  ExpectOptions,
  ShellOptions,
  ShellResult,
  ShellRunOptions,
  ShellTarget,
} from "./src/shell/shell.ts";
export { DEFAULT_RETRY, resolveRetry } from "./src/process/backoff.ts";
export { isRetryable } from "./src/connection/retry.ts";
export type { RetryOptions, RetryPolicy } from "./src/process/backoff.ts";
export { ControlPool, controlPool } from "./src/connection/pool.ts";
export type {
  ControlPoolOptions,
  MasterState,
  MasterStatus,
  PoolNode,
} from "./src/connection/pool.ts";
export {
  BUILTIN_RIG_YAML,
  DEFAULT_RIG_FILE,
  loadRig,
  parseRig,
  Rig,
} from "./src/rig/rig.ts";
export type { ParseRigOptions } from "./src/rig/rig.ts";
export {
  DEFAULT_RIG_TEST_TIMEOUT,
  findTestRig,
  loadTestRig,
  rigTest,
} from "./src/rig/testing.ts";
export type {
  RigTestContext,
  RigTestOptions,
  TestRigSource,
} from "./src/rig/testing.ts";
export {
  discover,
  parseProbeOutput,
  probeCommand,
} from "./src/discover/discover.ts";
export type {
  DiscoverOptions,
  NodeInventory,
  PowerControl,
  PowerSupply,
  SerialPort,
  UsbDevice,
} from "./src/discover/discover.ts";
export {
  findPowerDevice,
  POWER_DEVICES,
  POWER_TOOLS,
} from "./src/hardware/power_devices.ts";
export type {
  PowerDeviceKind,
  PowerDeviceSpec,
  PowerToolName,
  PowerToolSpec,
} from "./src/hardware/power_devices.ts";
export {
  DEFAULT_OFF_TIME,
  DEFAULT_POWER_TIMEOUT,
} from "./src/hardware/power.ts";
export type {
  PowerAction,
  PowerOptions,
  PowerResult,
  PowerState,
  PowerSwitch,
} from "./src/hardware/power.ts";
export {
  BAUD_RATES,
  SERIAL_NOTICE,
  SerialConsole,
  serialReaderCommand,
} from "./src/hardware/serial.ts";
export type {
  SerialConfig,
  SerialConsoleOptions,
} from "./src/hardware/serial.ts";
export {
  DEFAULT_REACHABLE_INTERVAL,
  DEFAULT_REACHABLE_TIMEOUT,
} from "./src/connection/reachable.ts";
export type {
  ReachableNode,
  WaitReachableOptions,
} from "./src/connection/reachable.ts";
