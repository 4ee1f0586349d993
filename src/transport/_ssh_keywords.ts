/**
 * The ssh_config keywords fiwi accepts in `sshOptions`: those of
 * ssh_config(5) in OpenSSH 9.2, the later additions up to 10.x, and the old
 * aliases ssh still takes. Keywords are case-insensitive for ssh, so the
 * set holds them in lower case. Pure data.
 *
 * @module
 */

const KEYWORDS = `
AddKeysToAgent AddressFamily BatchMode BindAddress BindInterface
CanonicalDomains CanonicalizeFallbackLocal CanonicalizeHostname
CanonicalizeMaxDots CanonicalizePermittedCNAMEs CASignatureAlgorithms
CertificateFile ChallengeResponseAuthentication ChannelTimeout
CheckHostIP Cipher Ciphers ClearAllForwardings Compression
ConnectionAttempts ConnectTimeout ControlMaster ControlPath
ControlPersist DynamicForward EnableEscapeCommandline EnableSSHKeysign
EscapeChar ExitOnForwardFailure FingerprintHash ForkAfterAuthentication
ForwardAgent ForwardX11 ForwardX11Timeout ForwardX11Trusted
GatewayPorts GlobalKnownHostsFile GSSAPIAuthentication
GSSAPIClientIdentity GSSAPIDelegateCredentials GSSAPIKexAlgorithms
GSSAPIKeyExchange GSSAPIRenewalForcesRekey GSSAPIServerIdentity
GSSAPITrustDns HashKnownHosts HostbasedAcceptedAlgorithms
HostbasedAuthentication HostbasedKeyTypes HostKeyAlgorithms
HostKeyAlias Hostname IdentitiesOnly IdentityAgent IdentityFile
IgnoreUnknown IPQoS KbdInteractiveAuthentication KbdInteractiveDevices
KexAlgorithms KnownHostsCommand LocalCommand LocalForward LogLevel
LogVerbose MACs NoHostAuthenticationForLocalhost
NumberOfPasswordPrompts ObscureKeystrokeTiming PasswordAuthentication
PermitLocalCommand PermitRemoteOpen PKCS11Provider Port
PreferredAuthentications Protocol ProxyCommand ProxyJump ProxyUseFdpass
PubkeyAcceptedAlgorithms PubkeyAcceptedKeyTypes PubkeyAuthentication
RefuseConnection RekeyLimit RemoteForward RequestTTY
RequiredRSASize RevokedHostKeys SecurityKeyProvider SendEnv
ServerAliveCountMax ServerAliveInterval SessionType SetEnv
SmartcardDevice StdinNull StreamLocalBindMask StreamLocalBindUnlink
StrictHostKeyChecking SyslogFacility Tag TCPKeepAlive Tunnel
TunnelDevice UpdateHostKeys UsePrivilegedPort User UserKnownHostsFile
UseRoaming VerifyHostKeyDNS VisualHostKey WarnWeakCrypto XAuthLocation
`;

/** Every keyword `ssh -o` takes, lower case. */
export const SSH_KEYWORDS: ReadonlySet<string> = new Set(
  KEYWORDS.trim().split(/\s+/).map((k) => k.toLowerCase()),
);

/**
 * Keywords whose value ssh reads as several words (a command line, a list
 * of files or names, a forwarding spec): spaces in their values are fine.
 * Every other keyword takes one word, and ssh fails on "extra arguments".
 */
export const MULTI_WORD_KEYWORDS: ReadonlySet<string> = new Set(
  [
    "CanonicalDomains",
    "CanonicalizePermittedCNAMEs",
    "ChannelTimeout",
    "GlobalKnownHostsFile",
    "IPQoS",
    "KnownHostsCommand",
    "LocalCommand",
    "LocalForward",
    "LogVerbose",
    "PermitRemoteOpen",
    "ProxyCommand",
    "RekeyLimit",
    "RemoteForward",
    "SendEnv",
    "SetEnv",
    "UserKnownHostsFile",
  ].map((k) => k.toLowerCase()),
);

/**
 * Keywords refused with the reason: ssh rejects them on its command line,
 * or they clash with the command fiwi always passes.
 */
export const REFUSED_KEYWORDS: ReadonlyMap<string, string> = new Map([
  ["host", "ssh does not take Host blocks with -o: use sshConfig for them"],
  ["match", "ssh does not take Match blocks with -o: use sshConfig for them"],
  ["include", "ssh does not take Include with -o: use sshConfig instead"],
  [
    "remotecommand",
    "fiwi always gives ssh a command, and ssh refuses both",
  ],
]);
