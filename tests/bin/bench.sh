#!/usr/bin/env bash
# `make bench`: the database runbook benchmark (tests/bench/bench.py) on a fresh sandbox host of
# its own, so the figures never depend on what an earlier run left behind. Takes about 30 minutes.
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
name=nfamily-bench
podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
# SeaweedFS frees overwritten objects only when it vacuums: leave room for every upload of the run.
SANDBOX_MINIO_SIZE=8g start_sandbox "$name"
mkdir -p "$REPO_ROOT/tests/output"
rc=0
python "$REPO_ROOT/tests/bench/bench.py" "$name" "$@" || rc=$?
podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
exit "$rc"
