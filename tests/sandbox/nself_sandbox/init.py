"""PID 1 of the sandbox host: service DNS names, sshd, the layout chosen at the first start
(NFAMILY_SANDBOX_LAYOUT, see layout.py), start the stack via `nself start`, reap orphans, and stop
the stack on SIGTERM (podman stop)."""
import os
import pwd
import signal
import subprocess
import sys
import time

from . import envfiles, layout, paths, runtime

SERVICE_HOSTS = "postgres hasura auth api minio redis nginx scheduler"


def _hosts(project):
    """Service names, and the public domain as the world's DNS would resolve it for this host."""
    domain = envfiles.load_cascade(project, envfiles.detect_environment(project)).get("BASE_DOMAIN")
    public = "".join(" %s%s" % (sub, domain) for sub in ("", "storage.", "api.", "auth.")) if domain else ""
    try:
        with open("/etc/hosts", encoding="utf-8") as handle:
            if SERVICE_HOSTS in handle.read():
                return
        with open("/etc/hosts", "a", encoding="utf-8") as handle:
            handle.write("127.0.0.1 %s%s\n" % (SERVICE_HOSTS, public))
    except OSError:
        pass


def _data_dir_in_upper_layer():
    """On overlayfs a directory of the image's lower layer cannot be renamed (EXDEV), while a docker
    volume's _data directory on a real host can. Copy the data directory into the container's own
    layer once, so that moving it aside (point-in-time recovery) behaves as on a real host."""
    done = os.path.join(paths.VOLUMES_DIR, ".postgres_data.own_layer")
    if os.path.exists(done) or not os.path.isdir(paths.PG_DATA):
        return
    copy = paths.PG_DATA + ".copy"
    subprocess.run(["rm", "-rf", copy], check=True)
    subprocess.run(["cp", "-a", paths.PG_DATA, copy], check=True)
    subprocess.run(["rm", "-rf", paths.PG_DATA], check=True)
    os.rename(copy, paths.PG_DATA)
    open(done, "w").close()


def _lay_out(project, wanted):
    _chosen, rebuild = layout.apply(project, wanted)
    if not rebuild:
        return
    # what the image's provisioning left of a service the new layout does not define
    for record in runtime.all_records():
        runtime.remove(record["name"])
    subprocess.run(["nself", "build"], cwd=project, stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=sys.stderr, check=True)
    layout.done()


def _sshd():
    """sshd as on a real host, with host keys of this container's own (made at its first start)."""
    if not os.path.exists("/usr/sbin/sshd"):
        return
    subprocess.run(["ssh-keygen", "-A"], stdout=subprocess.DEVNULL, check=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    subprocess.run(["/usr/sbin/sshd"], check=True)  # it daemonizes; this process reaps it as PID 1


def _calls_log_for_everyone():
    """The tests' record of nself calls takes the calls of every user, the operator's without become too."""
    os.makedirs(os.path.dirname(paths.CALLS_LOG), exist_ok=True)
    os.close(os.open(paths.CALLS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666))
    os.chmod(paths.CALLS_LOG, 0o666)
    os.chmod(os.path.dirname(paths.CALLS_LOG), 0o755)


def main():
    project = os.environ.get("NSELF_PROJECT_DIR", paths.DEFAULT_PROJECT)
    _hosts(project)
    _calls_log_for_everyone()
    _sshd()
    _data_dir_in_upper_layer()
    _lay_out(project, os.environ.get("NFAMILY_SANDBOX_LAYOUT", ""))
    pw = pwd.getpwnam("postgres")
    os.makedirs(paths.PG_SOCKET_DIR, exist_ok=True)
    os.chown(paths.PG_SOCKET_DIR, pw.pw_uid, pw.pw_gid)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    if os.environ.get("NSELF_SANDBOX_AUTOSTART", "1") == "1":
        subprocess.run(["nself", "start", "--timeout", "90"], cwd=project, stdin=subprocess.DEVNULL,
                       stdout=sys.stdout, stderr=sys.stderr, check=False)
    while not stopping:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.5)
    subprocess.run(["nself", "stop"], cwd=project, stdin=subprocess.DEVNULL, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
