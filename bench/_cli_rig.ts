/**
 * The loopback rig the `fiwi` command benchmarks run on: N loopback nodes
 * (one OpenSSH server per 16 addresses), a rigs file naming them `n1`…`nN`,
 * and command lines for `fiwi` (with the exact flags of the `fiwi` task) and
 * for `pdsh` against the same nodes. Shared by `compare_cli.ts` and
 * `trust_load.ts`.
 *
 * @module
 */

import { measure } from "./_measure.ts";
import { type LoopbackRig, startLoopbackRig } from "../tests/_loopback.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Single-quote `s` for sh. */
export const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** A started rig with the files and command lines of the CLI benchmarks. */
export interface CliRig extends AsyncDisposable {
  /** The loopback rig. */
  rig: LoopbackRig;
  /** Number of nodes. */
  nodes: number;
  /** A scratch dir of the benchmark (removed on dispose). */
  dir: string;
  /** The rigs file: rig `loop`, nodes `n1`…`nN`. */
  rigFile: string;
  /** Environment of every measured command (control dir, no colour). */
  env: Record<string, string>;
  /** ssh options reaching the nodes (config, port, batch mode). */
  ssh: string;
  /** The shell command line of `fiwi <args>`, as the `fiwi` task runs it. */
  fiwi(args: string): string;
  /**
   * The shell command line of `pdsh -R ssh` running `cmd` on `hosts` (a pdsh
   * host list) with `fanout` connections at once (pdsh's default without).
   */
  pdsh(hosts: string, cmd: string, fanout?: number): string;
  /** End fiwi's warm masters (`fiwi close`), as the user would. */
  closeMasters(): Promise<void>;
}

/** Start the rig with `nodes` loopback nodes (2 to 252). */
export async function startCliRig(nodes: number): Promise<CliRig> {
  const tasks: Record<string, string> = JSON.parse(
    await Deno.readTextFile(`${ROOT}deno.json`),
  ).tasks;
  /** The exact `deno run` flags of the `fiwi` task. */
  const fiwiFlags = /^deno run (.+) scripts\/fiwi\.ts$/.exec(tasks.fiwi)![1];
  const rig = await startLoopbackRig({ extraHosts: nodes - 2 });
  let dir: string | undefined;
  try {
    dir = await Deno.makeTempDir({ prefix: "fiwi_bench_cli_" });
    const rigFile = `${dir}/rigs.yaml`;
    await Deno.writeTextFile(
      rigFile,
      `defaults: { user: ${rig.user}, port: ${rig.port}, sshConfig: ${rig.sshConfig} }
rigs:
  loop:
    nodes:
${rig.hosts.map((h, i) => `      n${i + 1}: ${h}`).join("\n")}
`,
    );
    const env = { FIWI_CONTROL_DIR: `${rig.dir}/cm`, NO_COLOR: "1" };
    const ssh = `-F ${rig.sshConfig} -p ${rig.port} -o BatchMode=yes`;
    const fiwi = (args: string) =>
      `${Deno.execPath()} run --config ${ROOT}deno.json ${fiwiFlags} ` +
      `${ROOT}scripts/fiwi.ts ${args}`;
    const scratch = dir;
    return {
      rig,
      nodes,
      dir,
      rigFile,
      env,
      ssh,
      fiwi,
      pdsh: (hosts, cmd, fanout) =>
        `PDSH_SSH_ARGS_APPEND=${quote(ssh)} pdsh -R ssh${
          fanout ? ` -f ${fanout}` : ""
        } -l ${rig.user} -w ${quote(hosts)} ${quote(cmd)}`,
      async closeMasters() {
        await measure(fiwi(`close --rig ${rigFile} --no-log`), env);
      },
      async [Symbol.asyncDispose]() {
        try {
          await measure(fiwi(`close --rig ${rigFile} --no-log`), env)
            .catch(() => {});
          await Deno.remove(scratch, { recursive: true }).catch(() => {});
        } finally {
          await rig[Symbol.asyncDispose]();
        }
      },
    };
  } catch (e) {
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    await rig[Symbol.asyncDispose]();
    throw e;
  }
}
