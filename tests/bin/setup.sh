#!/usr/bin/env bash
# Idempotent set-up of this machine for the project: apt packages, the pinned venv,
# podman configuration and the sandbox images (rebuilt only when their recipe changes).
# Usage: tests/bin/setup.sh [--no-images]
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_packages=(podman runc debootstrap git tar shellcheck openssh-client)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=$(venv_dir)
if [ ! -x "$venv/bin/ansible-playbook" ] || [ ! -f "$venv/.complete" ]; then
  log "venv: creating $venv"
  rm -rf "$venv"
  mkdir -p "$CACHE_DIR"
  "$(python_bin)" -m venv "$venv"
  "$venv/bin/pip" install -q -r "$REPO_ROOT/requirements-dev.txt" 2>&1 | grep -v "is ignored: it is neither" || true
  "$venv/bin/python" -c "import ansible, molecule, testinfra, ansible_runner, psycopg2, boto3" 
  touch "$venv/.complete"
fi

podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null

if [ "${1:-}" != "--no-images" ]; then
  "$REPO_ROOT/tests/bin/images.sh"
fi
log "setup complete (venv: $venv)"
