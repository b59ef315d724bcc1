"""`make bench-storage`: the MinIO object module against raw boto3 on the same 1 GiB file, in one
run on a sandbox host of its own (SeaweedFS S3 standing in for MinIO).

Prints, from medians of alternated runs: minio_object put (sha256 of the file, upload with the
sha256 in the metadata, read-back), timed by the module itself and as the whole `ansible` run,
against boto3 upload_file alone, as throughput; and the module process's peak RSS. Usage: python tests/bench/bench_storage.py HOST_CONTAINER
"""
import json
import os
import subprocess
import sys
import tempfile

from bench import HERE, PROJECT, Host, median, timed, write_figures

REPEAT = 3
SIZE = 1024 * 1024 * 1024
RAW = """import sys, time, boto3
from botocore.config import Config
env = {}
for name in ('.env.dev', '.env.prod', '.env.secrets', '.env'):
    try:
        env.update(l.strip().split('=', 1) for l in open(name) if '=' in l and not l.startswith('#'))
    except OSError:
        pass
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:' + env.get('MINIO_PORT', '9000'), region_name='us-east-1',
                  aws_access_key_id=env['MINIO_ROOT_USER'], aws_secret_access_key=env['MINIO_ROOT_PASSWORD'],
                  config=Config(s3={'addressing_style': 'path'}))
started = time.monotonic()
s3.upload_file(sys.argv[1], 'nf-backups', sys.argv[2])
print(time.monotonic() - started)
"""


def main():
    host = Host(sys.argv[1], tempfile.mkdtemp(prefix="nfamily-bench-storage-"))
    host.sh("mkdir -p /tmp/bench && cat > /tmp/bench/raw_put.py <<'EOF'\n%sEOF" % RAW)
    subprocess.run(["podman", "cp", os.path.join(HERE, "rss_sampler.py"), "%s:/tmp/bench/rss_sampler.py" % host.name], check=True)
    host.sh("head -c %d /dev/urandom > /tmp/bench/object.bin" % SIZE)
    raw, module, inside, peaks = [], [], [], []
    for index in range(REPEAT):
        raw.append(float(host.sh("python3 /tmp/bench/raw_put.py /tmp/bench/object.bin bench/raw-%d.bin" % index)))
        host.sh("rm -f /tmp/bench/stop")
        sampler = subprocess.Popen(["podman", "exec", host.name, "python3", "/tmp/bench/rss_sampler.py",
                                    "AnsiballZ_minio_object", "/tmp/bench/stop"], stdout=subprocess.PIPE, text=True)
        try:
            results = []
            module.append(timed(lambda: results.append(host.module(
                "minio_object", named_process=True, project_dir=PROJECT, bucket="nf-backups", key="bench/module-%d.bin" % index,
                src="/tmp/bench/object.bin", mode="put"))))
            inside.append(results[0]["seconds"])
        finally:
            host.sh("touch /tmp/bench/stop")
        peaks.append(json.loads(sampler.communicate()[0])["peak_kib"] / 1024.0)
        print("bench-storage: run %d: boto3 upload_file %.2f s, minio_object put %.2f s in the module, %.2f s as an "
              "ansible run, peak RSS %.1f MB" % (index + 1, raw[-1], inside[-1], module[-1], peaks[-1]), flush=True)
    mib = SIZE / 1048576.0
    ratio = median(raw) / median(inside)
    print("\nnfamily.ops storage benchmark on %s (1 GiB object, %d CPUs, medians of %d)" % (host.name, os.cpu_count(), REPEAT))
    print("| measure | value | target | met |\n|---|---|---|---|")
    print("| boto3 upload_file throughput (MiB/s) | %.1f | - | - |" % (mib / median(raw)))
    print("| minio_object put throughput, in the module: sha256 + upload + read-back (MiB/s) | %.1f | - | - |"
          % (mib / median(inside)))
    print("| minio_object put throughput, whole ansible run (MiB/s) | %.1f | - | - |" % (mib / median(module)))
    print("| minio_object put (in the module) / boto3 upload_file, throughput | %.2f | >= 0.9 | %s |"
          % (ratio, "yes" if ratio >= 0.9 else "NO"))
    print("| minio_object put (whole ansible run) / boto3 upload_file, throughput | %.2f | (no target) | - |"
          % (median(raw) / median(module)))
    print("| minio_object peak RSS (MB) | %.1f | < 150 | %s |" % (max(peaks), "yes" if max(peaks) < 150 else "NO"))
    write_figures("bench_storage.json", {"raw_s": raw, "module_inside_s": inside, "module_run_s": module,
                                         "peak_rss_mb": peaks, "ratio": round(ratio, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
