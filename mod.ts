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
export type { RunOptions, RunResult } from "./src/process/run_options.ts";
export { describeOutcome, isSuccessKey } from "./src/process/outcome.ts";
export type { Outcome, OutcomeFacts } from "./src/process/outcome.ts";
export { SshNode } from "./src/node/node.ts";
export type {
  DefaultedOption,
  GatewayHop,
  NodeSettings,
  OpenConsolesOptions,
  SshNodeOptions,
} from "./src/node/node.ts";
export { ConsoleStream } from "./src/node/console.ts";
export {
  expandNodeValues,
  expandNodeValuesAll,
  NODE_VALUE_KEYS,
} from "./src/node/node_values.ts";
export type { ValuesNode } from "./src/node/node_values.ts";
export type { ConsoleStreamOptions } from "./src/node/console.ts";
export type {
  HostKeyCheck,
  RelayMode,
  TransportKind,
  TransportSpec,
} from "./src/transport/argv.ts";
export { readSshError } from "./src/transport/ssh_errors.ts";
export type {
  ReadSshErrorOptions,
  SshErrorReading,
  SshFailureKind,
  SshFailureReason,
} from "./src/transport/ssh_errors.ts";
export type { EffectiveSshConfig } from "./src/transport/ssh_config.ts";
export { effectiveSshConfig } from "./src/connection/ssh_config.ts";
export type { EffectiveSshConfigOptions } from "./src/connection/ssh_config.ts";
export { DEFAULT_CONCURRENCY, runAll } from "./src/fanout/run_all.ts";
export type { RunAllOptions } from "./src/fanout/run_all.ts";
export { mapPool } from "./src/fanout/pool.ts";
export type { PoolOptions } from "./src/fanout/pool.ts";
export { pullAll, pushAll } from "./src/fanout/transfer_all.ts";
export type { TransferAllOptions } from "./src/fanout/transfer_all.ts";
export type {
  TransferOptions,
  TransferResult,
} from "./src/transfer/transfer.ts";
export { collate, formatGroups } from "./src/fanout/collate.ts";
export { formatNodeList } from "./src/nodeset/fold.ts";
export type {
  CollateOptions,
  CollateStreams,
  FormatGroupsOptions,
  OutputGroup,
} from "./src/fanout/collate.ts";
export { diffGroups, diffLines } from "./src/fanout/diff.ts";
export type { DiffHunk, DiffOptions } from "./src/fanout/diff.ts";
export { Command, MAX_RUN_RECORDS } from "./src/schedule/command.ts";
export { scheduleTicks } from "./src/schedule/ticks.ts";
export type { ScheduleTicksOptions, Tick } from "./src/schedule/ticks.ts";
export type {
  Clock,
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
} from "./src/shell/shell.ts";
export { DEFAULT_RETRY, resolveRetry } from "./src/process/backoff.ts";
export { isRetryable } from "./src/connection/retry.ts";
export type { RetryOptions, RetryPolicy } from "./src/process/backoff.ts";
export {
  CLOSE_CONCURRENCY,
  closeAllMasters,
  closeMaster,
  closeMasters,
  DEFAULT_MAX_MASTERS,
  maxMasters,
  setMaxMasters,
} from "./src/connection/masters.ts";
export { closeGateways, GATEWAY_IDLE_MS } from "./src/gateway/channel.ts";
export type { GatewayNode } from "./src/gateway/channel.ts";
export type {
  Client,
  SharedPayload,
  SpawnOptions,
} from "./src/process/spawn.ts";
export type {
  ClosedMaster,
  CloseMastersOptions,
} from "./src/connection/masters.ts";
export {
  BUILTIN_RIG_YAML,
  DEFAULT_RIG_FILE,
  loadRig,
  parseRig,
  Rig,
} from "./src/rig/rig.ts";
export type { ParseRigOptions } from "./src/rig/rig.ts";
export { parseDuration } from "./src/rigfile/duration.ts";
export {
  DEFAULT_LEASE_STORE_TIMEOUT,
  defaultLeaseHolder,
  Lease,
  LeaseHeldError,
  LeaseLostError,
  openLeaseStore,
} from "./src/lease/lease.ts";
export type {
  LeaseEvent,
  LeaseEventKind,
  LeaseHistoryOptions,
  LeaseInfo,
  LeaseRequest,
  LeaseStore,
  LeaseStoreOptions,
  LeaseWaiter,
} from "./src/lease/lease.ts";
export {
  DEFAULT_STATE_MAX_BYTES,
  DEFAULT_STATE_RETENTION_DAYS,
  defaultStatePath,
  StateStore,
} from "./src/state/state.ts";
export type {
  InvocationRecord,
  OutcomeRecord,
  SampleFilter,
  SampleRecord,
  StateStoreOptions,
} from "./src/state/state.ts";
export { parseSampleValue } from "./src/state/sample_value.ts";
export {
  checkPrivateFile,
  type PrivateFileKind,
  replacedPrivateFile,
} from "./src/state/private_file.ts";
export {
  Dashboard,
  DEFAULT_DASHBOARD_PORT,
  DEFAULT_PROBE_INTERVAL,
  isLoopback,
  serveDashboard,
} from "./src/dashboard/dashboard.ts";
export type {
  DashboardOptions,
  DashboardStore,
} from "./src/dashboard/dashboard.ts";
export {
  DEFAULT_RIG_TEST_TIMEOUT,
  findTestRig,
  loadTestRig,
  RIG_TEST_LEASE_MARGIN,
  rigTest,
} from "./src/rig/testing.ts";
export type {
  RigTestContext,
  RigTestOptions,
  TestRigSource,
} from "./src/rig/testing.ts";
export { discover } from "./src/discover/discover.ts";
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
  openSerialConsole,
  SERIAL_NOTICE,
} from "./src/hardware/serial.ts";
export type {
  SerialConfig,
  SerialConsoleOptions,
} from "./src/hardware/serial.ts";
export {
  DEFAULT_REACHABLE_INTERVAL,
  DEFAULT_REACHABLE_TIMEOUT,
} from "./src/connection/reachable.ts";
export type { WaitReachableOptions } from "./src/connection/reachable.ts";
// What each layer needs of a node, named after the layer. `SshNode`
// satisfies every one; a value of your own (a wrapper that observes runs, a
// test double) may stand in where a function takes one of these.
export type { Admission, SessionNode } from "./src/process/session.ts";
export type { PoolNode } from "./src/connection/pool.ts";
export type { MasterNode } from "./src/connection/masters.ts";
export type { ReachableNode } from "./src/connection/reachable.ts";
export type { SshErrorNode } from "./src/transport/ssh_errors.ts";
export type { ShellNode } from "./src/shell/shell.ts";
export type { TransferNode } from "./src/transfer/transfer.ts";
export type { ConsoleNode } from "./src/node/console.ts";
export type { CommandNode } from "./src/schedule/command.ts";
export type { FanoutNode } from "./src/fanout/run_all.ts";
