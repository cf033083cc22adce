#!/usr/bin/env bash
# Builds the real Kubernetes, Crossplane and kube-bind binaries the tests run, from Go modules, into a cache
# outside the repository keyed by version (and by the launcher's own source), then links them
# into BIN_DIR. A warm cache makes this a no-op.
set -euo pipefail

: "${K8S_VERSION:?}" "${CROSSPLANE_VERSION:?}" "${KUBE_BIND_VERSION:?}" "${TOOLS_CACHE:?}" "${BIN_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)

say() { printf '[tools] %s\n' "$*"; }

# go build -v names each package it compiles; turn that into a heartbeat.
progress() {
  awk -v what="$1" '/ / { next } { n++; if (n % 150 == 0) { printf "[tools]   %s: %d packages compiled\n", what, n; fflush() } }
    END { if (n) printf "[tools]   %s: %d packages compiled\n", what, n }'
}

build_kube() {
  local src_hash dir
  src_hash=$(cat "$here"/go.mod "$here"/go.sum "$here"/*.go | sha256sum | cut -c1-12)
  dir="$TOOLS_CACHE/bin/kubernetes-$K8S_VERSION-$src_hash"
  if [[ ! -x "$dir/kube-local" ]]; then
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    say "building kube-apiserver, kube-controller-manager and kubectl $K8S_VERSION from Go modules"
    say "  (a cold build takes 10-25 minutes on 2 cores; later runs reuse $dir)"
    local start=$SECONDS
    mkdir -p "$dir.tmp"
    if ! (cd "$here" && go build -v -trimpath -ldflags "$ldflags" -o "$dir.tmp/kube-local" . 2>&1) \
        | tee "$dir.tmp/build.log" | progress kube-local; then
      tail -40 "$dir.tmp/build.log"; say "kube-local build failed (log: $dir.tmp/build.log)"; exit 1
    fi
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "  kube-local built in $((SECONDS - start))s"
  fi
  ln -sfn "$dir/kube-local" "$BIN_DIR/kube-local"
  ln -sfn "$dir/kube-local" "$BIN_DIR/kubectl"
}

# The Crossplane CLI and Crossplane's CRDs come from the Go module proxy, at the version pinned in
# test/crossplane/go.mod. Where the proxy refuses that version, say so plainly and go on: the tests
# that need `crossplane` report themselves skipped with that reason. CROSSPLANE_BIN=/path/to/crossplane
# uses a binary you have instead.
build_crossplane() {
  local module="$here/../crossplane" pinned
  pinned=$(awk '$1 == "github.com/crossplane/crossplane/v2" { print $2 }' "$module/go.mod")
  if [[ "$pinned" != "$CROSSPLANE_VERSION" ]]; then
    say "CROSSPLANE_VERSION=$CROSSPLANE_VERSION but test/crossplane/go.mod pins $pinned: change both together"
    exit 1
  fi
  local src_hash dir unavailable="$BIN_DIR/crossplane.unavailable"
  src_hash=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-12)
  dir="$TOOLS_CACHE/bin/crossplane-$CROSSPLANE_VERSION-$src_hash"
  rm -f "$BIN_DIR/crossplane" "$BIN_DIR/crossplane-core" "$BIN_DIR/crane" "$BIN_DIR/crossplane-crds"
  if [[ -n "${CROSSPLANE_BIN:-}" ]]; then
    [[ -x "$CROSSPLANE_BIN" ]] || { say "CROSSPLANE_BIN=$CROSSPLANE_BIN is not an executable"; exit 1; }
    ln -sfn "$CROSSPLANE_BIN" "$BIN_DIR/crossplane"
    rm -f "$unavailable"
    return
  fi
  if [[ ! -x "$dir/crossplane" ]] && grep -qs "crossplane/v2@$CROSSPLANE_VERSION " "$unavailable" \
      && [[ -n "$(find "$unavailable" -mmin -1440 2>/dev/null)" ]]; then
    say "Crossplane $CROSSPLANE_VERSION unavailable (recorded in $unavailable; retried after a day): its tests are skipped"
    return
  fi
  if [[ ! -x "$dir/crossplane" ]]; then
    say "building Crossplane $CROSSPLANE_VERSION (the CLI, the core) and crane from Go modules"
    say "  (a cold build takes 3-15 minutes; later runs reuse $dir)"
    local start=$SECONDS
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    # crank is the CLI (crossplane render, xpkg); cmd/crossplane is the core; crane serves a
    # loopback OCI registry for packages
    if ! (cd "$module" && go build -v -trimpath \
        -ldflags "-s -w -X github.com/crossplane/crossplane/v2/internal/version.version=$CROSSPLANE_VERSION" \
        -o "$dir.tmp/" github.com/crossplane/crossplane/v2/cmd/crank github.com/crossplane/crossplane/v2/cmd/crossplane \
        github.com/google/go-containerregistry/cmd/crane 2>&1) \
        | tee "$dir.tmp/build.log" | progress crossplane; then
      if grep -qE '(403|404|410) (Forbidden|Not Found|Gone)|not available' "$dir.tmp/build.log"; then
        grep -m1 -E 'reading https?://' "$dir.tmp/build.log" | sed 's/^/[tools]   /' || true
        { echo "The Go module proxy refused github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION on $(date -u +%F)."
          cat "$dir.tmp/build.log"; } > "$unavailable"
        rm -rf "$dir.tmp"
        say "WARNING: the Crossplane CLI cannot be built on this machine: the Go module proxy refuses"
        say "  github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION. Tests that run 'crossplane' are skipped"
        say "  and say why. To run them, set CROSSPLANE_BIN=/path/to/crossplane ($CROSSPLANE_VERSION)."
        return
      fi
      tail -40 "$dir.tmp/build.log"; say "crossplane build failed (log: $dir.tmp/build.log)"; exit 1
    fi
    mv "$dir.tmp/crossplane" "$dir.tmp/crossplane-core" && mv "$dir.tmp/crank" "$dir.tmp/crossplane"
    # Crossplane's own CRDs (XRDs, Compositions, Operations...) from the same module, for the tests.
    local moddir
    moddir=$(cd "$module" && go mod download -json "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" \
      | awk -F'"' '$2 == "Dir" { print $4 }')
    cp -r "$moddir/cluster/crds" "$dir.tmp/crds" && chmod -R u+w "$dir.tmp/crds"
    rm -rf "$dir" "$unavailable" && mv "$dir.tmp" "$dir"
    say "  crossplane built in $((SECONDS - start))s"
  fi
  for f in crossplane crossplane-core crane crds; do ln -sfn "$dir/$f" "$BIN_DIR/${f/crds/crossplane-crds}"; done
}

# A stand-in for a platform team's own composition function (test/crossplane/sample-function, on
# function-sdk-go), for the Crossplane-in-the-loop tests and the demo.
build_sample_function() {
  local module="$here/../crossplane/sample-function" src_hash dir
  src_hash=$(cat "$module/go.mod" "$module/go.sum" "$module"/*.go | sha256sum | cut -c1-12)
  dir="$TOOLS_CACHE/bin/sample-function-$src_hash"
  if [[ ! -x "$dir/sample-function" ]]; then
    say "building the sample composition function (function-sdk-go) from Go modules (about 1 minute)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    if ! (cd "$module" && go build -trimpath -o "$dir.tmp/sample-function" . 2>&1) | tee "$dir.tmp/build.log"; then
      say "sample function build failed (log: $dir.tmp/build.log)"; exit 1
    fi
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/sample-function" "$BIN_DIR/sample-function"
}

# kube-bind's own `kubectl bind` (kubectl-bind) and konnector at the version pinned in
# test/kube-bind/go.mod: clients no one here wrote, for the tests that bind through our page as a
# kube-bind user would. Built like Crossplane above: where the Go module proxy refuses the version,
# .dev/bin/kubectl-bind.unavailable says so and the tests that need them skip with that reason.
# The version is stamped the way kube-bind's release Makefile stamps it (client-go's gitVersion
# "v1.<k8s minor>.<patch>+kube-bind-v0.3.0"): kubectl-bind checks the provider's version only when
# its own is at least v0.3.0, and names the konnector image after it.
build_kube_bind() {
  local module="$here/../kube-bind" pinned client_go
  pinned=$(awk '$1 == "github.com/kube-bind/kube-bind" { print $2 }' "$module/go.mod")
  if [[ "$pinned" != "$KUBE_BIND_VERSION" ]]; then
    say "KUBE_BIND_VERSION=$KUBE_BIND_VERSION but test/kube-bind/go.mod pins $pinned: change both together"
    exit 1
  fi
  client_go=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$module/go.mod")
  local src_hash dir unavailable="$BIN_DIR/kubectl-bind.unavailable"
  src_hash=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-12)
  dir="$TOOLS_CACHE/bin/kube-bind-$KUBE_BIND_VERSION-$src_hash"
  rm -f "$BIN_DIR/kubectl-bind" "$BIN_DIR/konnector"
  if [[ ! -x "$dir/kubectl-bind" ]] && grep -qs "kube-bind@$KUBE_BIND_VERSION " "$unavailable" \
      && [[ -n "$(find "$unavailable" -mmin -1440 2>/dev/null)" ]]; then
    say "kube-bind $KUBE_BIND_VERSION unavailable (recorded in $unavailable; retried after a day): its tests are skipped"
    return
  fi
  if [[ ! -x "$dir/kubectl-bind" ]]; then
    say "building kube-bind $KUBE_BIND_VERSION's kubectl-bind and konnector from Go modules"
    say "  (a cold build takes about 7 minutes on 2 cores; later runs reuse $dir)"
    local start=$SECONDS git_version="v1.${client_go#v0.}+kube-bind-$KUBE_BIND_VERSION" ldflags="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      ldflags+=" -X $pkg.gitVersion=$git_version -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    if ! (cd "$module" && go build -v -trimpath -ldflags "$ldflags" -o "$dir.tmp/" \
        github.com/kube-bind/kube-bind/cmd/kubectl-bind github.com/kube-bind/kube-bind/cmd/konnector 2>&1) \
        | tee "$dir.tmp/build.log" | progress kube-bind; then
      if grep -qE '(403|404|410) (Forbidden|Not Found|Gone)|not available' "$dir.tmp/build.log"; then
        grep -m1 -E 'reading https?://' "$dir.tmp/build.log" | sed 's/^/[tools]   /' || true
        { echo "The Go module proxy refused github.com/kube-bind/kube-bind@$KUBE_BIND_VERSION on $(date -u +%F)."
          cat "$dir.tmp/build.log"; } > "$unavailable"
        rm -rf "$dir.tmp"
        say "WARNING: kube-bind's kubectl-bind cannot be built on this machine: the Go module proxy refuses"
        say "  github.com/kube-bind/kube-bind@$KUBE_BIND_VERSION. Tests that run it are skipped and say why."
        return
      fi
      tail -40 "$dir.tmp/build.log"; say "kube-bind build failed (log: $dir.tmp/build.log)"; exit 1
    fi
    rm -rf "$dir" "$unavailable" && mv "$dir.tmp" "$dir"
    say "  kubectl-bind and konnector built in $((SECONDS - start))s"
  fi
  ln -sfn "$dir/kubectl-bind" "$BIN_DIR/kubectl-bind"
  ln -sfn "$dir/konnector" "$BIN_DIR/konnector"
}

mkdir -p "$BIN_DIR"
build_kube
build_crossplane
[[ -x "$BIN_DIR/crossplane-core" ]] && build_sample_function
build_kube_bind
"$BIN_DIR/kube-local" version >/dev/null
