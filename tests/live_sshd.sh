#!/bin/sh
# A stand-in "live rig" for `deno task test:live`: a second sshd, separate
# from the test harness, that behaves like a lab node fiwi knows nothing
# about. It listens on 127.0.0.10 port 2222, lets in one unprivileged user
# whose login shell is /bin/sh (no root login), and the port is written only
# into a client ssh config, so the tests must learn it from FIWI_SSH_CONFIG.
#
#   sudo sh tests/live_sshd.sh start   # prints the variables to export
#   sudo sh tests/live_sshd.sh stop    # stops sshd, removes the user's key
#
# Must run as root (it creates the user and starts sshd). Settings:
# FIWI_LIVE_DIR (default /tmp/fiwi-live), FIWI_LIVE_USER (default fiwilive),
# FIWI_LIVE_IP (default 127.0.0.10), FIWI_LIVE_PORT (default 2222).
set -eu

dir=${FIWI_LIVE_DIR:-/tmp/fiwi-live}
user=${FIWI_LIVE_USER:-fiwilive}
ip=${FIWI_LIVE_IP:-127.0.0.10}
port=${FIWI_LIVE_PORT:-2222}
home=/home/$user

stop() {
  if [ -f "$dir/sshd.pid" ]; then
    pid=$(cat "$dir/sshd.pid")
    # The listener, then the user's sessions it leaves behind.
    kill "$pid" 2>/dev/null || true
    pkill -KILL -u "$user" 2>/dev/null || true
  fi
  rm -rf "$dir"
  rm -f "$home/.ssh/authorized_keys"
}

start() {
  [ "$(id -u)" = 0 ] || { echo "live_sshd.sh: run as root" >&2; exit 2; }
  stop
  mkdir -p "$dir" /run/sshd
  chmod 0755 "$dir"
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd -m -d "$home" -s /bin/sh "$user"
  fi
  # "*" instead of a locked "!" so a key login works with UsePAM no.
  usermod -p '*' -s /bin/sh "$user"
  mkdir -p "$home/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C fiwi-live-host -f "$dir/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C fiwi-live-client -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$home/.ssh/authorized_keys"
  chmod 0700 "$home/.ssh"
  chmod 0600 "$home/.ssh/authorized_keys"
  chown -R "$user:" "$home/.ssh"
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress $ip
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $user
PrintMotd no
LogLevel ERROR
EOF
  printf '[%s]:%s %s\n' "$ip" "$port" \
    "$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
  cat >"$dir/ssh_config" <<EOF
Host $ip
  Port $port
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
EOF
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  # Wait (at most 10 s) until a login works.
  i=0
  until ssh -F "$dir/ssh_config" -o BatchMode=yes -o ConnectTimeout=2 \
    "$user@$ip" true 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 20 ]; then
      echo "live_sshd.sh: sshd did not accept a login:" >&2
      cat "$dir/sshd.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "export FIWI_REMOTE_IP=$ip FIWI_REMOTE_USER=$user FIWI_SSH_CONFIG=$dir/ssh_config"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: sh tests/live_sshd.sh start|stop" >&2
  exit 2
  ;;
esac
