# Shared settings of the project's scripts. Source it; do not run it.
# shellcheck shell=bash
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REPO_ROOT
CACHE_DIR=${NFAMILY_OPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nfamily-ops}
export CACHE_DIR
export CONTAINERS_CONF="$REPO_ROOT/tests/sandbox/containers.conf"
export SANDBOX_NAME=${SANDBOX_NAME:-nfamily-sandbox}
export SANDBOX_IMAGE=localhost/nfamily-sandbox:latest
export SANDBOX_BARE_IMAGE=localhost/nfamily-sandbox-bare:latest
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python_bin() { command -v python3.11 || command -v python3; }

venv_dir() {
  local py; py=$(python_bin)
  local key; key=$( { cat "$REPO_ROOT/requirements-dev.txt"; "$py" -V; } | sha256sum | cut -c1-12)
  echo "$CACHE_DIR/venv-$key"
}

activate_venv() {
  local dir; dir=$(venv_dir)
  # shellcheck disable=SC1091
  source "$dir/bin/activate"
}

# The collection as ansible-test and ansible-galaxy need it: .../ansible_collections/nfamily/ops.
collection_tree() {
  local root="$CACHE_DIR/collections"
  local dest="$root/ansible_collections/nfamily/ops"
  rm -rf "$dest" && mkdir -p "$dest"
  (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$dest" -xf -
  echo "$dest"
}

# Make the checkout importable as nfamily.ops for ansible.cfg's collections_path.
link_collection() {
  mkdir -p "$REPO_ROOT/.collections/ansible_collections/nfamily"
  ln -sfn ../../.. "$REPO_ROOT/.collections/ansible_collections/nfamily/ops"
}

# Start (or reuse) a sandbox host container from the current image, its SSH port published on the
# loopback address at SSH_PORT when given. Usage: start_sandbox NAME [SSH_PORT]
start_sandbox() {
  local name=$1 ssh_port=${2:-} image_id running_id publish=()
  [ -n "$ssh_port" ] && publish=(-p "127.0.0.1:$ssh_port:22")
  image_id=$(podman image inspect --format '{{.Id}}' "$SANDBOX_IMAGE")
  if podman container exists "$name"; then
    running_id=$(podman container inspect --format '{{.Image}}' "$name")
    if [ "$running_id" != "$image_id" ] || [ "$(podman container inspect --format '{{.State.Running}}' "$name")" != "true" ] ||
       { [ -n "$ssh_port" ] && [ "$(podman port "$name" 22/tcp 2>/dev/null)" != "127.0.0.1:$ssh_port" ]; }; then
      podman rm -f -t 5 "$name" >/dev/null
    fi
  fi
  if ! podman container exists "$name"; then
    podman run -d --name "$name" --hostname "$name" --tmpfs "/srv/minio:rw,size=${SANDBOX_MINIO_SIZE:-2g},mode=0755" \
      "${publish[@]}" --label nfamily.ops.sandbox=1 "$SANDBOX_IMAGE" >/dev/null
  fi
  wait_sandbox "$name"
}

# Let inventories/sandbox_ssh reach the sandbox as production is reached: a key of this machine in
# the operator's authorized_keys, and the container's host key pinned in a known_hosts of its own,
# both under $CACHE_DIR/sandbox-ssh. Usage: sandbox_ssh NAME SSH_PORT
sandbox_ssh() {
  local name=$1 port=$2 dir="$CACHE_DIR/sandbox-ssh"
  mkdir -p "$dir" && chmod 0700 "$dir"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "nfamily-ops sandbox" -f "$dir/id_ed25519"
  podman exec -i "$name" sh -c 'install -d -m 0700 -o ops -g ops /home/ops/.ssh &&
    cat > /home/ops/.ssh/authorized_keys && chown ops:ops /home/ops/.ssh/authorized_keys &&
    chmod 0600 /home/ops/.ssh/authorized_keys' <"$dir/id_ed25519.pub"
  local host_key
  host_key=$(podman exec "$name" cat /etc/ssh/ssh_host_ed25519_key.pub) || { echo "sandbox $name has no SSH host key" >&2; return 1; }
  echo "[127.0.0.1]:$port $(echo "$host_key" | cut -d' ' -f1,2)" >"$dir/known_hosts"
}

# Wait until every service the sandbox defines is healthy. Usage: wait_sandbox NAME [SECONDS]
wait_sandbox() {
  local name=$1 deadline=$((SECONDS + ${2:-180}))
  until podman exec -w /opt/nself-family/backend "$name" nself health --json >/dev/null 2>&1 &&
        ! podman exec -w /opt/nself-family/backend "$name" nself status --json 2>/dev/null | grep -q '"status": "\(starting\|unhealthy\|stopped\|exited\)"'; do
    if ((SECONDS > deadline)); then
      podman exec -w /opt/nself-family/backend "$name" nself status --json >&2 || true
      echo "sandbox $name did not become healthy" >&2
      return 1
    fi
    sleep 2
  done
}
