// Reading ssh's error output (src/transport/ssh_errors.ts): one table of
// ssh's messages gives the classification that a run's error carries and the
// hint `fiwi check` prints. The stderr samples are what OpenSSH 9 prints.
import {
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
} from "jsr:@std/assert@^1";
import {
  AuthenticationError,
  ConnectionError,
  type EffectiveSshConfig,
  HostKeyError,
  readSshError,
  type SshErrorNode,
  type SshErrorReading,
} from "../mod.ts";
import { classifyFailure } from "../src/transport/classify.ts";

const CHANGED = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:0KL12d94ESzCy0K4xjs9WQxxlUwVn0UBD7/v7kf2WG8.
Please contact your system administrator.
Add correct host key in /tmp/rig/known_hosts to get rid of this message.
Offending ED25519 key in /tmp/rig/known_hosts:1
  remove with:
  ssh-keygen -f "/tmp/rig/known_hosts" -R "[127.0.0.1]:2222"
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
Host key verification failed.
`;
/** What a jump host's client prints after the jump host itself failed. */
const JUMP_TAIL =
  "kex_exchange_identification: Connection closed by remote host\nConnection closed by UNKNOWN port 65535\n";

/** What `ssh -G` says of an alias: 10.0.0.5:2222 as alice, with `over` applied. */
function sshG(over: Partial<EffectiveSshConfig> = {}): EffectiveSshConfig {
  return {
    hostname: "10.0.0.5",
    port: 2222,
    user: "alice",
    proxyJump: null,
    proxyCommand: null,
    controlPath: null,
    ...over,
  };
}

const cases: {
  name: string;
  stderr: string;
  node: SshErrorNode;
  /** The node's effective ssh config (`ssh -G`), when the caller read it. */
  config?: EffectiveSshConfig;
  want: SshErrorReading;
}[] = [
  {
    name: "a changed host key: the entry and the file ssh names",
    stderr: CHANGED,
    node: { host: "dut", user: "root" },
    want: {
      kind: "host-key",
      reason: "host-key-changed",
      detail: "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
      hop: "node",
      host: "127.0.0.1",
      port: 2222,
      user: "root",
      via: null,
      hint:
        'The host key of 127.0.0.1 changed (reinstalled?): if that is expected, remove the old key with ssh-keygen -f "/tmp/rig/known_hosts" -R "[127.0.0.1]:2222", then try again',
    },
  },
  {
    name: "an unknown host key on another port",
    stderr:
      "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
    node: { host: "127.0.0.1" },
    want: {
      kind: "host-key",
      reason: "host-key-unknown",
      detail:
        "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.",
      hop: "node",
      host: "127.0.0.1",
      port: 2222,
      user: null,
      via: null,
      hint:
        "Verify the key of 127.0.0.1, then add it (ssh-keyscan -p 2222 127.0.0.1 >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new",
    },
  },
  {
    name: "an unknown host key on port 22: no -p, whatever the settings say",
    stderr:
      "No ED25519 host key is known for lab1 and you have requested strict checking.\nHost key verification failed.\n",
    node: { host: "lab1", port: 2200 },
    want: {
      kind: "host-key",
      reason: "host-key-unknown",
      detail:
        "No ED25519 host key is known for lab1 and you have requested strict checking.",
      hop: "node",
      host: "lab1",
      port: 22,
      user: null,
      via: null,
      hint:
        "Verify the key of lab1, then add it (ssh-keyscan lab1 >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new",
    },
  },
  {
    name: "a failed verification alone: the settings name the address",
    stderr: "Host key verification failed.\n",
    node: { host: "lab1", port: 2200 },
    want: {
      kind: "host-key",
      reason: "host-key-unknown",
      detail: "Host key verification failed.",
      hop: "node",
      host: "lab1",
      port: 2200,
      user: null,
      via: null,
      hint:
        "Verify the key of lab1, then add it (ssh-keyscan -p 2200 lab1 >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new",
    },
  },
  {
    name: "authentication as the user the ssh config gave",
    stderr: "alice@10.0.0.7: Permission denied (publickey).\n",
    node: { host: "dut", user: null },
    want: {
      kind: "auth",
      reason: "auth",
      detail: "alice@10.0.0.7: Permission denied (publickey).",
      hop: "node",
      host: "10.0.0.7",
      port: undefined,
      user: "alice",
      via: null,
      hint:
        'The node refused every key for "alice", the user your ssh config gives: check its "User", "identityFile", and the node\'s ~alice/.ssh/authorized_keys (ssh-copy-id)',
    },
  },
  {
    name: "authentication as the node's user",
    stderr:
      "Received disconnect from 10.0.0.7 port 22:2: Too many authentication failures\nDisconnected from 10.0.0.7 port 22\n",
    node: { host: "10.0.0.7", user: "pi" },
    want: {
      kind: "auth",
      reason: "auth",
      detail:
        "Received disconnect from 10.0.0.7 port 22:2: Too many authentication failures",
      hop: "node",
      host: "10.0.0.7",
      port: undefined,
      user: "pi",
      via: null,
      hint:
        'The node refused every key for "pi": check "user", "identityFile", and the node\'s ~pi/.ssh/authorized_keys (ssh-copy-id)',
    },
  },
  {
    name: "refused: host and port as ssh's config made them, not the settings",
    stderr: "ssh: connect to host 127.0.0.99 port 2222: Connection refused\n",
    node: { host: "dut", user: "root" },
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host 127.0.0.99 port 2222: Connection refused",
      hop: "node",
      host: "127.0.0.99",
      port: 2222,
      user: "root",
      via: null,
      hint:
        'Nothing accepts connections on 127.0.0.99:2222: start sshd there or fix "port"',
    },
  },
  {
    name: "refused on IPv6",
    stderr: "ssh: connect to host ::1 port 2222: Connection refused\n",
    node: { host: "::1" },
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host ::1 port 2222: Connection refused",
      hop: "node",
      host: "::1",
      port: 2222,
      user: null,
      via: null,
      hint:
        'Nothing accepts connections on [::1]:2222: start sshd there or fix "port"',
    },
  },
  {
    name: "a name that does not resolve",
    stderr:
      "ssh: Could not resolve hostname dut7.lab: Name or service not known\n",
    node: { host: "dut7" },
    want: {
      kind: "unreachable",
      reason: "unresolved",
      detail:
        "ssh: Could not resolve hostname dut7.lab: Name or service not known",
      hop: "node",
      host: "dut7.lab",
      port: undefined,
      user: null,
      via: null,
      hint:
        'The host name "dut7.lab" does not resolve: fix "host", DNS or the ssh config',
    },
  },
  {
    name: "no route",
    stderr: "ssh: connect to host 10.0.0.5 port 22: No route to host\n",
    node: { host: "10.0.0.5" },
    want: {
      kind: "unreachable",
      reason: "no-route",
      detail: "ssh: connect to host 10.0.0.5 port 22: No route to host",
      hop: "node",
      host: "10.0.0.5",
      port: 22,
      user: null,
      via: null,
      hint: "No route to 10.0.0.5: check cabling, VLAN or VPN",
    },
  },
  {
    name: "a timeout during the banner exchange",
    stderr:
      "Connection timed out during banner exchange\nConnection to 10.0.0.5 port 2022 timed out\n",
    node: { host: "10.0.0.5" },
    want: {
      kind: "unreachable",
      reason: "timed-out",
      detail: "Connection timed out during banner exchange",
      hop: "node",
      host: "10.0.0.5",
      port: 2022,
      user: null,
      via: null,
      hint:
        "No answer from 10.0.0.5:2022: the node may be down, or a firewall drops packets",
    },
  },
  {
    name: "closed before the login",
    stderr:
      "kex_exchange_identification: read: Connection reset by peer\nConnection reset by 10.0.0.5 port 22\n",
    node: { host: "10.0.0.5" },
    want: {
      kind: "unreachable",
      reason: "closed",
      detail: "kex_exchange_identification: read: Connection reset by peer",
      hop: "node",
      host: "10.0.0.5",
      port: 22,
      user: null,
      via: null,
      hint:
        "10.0.0.5:22 closed the connection before the login: its sshd may be starting, overloaded (MaxStartups) or refusing this client",
    },
  },
  {
    name: "a jump host that refuses: the relay's hop, not the node's",
    stderr:
      `ssh: connect to host 10.0.0.1 port 1: Connection refused\n${JUMP_TAIL}`,
    node: { host: "10.0.0.2", relay: "pi@10.0.0.1:1" },
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host 10.0.0.1 port 1: Connection refused",
      hop: "relay",
      host: "10.0.0.1",
      port: 1,
      user: "pi",
      via: 'relay "pi@10.0.0.1:1"',
      hint:
        'The relay "pi@10.0.0.1:1" failed, not the node: Nothing accepts connections on 10.0.0.1:1: start sshd there or fix "relay"',
    },
  },
  {
    name: "a relay on the node's address, another port",
    stderr: "ssh: connect to host 10.0.0.1 port 2201: Connection refused\n",
    node: { host: "10.0.0.1", port: 2202, relay: "pi@10.0.0.1:2201" },
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host 10.0.0.1 port 2201: Connection refused",
      hop: "relay",
      host: "10.0.0.1",
      port: 2201,
      user: "pi",
      via: 'relay "pi@10.0.0.1:2201"',
      hint:
        'The relay "pi@10.0.0.1:2201" failed, not the node: Nothing accepts connections on 10.0.0.1:2201: start sshd there or fix "relay"',
    },
  },
  {
    name: "a relay that refuses every key",
    stderr: `nobody@10.0.0.1: Permission denied (publickey).\n${JUMP_TAIL}`,
    node: { host: "10.0.0.2", relay: "nobody@10.0.0.1" },
    want: {
      kind: "auth",
      reason: "auth",
      detail: "nobody@10.0.0.1: Permission denied (publickey).",
      hop: "relay",
      host: "10.0.0.1",
      port: undefined,
      user: "nobody",
      via: 'relay "nobody@10.0.0.1"',
      hint:
        'The relay "nobody@10.0.0.1" failed, not the node: it refused every key: check the relay\'s user and its authorized_keys (ssh-copy-id nobody@10.0.0.1)',
    },
  },
  {
    name: "the node behind a relay that answered refuses",
    stderr: "ssh: connect to host 10.0.0.2 port 22: Connection refused\n",
    node: { host: "10.0.0.2", relay: "pi@10.0.0.1" },
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host 10.0.0.2 port 22: Connection refused",
      hop: "node",
      host: "10.0.0.2",
      port: 22,
      user: null,
      via: 'relay "pi@10.0.0.1"',
      hint:
        'Nothing accepts connections on 10.0.0.2:22: start sshd there or fix "port" (through relay "pi@10.0.0.1", which answered)',
    },
  },
  {
    name: "nothing on stderr: the settings, without a port they do not give",
    stderr: "",
    node: { host: "10.0.0.2" },
    want: {
      kind: "unreachable",
      reason: "unknown",
      detail: null,
      hop: "node",
      host: "10.0.0.2",
      port: undefined,
      user: null,
      via: null,
      hint: "Check that the node is up and sshd listens on 10.0.0.2",
    },
  },
  {
    name: "a proxied timeout without config: no UNKNOWN address",
    stderr:
      "Connection timed out during banner exchange\nConnection to UNKNOWN port 65535 timed out\n",
    node: { host: "dut" },
    want: {
      kind: "unreachable",
      reason: "timed-out",
      detail: "Connection timed out during banner exchange",
      hop: "node",
      host: "dut",
      port: undefined,
      user: null,
      via: null,
      hint:
        "No answer from dut: the node may be down, or a firewall drops packets",
    },
  },
  {
    name: "ssh -G: a proxied timeout names the address and the ProxyCommand",
    stderr:
      "Connection timed out during banner exchange\nConnection to UNKNOWN port 65535 timed out\n",
    node: { host: "dut" },
    config: sshG({ proxyCommand: "nc %h %p" }),
    want: {
      kind: "unreachable",
      reason: "timed-out",
      detail: "Connection timed out during banner exchange",
      hop: "node",
      host: "10.0.0.5",
      port: 2222,
      user: "alice",
      via: 'ProxyCommand "nc %h %p" of your ssh config',
      hint:
        'No answer from 10.0.0.5:2222: the node may be down, or a firewall drops packets (through ProxyCommand "nc %h %p" of your ssh config)',
    },
  },
  {
    name:
      "ssh -G: refused behind the config's jump host: the config's port, the jump host answered",
    stderr:
      `channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n${JUMP_TAIL}`,
    node: { host: "dut" },
    config: sshG({ port: 1, proxyJump: "pi@[10.0.0.1]:2200" }),
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "channel 0: open failed: connect failed: Connection refused",
      hop: "node",
      host: "10.0.0.5",
      port: 1,
      user: "alice",
      via: 'ProxyJump "pi@[10.0.0.1]:2200" of your ssh config',
      hint:
        'Nothing accepts connections on 10.0.0.5:1: start sshd there or fix "port" (through ProxyJump "pi@[10.0.0.1]:2200" of your ssh config, which answered)',
    },
  },
  {
    name: "ssh -G: the config's jump host refuses: the failing hop",
    stderr:
      `ssh: connect to host 10.0.0.1 port 2200: Connection refused\n${JUMP_TAIL}`,
    node: { host: "dut" },
    config: sshG({ proxyJump: "gw.lab,pi@[10.0.0.1]:2200" }),
    want: {
      kind: "unreachable",
      reason: "refused",
      detail: "ssh: connect to host 10.0.0.1 port 2200: Connection refused",
      hop: "relay",
      host: "10.0.0.1",
      port: 2200,
      user: "pi",
      via: 'ProxyJump "gw.lab,pi@[10.0.0.1]:2200" of your ssh config',
      hint:
        'The ProxyJump "gw.lab,pi@[10.0.0.1]:2200" of your ssh config failed, not the node: Nothing accepts connections on 10.0.0.1:2200: start sshd there or fix the ssh config\'s "ProxyJump"',
    },
  },
  {
    name: "ssh -G: the config's jump host refuses every key",
    stderr: `pi@10.0.0.1: Permission denied (publickey).\n${JUMP_TAIL}`,
    node: { host: "dut" },
    config: sshG({ proxyJump: "pi@10.0.0.1" }),
    want: {
      kind: "auth",
      reason: "auth",
      detail: "pi@10.0.0.1: Permission denied (publickey).",
      hop: "relay",
      host: "10.0.0.1",
      port: undefined,
      user: "pi",
      via: 'ProxyJump "pi@10.0.0.1" of your ssh config',
      hint:
        'The ProxyJump "pi@10.0.0.1" of your ssh config failed, not the node: it refused every key: check the jump host\'s user and its authorized_keys (ssh-copy-id pi@10.0.0.1)',
    },
  },
  {
    name: "ssh -G: the user the config gives, which ssh's message leaves out",
    stderr:
      "Received disconnect from 10.0.0.5 port 2222:2: Too many authentication failures\n",
    node: { host: "dut", user: null },
    config: sshG(),
    want: {
      kind: "auth",
      reason: "auth",
      detail:
        "Received disconnect from 10.0.0.5 port 2222:2: Too many authentication failures",
      hop: "node",
      host: "10.0.0.5",
      port: 2222,
      user: "alice",
      via: null,
      hint:
        'The node refused every key for "alice", the user your ssh config gives: check its "User", "identityFile", and the node\'s ~alice/.ssh/authorized_keys (ssh-copy-id)',
    },
  },
  {
    name: "ssh -G: a failed verification alone: the config's address",
    stderr: "Host key verification failed.\n",
    node: { host: "dut" },
    config: sshG(),
    want: {
      kind: "host-key",
      reason: "host-key-unknown",
      detail: "Host key verification failed.",
      hop: "node",
      host: "10.0.0.5",
      port: 2222,
      user: "alice",
      via: null,
      hint:
        "Verify the key of 10.0.0.5, then add it (ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts) or set hostKeyCheck: accept-new",
    },
  },
  {
    name: "ssh -G: nothing on stderr: the config's address",
    stderr: "",
    node: { host: "dut" },
    config: sshG(),
    want: {
      kind: "unreachable",
      reason: "unknown",
      detail: null,
      hop: "node",
      host: "10.0.0.5",
      port: 2222,
      user: "alice",
      via: null,
      hint: "Check that the node is up and sshd listens on 10.0.0.5:2222",
    },
  },
];

Deno.test("readSshError() reads ssh's messages into a classification and a hint", async (t) => {
  for (const { name, stderr, node, config, want } of cases) {
    await t.step(
      name,
      () => assertEquals(readSshError(stderr, node, { config }), want),
    );
  }
});

Deno.test("classifyFailure() gives the error class of the same reading, with ssh's telling line", () => {
  const classes = {
    "host-key": HostKeyError,
    auth: AuthenticationError,
    unreachable: ConnectionError,
  };
  for (const { stderr, node, want } of cases) {
    const e = classifyFailure("n1", 255, stderr);
    assertInstanceOf(e, classes[readSshError(stderr, node).kind]);
    assertStringIncludes(e.message, want.detail ?? "exit code 255");
  }
  // The line that says why, not the jump host's last words.
  assertEquals(
    classifyFailure(
      "n1",
      255,
      `ssh: connect to host 10.0.0.1 port 1: Connection refused\n${JUMP_TAIL}`,
    ).message,
    'Cannot reach node "n1": ssh: connect to host 10.0.0.1 port 1: Connection refused',
  );
});
