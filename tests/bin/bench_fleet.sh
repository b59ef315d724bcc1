#!/usr/bin/env bash
# `make bench-fleet`: the runbooks across several sandbox hosts in one inventory (tests/bench/bench_fleet.py).
# FLEET_SIZES (default 1,2,4) are the host counts compared; max(FLEET_SIZES) hosts, at least 3, are started
# (about 0.5 GB of memory each) and removed afterwards. Takes about 10 minutes with the default sizes.
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
sizes=${FLEET_SIZES:-1,2,4}
count=$(tr ',' '\n' <<<"$sizes" | sort -n | tail -1)
if ((count < 3)); then count=3; fi
hosts=()
for i in $(seq 1 "$count"); do hosts+=("nfamily-fleet-$i"); done
cleanup() { podman rm -f -t 5 "${hosts[@]}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
for name in "${hosts[@]}"; do start_sandbox "$name"; done
mkdir -p "$REPO_ROOT/tests/output"
python "$REPO_ROOT/tests/bench/bench_fleet.py" --sizes "$sizes" "${hosts[@]}"
