#!/usr/bin/env bash
# `make soak`: a month of AWX schedules in about half an hour on a sandbox host of its own
# (tests/soak/soak.py), with the backups on a small volume so that a night can fill it.
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
name=nfamily-soak
podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
podman run -d --name "$name" --hostname "$name" --tmpfs "/srv/minio:rw,size=2g,mode=0755" \
  --tmpfs "/srv/backups:rw,size=64m,mode=0700" --label nfamily.ops.sandbox=1 "$SANDBOX_IMAGE" >/dev/null
wait_sandbox "$name"
mkdir -p "$REPO_ROOT/tests/output"
rc=0
python "$REPO_ROOT/tests/soak/soak.py" "$name" "$@" || rc=$?
podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
exit "$rc"
