#!/usr/bin/env bash
# Builds the runtime-insights OCI image without a container daemon and without pulling a
# base image (root only; `make image` runs it):
#   1. a minimal Debian root from the distribution's own packages (mmdebstrap, variant
#      "extract": Debian's python3.11 and the libraries it links, no shell, no apt);
#   2. the project's wheel and its dependencies in a venv at /opt/runtime-insights,
#      byte-compiled by the image's own interpreter;
#   3. two layers (Debian root, venv) and the image config written by umoci, then one
#      archive that `ctr images import`, `podman load` and `docker load` all read
#      (scripts/oci_archive.py);
#   4. with PUSH=registry/name:tag, pushed there by skopeo.
# Containerfile builds the same layout from a base image, for podman/docker users.
#
# Usage: scripts/build-image.sh OUTPUT_ARCHIVE   (environment: IMAGE_NAME, IMAGE_SOURCE,
#        PUSH, DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
archive=${1:?usage: build-image.sh OUTPUT_ARCHIVE}
archive=$(realpath -m "$archive")

if [ "$(id -u)" != 0 ]; then
  echo "build-image: needs root (mmdebstrap builds the root filesystem as root)" >&2
  exit 2
fi
"$here/system-deps.sh" "$here/image-packages.txt"
for tool in mmdebstrap umoci python3; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is not installed" >&2; exit 2; }
done

started=$(date +%s)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml")
name=${IMAGE_NAME:-runtime-insights}
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
source_url=${IMAGE_SOURCE:-$(git -C "$repo" remote get-url origin 2>/dev/null || echo "")}
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-$started}" +%Y-%m-%dT%H:%M:%SZ)
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) wheel_arch=x86_64 ;;
  arm64) wheel_arch=aarch64 ;;
  *) echo "build-image: no wheel platform known for $arch" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/ri-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
layout=$work/oci
bundle=$work/bundle
root=$bundle/rootfs
venv=/opt/runtime-insights
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$bundle" >/dev/null

