#!/usr/bin/env bash
# The README's test command: every quality gate, in order, each timed. Runs all stages and
# exits non-zero if any failed. Usage: tests/bin/test.sh [stage...]
# Stages: lint sanity units build integration molecule
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
cd "$REPO_ROOT"
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

stage_sanity() {
  local tree; tree=$(collection_tree)
  (cd "$tree" && ansible-test sanity --venv --python 3.11 --color no)
}

stage_units() {
  local tree; tree=$(collection_tree)
  (cd "$tree" && PYTHONPATH="$(dirname "$(dirname "$(dirname "$tree")")")" run_pytest -q -p no:cacheprovider tests/unit)
}

stage_build() {
  local out; out=$(mktemp -d)
  ansible-galaxy collection build --force --output-path "$out" . &&
  ls "$out"/nfamily-ops-*.tar.gz &&
  rm -rf "$out"
}

stage_integration() {
  run_pytest -q -p no:cacheprovider tests/integration
}

stage_molecule() {
  molecule test --all
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
