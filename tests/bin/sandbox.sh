#!/usr/bin/env bash
# The README's first command: set up this machine, start the sandbox nFamily host and run a
# read-only runbook against it through the sandbox inventory.
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/tests/bin/setup.sh"
activate_venv
link_collection
log "sandbox: starting $SANDBOX_NAME"
start_sandbox "$SANDBOX_NAME" "${SANDBOX_SSH_PORT:-2222}"
sandbox_ssh "$SANDBOX_NAME" "${SANDBOX_SSH_PORT:-2222}"
log "runbook: service report"
cd "$REPO_ROOT" || exit 1
ansible-playbook -i inventories/sandbox playbooks/service_report.yml "$@"