echo "build-image: layer 1, Debian $suite root ($arch)"
# Debian's interpreter and the libraries it needs, extracted without maintainer scripts;
# documentation, locales, the test suite and glibc's iconv modules (Python's codecs do not
# use them) left out.
rmdir "$root"
mmdebstrap --quiet --mode=root --format=directory --variant=extract \
  --include=base-files,python3.11-minimal,libpython3.11-stdlib \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/lib/*-linux-gnu/gconv/*' \
  --dpkgopt='path-exclude=/usr/lib/python3.11/test/*' \
  --dpkgopt='path-exclude=/usr/lib/python3.11/pydoc_data/*' \
  "$suite" "$root" \
  "deb $mirror $suite main" "deb $mirror $suite-updates main" \
  "deb $security $suite-security main"
# apt's configuration and dpkg's state are of no use in an image nothing installs into.
rm -rf "$root"/etc/apt "$root"/var/lib/apt "$root"/var/cache/apt "$root"/var/lib/dpkg \
  "$root"/var/log/*
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
ldconfig -r "$root" 2>/dev/null || true
python=$(cd "$root/usr/bin" && ls | grep -E '^python3\.[0-9]+$' | sort -V | tail -1)
pyver=${python#python}
# The root filesystem is read-only at run time: compile once here, with the image's own
# interpreter, into caches that are never checked against their sources (which never change).
compile() { chroot "$root" "/usr/bin/$python" -m compileall -q --invalidation-mode unchecked-hash "$@" >/dev/null; }
compile "/usr/lib/$python"
umoci repack --refresh-bundle --image "$layout:$version" --history.created "$created" \
  --history.created_by "mmdebstrap --variant=extract $suite python3.11-minimal libpython3.11-stdlib" \
  "$bundle"

echo "build-image: layer 2, runtime-insights $version and its dependencies for Python $pyver"
# The wheel is built from a copy of the sources (what git tracks or would, when it can
# tell): never from stale build/ leftovers of an earlier layout.
mkdir -p "$work/src"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    tar -C "$repo" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$work/src" -xf -
else
  tar -C "$repo" --exclude=./.venv --exclude=./build --exclude=./.git -cf - . | tar -C "$work/src" -xf -
fi
python3 -m pip wheel --quiet --no-deps --disable-pip-version-check --wheel-dir "$work/dist" "$work/src"
site=$root$venv/lib/$python/site-packages
mkdir -p "$site" "$root$venv/bin"
# Wheels for the image's interpreter and glibc (Debian 12: 2.36), whatever the host runs.
platforms=()
for glibc in $(seq 17 36); do platforms+=(--platform "manylinux_2_${glibc}_$wheel_arch"); done
platforms+=(--platform "manylinux2014_$wheel_arch")
python3 -m pip install --quiet --no-compile --no-warn-script-location --no-warn-conflicts \
  --disable-pip-version-check --root-user-action=ignore --target "$site" \
  --only-binary=:all: --implementation cp --python-version "$pyver" \
  --abi "cp${pyver/./}" "${platforms[@]}" "$work"/dist/*.whl
# The console script, pointed at the venv's interpreter (no shell in between).
sed "1s|.*|#!$venv/bin/python|" "$site/bin/runtime-insights" >"$root$venv/bin/runtime-insights"
chmod 0755 "$root$venv/bin/runtime-insights"
rm -rf "$site/bin"
# The asyncio copy of the generated Kubernetes client (half the venv) is never imported:
# the exporter uses the synchronous ApiClient (exporter/kube_config.py).
rm -rf "$site/kubernetes/aio"
ln -s "/usr/bin/$python" "$root$venv/bin/python"
ln -s python "$root$venv/bin/python3"
printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' "$pyver" \
  >"$root$venv/pyvenv.cfg"
compile "$venv/lib"
umoci repack --refresh-bundle --image "$layout:$version" --history.created "$created" \
  --history.created_by "pip install runtime-insights $version into $venv" "$bundle"

echo "build-image: image config"
labels=(
  "org.opencontainers.image.title=runtime-insights"
  "org.opencontainers.image.description=Per-container runtime insights and exact usage metering for Kubernetes nodes"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.base.name=debian:$suite"
)
if [ -n "$source_url" ]; then
  labels+=("org.opencontainers.image.source=$source_url")
else
  echo "build-image: no IMAGE_SOURCE and no git remote: label org.opencontainers.image.source left out" >&2
fi
config=(--config.user 65532:65532 --config.workingdir /
  --config.entrypoint "$venv/bin/runtime-insights"
  --config.env "PATH=$venv/bin:/usr/bin:/bin"
  --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1
  --created "$created" --history.created "$created"
  --history.created_by "image config: user 65532, entrypoint runtime-insights")
for label in "${labels[@]}"; do
  config+=(--config.label "$label" --manifest.annotation "$label")
done
umoci config --image "$layout:$version" "${config[@]}"
umoci gc --layout "$layout"

mkdir -p "$(dirname "$archive")"
python3 "$here/oci_archive.py" "$layout" "$version" "$name:$version" "$archive"
finished=$(date +%s)
size=$(du -b "$archive" | cut -f1)
unpacked=$(du -sb "$root" | cut -f1)
awk -v a="$archive" -v r="$name:$version" -v s="$size" -v u="$unpacked" -v t="$((finished - started))" \
  'BEGIN { printf "build-image: %s (%s): %.1f MiB compressed, %.1f MiB unpacked, built in %d s\n", a, r, s / 1048576, u / 1048576, t }'

if [ -n "${PUSH:-}" ]; then
  command -v skopeo >/dev/null || { echo "build-image: skopeo is not installed" >&2; exit 2; }
  echo "build-image: pushing to $PUSH"
  skopeo copy "oci-archive:$archive" "docker://$PUSH"
fi
