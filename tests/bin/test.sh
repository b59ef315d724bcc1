#!/usr/bin/env bash
# The README's test command: every quality gate, in order, each timed. Runs all stages and
# exits non-zero if any failed. Usage: tests/bin/test.sh [stage...]
# Stages: lint sanity units build integration molecule
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
cd "$REPO_ROOT" || exit 1
mkdir -p tests/output

stages=("$@")
((${#stages[@]})) || stages=(lint sanity units build integration molecule)
failed=()
summary=()

# pytest exit 5 ("no tests collected") must fail the suite, never pass silently.
run_pytest() {
  local rc=0
  python -m pytest "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; return 1; fi
  return "$rc"
}

stage_lint() {
  yamllint --strict . &&
  ansible-lint --offline --profile production &&
  antsibull-changelog lint
}

# ansible-test runs from its own venv (its pinned sanity requirements clash with ansible-lint's)
# and bootstraps pip in its per-test venvs with tests/bin/get_pip_offline.py instead of a download.
sanity_venv() {
  local core; core=$(grep '^ansible-core==' "$REPO_ROOT/requirements-dev.txt")
  local dir; dir="$CACHE_DIR/sanity-$(echo "$core $(python -V)" | sha256sum | cut -c1-12)"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    "$(python_bin)" -m venv "$dir"
    "$dir/bin/pip" install -q "$core" 2>&1 | grep -v "is ignored" || true
    local reqs; reqs=$("$dir/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
    local req_args=()
    for req in "$reqs"/sanity.*.txt; do req_args+=(-r "$req"); done
    "$dir/bin/pip" install -q "${req_args[@]}" 2>&1 | grep -v "is ignored" || true
    touch "$dir/.complete"
  fi
  local pip_version; pip_version=$(grep -o "pip='[0-9.]*'" \
    "$dir"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | grep -o "[0-9.]*[0-9]" | head -1)
  mkdir -p ~/.ansible/test/cache
  cp "$REPO_ROOT/tests/bin/get_pip_offline.py" ~/.ansible/test/cache/get_pip_"${pip_version//./_}".py
  echo "$dir"
}

stage_sanity() {
  local tree venv; tree=$(collection_tree); venv=$(sanity_venv)
  (cd "$tree" && PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --local --python 3.11 --color no)
}

stage_units() {
  local tree; tree=$(collection_tree)
  (cd "$tree" && PYTHONPATH="$(dirname "$(dirname "$(dirname "$tree")")")" run_pytest -q -p no:cacheprovider tests/unit)
}

# The collection's artifact, and the execution environment's build context (made offline: the image
# build itself needs a registry).
stage_build() {
  local out; out=$(mktemp -d)
  ansible-galaxy collection build --force --output-path "$out" . &&
  ls "$out"/nfamily-ops-*.tar.gz &&
  ansible-builder create -f meta/execution-environment.yml -c "$out/ee" >/dev/null &&
  grep -q "ansible-galaxy collection install" "$out/ee/Containerfile" &&
  ls "$out/ee/_build/requirements.yml" &&
  rm -rf "$out"
}

stage_integration() {
  run_pytest -q -p no:cacheprovider tests/integration
}

# Molecule runs against the built collection, installed the way users install it (its own
# collection install step cannot replace the .collections symlink of the checkout). Scenarios run
# MOLECULE_JOBS at a time (default 2), longest first (by their measured times, README): one scenario
# keeps about one core busy (Ansible's controller, podman exec, the services), so two lanes use a
# 2-core machine and a third would only queue. Each scenario's full log is kept in
# tests/output/molecule-<scenario>.log and printed when it failed.
MOLECULE_ORDER=(database incident framework deploy auth storage committed ssh default bare)

# The failed tests of a JUnit report, with the first line of each failure: the end of the output
# (all a CI page may show) names the test, not only the scenario.
failed_tests() {
  [ -f "$1" ] || { echo "      (no test report: the scenario failed before its tests)"; return; }
  python - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    for failure in case.findall("failure") + case.findall("error"):
        first = (failure.get("message") or "").strip().splitlines()[:1]
        print("      %s %s::%s %s" % (failure.tag, case.get("classname"), case.get("name"), first[0][:300] if first else ""))
EOF
}

stage_molecule() {
  local dest="$CACHE_DIR/molecule-collections" out results scenario rc=0
  out=$(mktemp -d); results=$(mktemp)
  rm -rf "$dest" && mkdir -p "$dest"
  ansible-galaxy collection build --force --output-path "$out" . >/dev/null &&
  ansible-galaxy collection install --force --no-deps -p "$dest" "$out"/nfamily-ops-*.tar.gz >/dev/null &&
  rm -rf "$out" || return 1
  local scenarios=() found
  for scenario in "${MOLECULE_ORDER[@]}"; do [ -f "molecule/$scenario/molecule.yml" ] && scenarios+=("$scenario"); done
  for found in molecule/*/molecule.yml; do
    found=$(basename "$(dirname "$found")")
    [[ " ${scenarios[*]} " == *" $found "* ]] || scenarios+=("$found")
  done
  # MOLECULE_SCENARIOS (space-separated) runs only those, as `make kill-matrix` does
  if [ -n "${MOLECULE_SCENARIOS:-}" ]; then
    for found in $MOLECULE_SCENARIOS; do
      [ -f "molecule/$found/molecule.yml" ] || { echo "no molecule scenario $found" >&2; return 1; }
    done
    read -r -a scenarios <<<"$MOLECULE_SCENARIOS"
  fi
  for scenario in "${scenarios[@]}"; do
    while (( $(jobs -rp | wc -l) >= ${MOLECULE_JOBS:-2} )); do wait -n || true; done
    (
      start=$SECONDS; code=0
      rm -f "tests/output/molecule-$scenario.xml"
      PYTEST_ADDOPTS="${PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }--junitxml='$REPO_ROOT/tests/output/molecule-$scenario.xml'" \
        ANSIBLE_COLLECTIONS_PATH="$dest" molecule test -s "$scenario" >"tests/output/molecule-$scenario.log" 2>&1 || code=$?
      echo "$scenario $code $((SECONDS - start))" >>"$results"
    ) &
  done
  wait
  while read -r scenario code seconds; do
    if [ "$code" -ne 0 ]; then
      rc=1
      echo "---- molecule scenario $scenario FAILED (rc $code), its log:"
      cat "tests/output/molecule-$scenario.log"
    fi
    printf '  molecule %-10s %s %4ds  %s\n' "$scenario" "$([ "$code" -eq 0 ] && echo passed || echo FAILED)" "$seconds" \
      "$(grep -a -E '[0-9]+ (passed|failed)' "tests/output/molecule-$scenario.log" | tail -1 | tr -d '=')"
    [ "$code" -eq 0 ] || failed_tests "tests/output/molecule-$scenario.xml"
  done <"$results"
  [ "$(wc -l <"$results")" -eq "${#scenarios[@]}" ] || { echo "a molecule scenario left no result" >&2; rc=1; }
  rm -f "$results"
  return "$rc"
}

for stage in "${stages[@]}"; do
  log "stage: $stage"
  start=$SECONDS
  if "stage_$stage"; then result=passed; else result=FAILED; failed+=("$stage"); fi
  summary+=("$(printf '%-12s %-7s %4ds' "$stage" "$result" $((SECONDS - start)))")
done

log "summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "failed stages: ${failed[*]}" >&2
  exit 1
fi
echo "all stages passed"
