# nfamily.ops developer entry points. Both main targets install what they need, idempotently.
.PHONY: sandbox test kill-matrix awx-runs bench bench-storage bench-fleet soak setup lint sanity units integration molecule clean-sandbox

sandbox:        ## set up, start the sandbox nFamily host, print its service report
	tests/bin/sandbox.sh

test:           ## the whole suite: lint, sanity, units, build, integration, molecule
	tests/bin/test.sh

kill-matrix:    ## every kill point of the kill tests (make test kills each runbook at one point of its riskiest step)
	NFAMILY_OPS_KILL_MATRIX=all MOLECULE_SCENARIOS="framework database deploy auth" PYTEST_ADDOPTS="-k 'at_each_step or killed_in_a_step or after_a_checkpoint or between_effect_and_checkpoint'" tests/bin/test.sh molecule

awx-runs:       ## every runbook launched as AWX launches it, compared with the same run from ansible-playbook
	NFAMILY_OPS_AWX_RUNS=all MOLECULE_SCENARIOS="awx deploy" PYTEST_ADDOPTS="-k awx" tests/bin/test.sh molecule

bench:          ## database benchmark: ratios against pg_dump, psql and boto3 on a >= 1 GB database
	tests/bin/bench.sh

bench-storage:  ## MinIO object benchmark: minio_object against boto3 upload_file on a 1 GiB file
	tests/bin/bench_storage.sh

bench-fleet:    ## the runbooks across 1, 2 and 4 sandbox hosts with forks (FLEET_SIZES=1,2,4,8 for more); serial destructive runs
	tests/bin/bench_fleet.sh

soak:           ## a month of AWX schedules on one sandbox host in about half an hour (tests/soak/soak.py)
	tests/bin/soak.sh

setup:
	tests/bin/setup.sh

lint sanity units build integration molecule:
	tests/bin/test.sh $@

clean-sandbox:
	CONTAINERS_CONF=tests/sandbox/containers.conf podman rm -f -t 5 nfamily-sandbox
