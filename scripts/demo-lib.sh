# Sourced by scripts/demo.sh and scripts/demo-noqemu.sh: the parts both
# demos share (a scratch directory torn down on exit, and "your computer":
# a key that lives only in an ssh-agent, and a local sshd serving a bare
# git repository that trusts it). The caller has set bin and cd'd to the
# repository root; it sets work (mktemp) before sourcing.
pids=()
# demo_stop kills what the demo started and removes its scratch directory;
# each demo's EXIT trap calls it last.
demo_stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "${SSH_AGENT_PID:-}" ]] && kill "$SSH_AGENT_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; exit 1; }
sshd=$(command -v sshd || echo /usr/sbin/sshd)
free_port() {  # a loopback port nothing answers on
  local p
  for _ in $(seq 1 50); do
    p=$(shuf -i 20000-60000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port" >&2; exit 1
}
port=$(free_port)
user=$(id -un)

# demo_laptop_and_server makes "your computer" ($work/laptop: a key only
# in an ssh-agent, whose socket it exports) and a git server that trusts it
# ($work/server: sshd on 127.0.0.1:$port serving repo.git). It sets
# hostkey to the server's host key, as a known_hosts line wants it.
demo_laptop_and_server() {
  say "your computer: a key in an ssh-agent, and a git server that trusts it"
  mkdir -p "$work/laptop/.ssh" "$work/server" && chmod 700 "$work/laptop" "$work/laptop/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C demo-laptop -f "$work/laptop/id_ed25519"
  eval "$(ssh-agent -a "$work/laptop/agent.sock")" >/dev/null
  ssh-add -q "$work/laptop/id_ed25519"
  rm "$work/laptop/id_ed25519"   # from now on the key lives only in the agent
  ssh-add -l
  ssh-keygen -q -t ed25519 -N '' -f "$work/server/host_key"
  cp "$work/laptop/id_ed25519.pub" "$work/server/authorized_keys"
  mkdir -p /run/sshd 2>/dev/null || true
  cat > "$work/server/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/server/host_key
PidFile $work/server/sshd.pid
AuthorizedKeysFile $work/server/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
CONF
  "$sshd" -D -f "$work/server/sshd_config" -E "$work/server/sshd.log" & pids+=($!)
  git init -q --bare -b main "$work/server/repo.git"
  local seed=$work/server/seed
  git init -q -b main "$seed"
  echo "hello from a repository only your key can read" > "$seed/README"
  git -C "$seed" add README
  git -C "$seed" -c user.name=Demo -c user.email=demo@example.com commit -q -m "first commit"
  git -C "$seed" push -q "$work/server/repo.git" main
  hostkey=$(cut -d' ' -f1,2 "$work/server/host_key.pub")
  # Your computer has been to that server before: its known_hosts names it,
  # which is how the audit log can say where the shed signed in.
  echo "[127.0.0.1]:$port $hostkey" > "$work/laptop/.ssh/known_hosts"
}
