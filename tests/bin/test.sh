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
# tests/output/molecule-<scenario>.log and printed when it failed. A whole run (`make test`) runs lint
# first, then puts the other stages in the same lanes: sanity, units and build, one after the other,
# keep one core busy, and so do the integration tests; each takes a lane between the scenarios, by its
# time.
MOLECULE_ORDER=(database incident framework deploy auth storage committed integration checks ssh default bare)
# Scenarios with a make target of their own, run only when MOLECULE_SCENARIOS names them (README).
MOLECULE_OWN_TARGET=(awx)
MOLECULE_COLLECTIONS="$CACHE_DIR/molecule-collections"

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

molecule_install() {
  local out; out=$(mktemp -d)
  rm -rf "$MOLECULE_COLLECTIONS" && mkdir -p "$MOLECULE_COLLECTIONS"
  ansible-galaxy collection build --force --output-path "$out" . >/dev/null &&
  ansible-galaxy collection install --force --no-deps -p "$MOLECULE_COLLECTIONS" "$out"/nfamily-ops-*.tar.gz >/dev/null &&
  rm -rf "$out"
}

# The scenarios in MOLECULE_ORDER, then any other; MOLECULE_SCENARIOS (space-separated) runs only
# those, as `make kill-matrix` does.
molecule_scenarios() {
  local scenarios=() found
  if [ -n "${MOLECULE_SCENARIOS:-}" ]; then
    for found in $MOLECULE_SCENARIOS; do
      [ -f "molecule/$found/molecule.yml" ] || { echo "no molecule scenario $found" >&2; return 1; }
    done
    echo "$MOLECULE_SCENARIOS"
    return
  fi
  for found in "${MOLECULE_ORDER[@]}"; do [ -f "molecule/$found/molecule.yml" ] && scenarios+=("$found"); done
  for found in molecule/*/molecule.yml; do
    found=$(basename "$(dirname "$found")")
    [[ " ${scenarios[*]} ${MOLECULE_OWN_TARGET[*]} " == *" $found "* ]] || scenarios+=("$found")
  done
  echo "${scenarios[*]}"
}

# A job of the lanes: a scenario, or (in a whole run) `lint`, `checks` (sanity, units and build) or
# `integration`. Its output goes to tests/output/molecule-<scenario>.log or stage-<stage>.log; a
# line "<job> <rc> <seconds>" per scenario or stage goes to $1.
run_job() {
  local results=$1 job=$2 start=$SECONDS code=0 stage
  case "$job" in
    checks)
      for stage in sanity units build; do
        start=$SECONDS; code=0
        "stage_$stage" >"tests/output/stage-$stage.log" 2>&1 || code=$?
        echo "$stage $code $((SECONDS - start))" >>"$results"
      done
      return ;;
    lint | integration)
      "stage_$job" >"tests/output/stage-$job.log" 2>&1 || code=$? ;;
    *)
      rm -f "tests/output/molecule-$job.xml"
      PYTEST_ADDOPTS="${PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }--junitxml='$REPO_ROOT/tests/output/molecule-$job.xml'" \
        ANSIBLE_COLLECTIONS_PATH="$MOLECULE_COLLECTIONS" molecule test -s "$job" >"tests/output/molecule-$job.log" 2>&1 || code=$?
  esac
  echo "$job $code $((SECONDS - start))" >>"$results"
}

# Run the jobs MOLECULE_JOBS at a time; "<job> <rc> <seconds>" lines go to the results file $1.
run_lanes() {
  local results=$1 job; shift
  for job in "$@"; do
    while (( $(jobs -rp | wc -l) >= ${MOLECULE_JOBS:-2} )); do wait -n || true; done
    run_job "$results" "$job" &
  done
  wait
}

# Report the scenarios' results: one line each, and the log and failed tests of a failed one.
report_scenarios() {
  local results=$1 rc=0 scenario code seconds
  while read -r scenario code seconds; do
    [ -f "molecule/$scenario/molecule.yml" ] || continue
    if [ "$code" -ne 0 ]; then
      rc=1
      echo "---- molecule scenario $scenario FAILED (rc $code), its log:"
      cat "tests/output/molecule-$scenario.log"
    fi
    printf '  molecule %-10s %s %4ds  %s\n' "$scenario" "$([ "$code" -eq 0 ] && echo passed || echo FAILED)" "$seconds" \
      "$(grep -a -E '[0-9]+ (passed|failed)' "tests/output/molecule-$scenario.log" | tail -1 | tr -d '=')"
    [ "$code" -eq 0 ] || failed_tests "tests/output/molecule-$scenario.xml"
  done <"$results"
  return "$rc"
}

stage_molecule() {
  local results scenarios rc=0
  read -r -a scenarios <<<"$(molecule_scenarios)" && ((${#scenarios[@]})) || return 1
  molecule_install || return 1
  results=$(mktemp)
  run_lanes "$results" "${scenarios[@]}"
  report_scenarios "$results" || rc=1
  [ "$(wc -l <"$results")" -eq "${#scenarios[@]}" ] || { echo "a molecule scenario left no result" >&2; rc=1; }
  rm -f "$results"
  return "$rc"
}

# `make test`: every stage in the lanes (above). A failed stage's log is printed, then the summary.
whole_run() {
  local results scenarios jobs=() job stage code seconds molecule_rc=0 start=$SECONDS
  read -r -a scenarios <<<"$(molecule_scenarios)" && ((${#scenarios[@]})) || return 1
  for job in "${MOLECULE_ORDER[@]}"; do
    [[ " checks integration ${scenarios[*]} " == *" $job "* ]] && jobs+=("$job")
  done
  for job in "${scenarios[@]}"; do [[ " ${jobs[*]} " == *" $job "* ]] || jobs+=("$job"); done
  results=$(mktemp)
  # lint first and alone: ansible-lint and Molecule both prepare ansible-compat's cache of this project
  log "stage: lint"
  run_job "$results" lint
  log "stages sanity, units, build, integration and ${#scenarios[@]} molecule scenarios, ${MOLECULE_JOBS:-2} at a time"
  molecule_install || { failed+=(molecule); summary+=("molecule     FAILED  (the collection did not build or install)"); jobs=(checks integration); }
  run_lanes "$results" "${jobs[@]}"
  for stage in lint sanity units build integration; do
    read -r _ code seconds < <(grep "^$stage " "$results") || { code=1; seconds=0; }
    if [ "$code" -ne 0 ]; then
      failed+=("$stage")
      echo "---- stage $stage FAILED (rc $code), its log:"
      cat "tests/output/stage-$stage.log"
    fi
    summary+=("$(printf '%-12s %-7s %4ds  %s' "$stage" "$([ "$code" -eq 0 ] && echo passed || echo FAILED)" "$seconds" \
      "$(grep -a -E '[0-9]+ (passed|failed)' "tests/output/stage-$stage.log" | tail -1 | tr -d '=')")")
  done
  if [[ " ${failed[*]} " != *" molecule "* ]]; then
    report_scenarios "$results" || molecule_rc=1
    [ "$(grep -cvE '^(lint|sanity|units|build|integration) ' "$results")" -eq "${#scenarios[@]}" ] ||
      { echo "a molecule scenario left no result" >&2; molecule_rc=1; }
    ((molecule_rc == 0)) || failed+=(molecule)
    summary+=("$(printf '%-12s %-7s %4ds  (scenario times summed; they ran in the lanes)' molecule "$( ((molecule_rc == 0)) && echo passed || echo FAILED)" \
      "$(awk '!/^(lint|sanity|units|build|integration) / {s += $3} END {print s + 0}' "$results")")")
  fi
  summary+=("$(printf '%-12s %-7s %4ds' "wall time" "" $((SECONDS - start)))")
  rm -f "$results"
}

if [ "${stages[*]}" = "lint sanity units build integration molecule" ]; then
  whole_run
else
  for stage in "${stages[@]}"; do
    log "stage: $stage"
    start=$SECONDS
    if "stage_$stage"; then result=passed; else result=FAILED; failed+=("$stage"); fi
    summary+=("$(printf '%-12s %-7s %4ds' "$stage" "$result" $((SECONDS - start)))")
  done
fi

log "summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "failed stages: ${failed[*]}" >&2
  exit 1
fi
echo "all stages passed"
