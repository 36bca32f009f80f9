#!/usr/bin/env bash
# Checks everything that ships to users besides the binaries themselves:
#   images      hadolint on sqld/Dockerfile and operator/Dockerfile; each
#               image's build context assembled as .dockerignore defines it
#               and the Dockerfile's cargo build run in it offline
#   chart       helm lint --strict and helm template (default values and
#               charts/*/ci/*.yaml), every rendered object validated with
#               kubernetes-validate (strict) for Kubernetes 1.33 and 1.37,
#               the chart's copies (CRD, dashboard, rules) identical to the
#               originals; a chart's SqldCluster validated against the CRD
#               and rendered by the operator into valid objects; checkov on
#               the charts and on the database pods the operator renders,
#               with every skip explained (charts/checkov-skips*.txt); the
#               operator binary accepts every rendered operator command line;
#               the chart's CRD is a kept template equal to crds/, and
#               cluster names that are not DNS-1035 labels are refused
#   manifests   kubectl kustomize deploy/operator (both variants) renders and
#               validates; operator/tests/validate.sh (every example cluster)
#   monitoring  promtool check rules and its unit tests of the alerts
#               (deploy/monitoring/prometheus-rules.test.yaml); the
#               dashboard is valid JSON; every metric name the dashboard and
#               the rules use is exported by a live sqld primary and replica
#               or by the operator
#               (cargo test -p sqld-operator --test local_cluster, which also
#               runs the local end-to-end tier)
#   scripts     shellcheck on the shell scripts (scripts/, e2e/kind, e2e/local)
# Tools are installed once into ~/.cache/sqld-tools (scripts/shipping-tools.sh).
# No Docker engine or Kubernetes cluster is needed or used: images are
# linted and their cargo builds run in their contexts, but no image is made
# (e2e/kind/ builds and runs them where Docker exists).
#
# Usage: scripts/check-shipping.sh      (exit status 0 when all pass)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tools=$(scripts/shipping-tools.sh)
export PATH="$tools:$PATH"
target=${CARGO_TARGET_DIR:-$root/target}
if [[ -z "${SQLD_OPERATOR_BIN:-}" ]]; then
    cargo build --quiet --workspace --bin sqld-operator
    SQLD_OPERATOR_BIN=$target/debug/sqld-operator
fi
export SQLD_OPERATOR_BIN
versions=1.33,1.37
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pods"   # what the operator renders, for checkov
failures=()
step() { echo; echo "== $*"; }
fail() { echo "FAIL: $*" >&2; failures+=("$*"); }
# Runs a command with a time bound so a hung tool fails instead of blocking.
bounded() { timeout --kill-after=10 "${SHIPPING_TIMEOUT:-300}" "$@"; }

step "hadolint"
for f in sqld/Dockerfile operator/Dockerfile; do
    if bounded hadolint --failure-threshold info "$f"; then echo "ok   $f"; else fail "hadolint $f"; fi
done
[[ -f .dockerignore ]] || fail ".dockerignore is missing"

step "image build contexts (.dockerignore) hold what the Dockerfiles build"
# Docker is not here, but the context it would send is: the files
# .dockerignore admits, copied as each Dockerfile's COPY lines say. In that
# tree the Dockerfile's cargo commands must run offline, from the registry
# already fetched here: `cargo metadata` (the workspace and every path
# dependency resolve) and the same `cargo build` in the debug profile,
# sharing this tree's target directory so only the workspace crates compile
# (the image's --release build differs in codegen only, not in inputs).
host=$(rustc -vV | sed -n 's/^host: //p')
for f in sqld/Dockerfile operator/Dockerfile; do
    # A fixed place (not $tmp), so cargo finds its earlier build of the same
    # sources (copies keep their mtimes) instead of compiling them again.
    ctx="$target/image-contexts/$(dirname "$f")"
    rm -rf "$ctx"
    if ! python "$root/scripts/lib/docker_context.py" "$root" "$f" "$ctx" >"$tmp/cargo-steps"; then
        fail "$f: a COPY source is missing from the build context"
        continue
    fi
    [[ -s "$tmp/cargo-steps" ]] || fail "$f: no cargo command found in its RUN lines"
    while read -r dir cmd; do
        read -r -a words <<<"$cmd"
        args=()
        for w in "${words[@]:2}"; do [[ "$w" == --release ]] || args+=("$w"); done
        if (cd "$dir" && bounded cargo metadata --offline --locked --format-version 1 --filter-platform "$host" >/dev/null \
                && CARGO_TARGET_DIR="$target" bounded cargo "${words[1]}" --offline --quiet "${args[@]}"); then
            echo "ok   $f: cargo metadata and cargo ${words[1]} ${args[*]} in its build context"
        else
            fail "$f: cargo ${words[1]} ${args[*]} fails in the build context .dockerignore defines"
        fi
    done <"$tmp/cargo-steps"
done
# The check is live: a context without sqld/client (the .dockerignore this
# check was made for) must fail it.
grep -v '^!sqld/client/' .dockerignore >"$tmp/dockerignore-without-client"
if DOCKERIGNORE="$tmp/dockerignore-without-client" python "$root/scripts/lib/docker_context.py" \
        "$root" sqld/Dockerfile "$tmp/context-broken" >/dev/null \
    && (cd "$tmp/context-broken/image/src" \
        && cargo metadata --offline --locked --format-version 1 --filter-platform "$host" >/dev/null 2>&1); then
    fail "the build context check accepts a context without sqld/client"
else
    echo "ok   a context without sqld/client fails the check"
fi

step "chart copies are identical to their sources"
same() {
    if cmp -s "$1" "$2"; then echo "ok   $2 = $1"; else fail "$2 differs from $1 (copy it: cp $1 $2)"; fi
}
same crds/sqld.dev_sqldclusters.yaml charts/sqld-operator/files/crds/sqld.dev_sqldclusters.yaml
same deploy/monitoring/grafana-dashboard.json charts/sqld-operator/files/grafana-dashboard.json
same deploy/monitoring/prometheus-rules.yaml charts/sqld-operator/files/prometheus-rules.yaml

validate() {
    if bounded python "$root/scripts/lib/validate_manifests.py" \
        --crd "$root/crds/sqld.dev_sqldclusters.yaml" "$versions" "$@"; then :; else fail "kubernetes-validate $*"; fi
}

for chart in charts/*/; do
    chart=${chart%/}
    name=$(basename "$chart")
    step "helm: $name"
    values=("")
    for v in "$chart"/ci/*.yaml; do [[ -e "$v" ]] && values+=("$v"); done
    for v in "${values[@]}"; do
        label=${v:-default values}
        args=()
        [[ -n "$v" ]] && args=(-f "$v")
        if bounded helm lint --strict "$chart" "${args[@]}" >"$tmp/lint" 2>&1; then
            echo "ok   helm lint --strict ($label)"
        else
            cat "$tmp/lint"; fail "helm lint $name ($label)"
        fi
        out="$tmp/$name-$(basename "${v:-default}" .yaml).yaml"
        if bounded helm template release "$chart" --namespace sqld-system --include-crds "${args[@]}" >"$out"; then
            echo "ok   helm template ($label): $(grep -c '^kind:' "$out") objects"
            validate "$out"
            if grep -q '^kind: SqldCluster' "$out"; then
                # What the operator makes of it: valid objects, and pods for checkov.
                if "$SQLD_OPERATOR_BIN" render -f "$out" >"$tmp/pods/$(basename "$out")"; then
                    echo "ok   sqld-operator render ($label)"
                    validate "$tmp/pods/$(basename "$out")"
                else
                    fail "sqld-operator render of $name ($label)"
                fi
            fi
        else
            fail "helm template $name ($label)"
        fi
    done
    # A value the schema forbids must be refused, so the schema is live.
    if helm template release "$chart" --set no_such_value=1 >/dev/null 2>&1; then
        fail "$name: values.schema.json accepts unknown values"
    else
        echo "ok   values.schema.json rejects unknown values"
    fi
done

step "chart behaviour"
# The CRD ships as a template so `helm upgrade` applies a newer one (Helm
# never upgrades crds/), kept on uninstall, and equal to crds/.
if python - "$tmp/sqld-operator-default.yaml" crds/sqld.dev_sqldclusters.yaml <<'PY'
import sys, yaml
crds = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "CustomResourceDefinition"]
assert len(crds) == 1, f"{len(crds)} CRDs rendered"
assert crds[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", "not kept on uninstall"
assert crds[0]["spec"] == yaml.safe_load(open(sys.argv[2]))["spec"], "differs from crds/"
PY
then echo "ok   sqld-operator: the CRD is a template (upgraded by helm upgrade), kept on uninstall"; else fail "sqld-operator chart CRD template"; fi
if helm template sqld-system charts/sqld-operator --set crds.install=false | grep -q '^kind: CustomResourceDefinition'; then
    fail "sqld-operator: crds.install=false still renders the CRD"
fi
# ClusterRoles are cluster-wide: releases of one name in two namespaces
# must not share one; storageclasses (cluster-scoped) only in a ClusterRole.
role_names() { helm template sqld-operator charts/sqld-operator --namespace "$1" "${@:2}" \
    | python -c 'import sys, yaml; print(" ".join(sorted(d["kind"] + "/" + d["metadata"]["name"] for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] in ("ClusterRole", "Role"))))'; }
a=$(role_names team-a); b=$(role_names team-b)
if [[ -n "$a" && "$a" != "$b" ]]; then echo "ok   ClusterRole names differ per release namespace: $a | $b"; else fail "ClusterRole names collide across namespaces: $a"; fi
if helm template sqld-operator charts/sqld-operator --namespace x --set watchNamespace=x | grep -q storageclasses; then
    fail "a namespaced Role lists storageclasses (cluster-scoped: a Role cannot grant them)"
fi
# A cluster name its Services cannot carry is refused, whether it comes
# from the values or from the release name.
for bad in "r --set name=my.db" "r --set name=2db" "2db" "my.db"; do
    read -r -a a <<<"$bad"
    if helm template "${a[@]}" charts/sqld-cluster >/dev/null 2>&1; then
        fail "sqld-cluster accepts a name that is no DNS-1035 label: helm template $bad"
    else
        echo "ok   sqld-cluster refuses: helm template $bad"
    fi
done

step "checkov"
# Skip lists: `ID  # reason`, one per line; a line without a reason fails.
for list in charts/checkov-skips.txt charts/checkov-skips-unsized.txt; do
    while read -r id hash reason; do
        [[ -z "$id" || "$id" == "#"* ]] && continue
        [[ "$id" =~ ^CKV2?_K8S_[0-9]+$ && "$hash" == "#" && -n "$reason" ]] \
            || fail "$list: '$id $hash $reason' is not 'CKV_K8S_N  # reason'"
    done <"$list"
done
skip_ids() { grep -Eo '^CKV2?_K8S_[0-9]+' "$1" | paste -sd, -; }
skips=$(skip_ids charts/checkov-skips.txt)
checkov_run() {
    local what=$1; shift
    # checkov only warns when it cannot render a chart, and then checks
    # nothing: require a summary with passed checks and no failure.
    if bounded checkov --compact --skip-check "$skips" --skip-download --output cli "$@" \
            >"$tmp/checkov" 2>&1 \
        && ! grep -q "Failed processing" "$tmp/checkov" \
        && grep -Eq "Passed checks: [1-9][0-9]*, Failed checks: 0," "$tmp/checkov"; then
        echo "ok   checkov $what: $(grep -Eo 'Passed checks: [0-9]+' "$tmp/checkov" | paste -sd' ')"
    else
        grep -E -B1 -A1 "FAILED for resource|Failed processing|checks:" "$tmp/checkov" | head -80
        fail "checkov $what"
    fi
}
for chart in charts/*/; do
    # A chart of only a SqldCluster gives checkov nothing to check: its pods
    # are checked below, as the operator renders them.
    if grep -q '^kind: SqldCluster' "$tmp/$(basename "$chart")-default.yaml"; then continue; fi
    checkov_run "${chart%/} (helm, default values)" --framework helm -d "$chart"
done
for f in "$tmp"/*-full-values.yaml; do
    grep -q '^kind: SqldCluster' "$f" && continue
    checkov_run "$(basename "$f") (rendered)" --framework kubernetes -f "$f"
done
# Examples that leave spec.resources out on purpose (the smallest spec, one
# feature each) are checked with the skips of checkov-skips-unsized.txt too.
mkdir "$tmp/pods-unsized"
for ex in deploy/examples/*.yaml; do
    dir=pods
    grep -q 'esources:' "$ex" || dir=pods-unsized
    "$SQLD_OPERATOR_BIN" render -f "$ex" >"$tmp/$dir/example-$(basename "$ex")" || fail "render $ex"
done
checkov_run "sqld pods the operator renders (charts, sized examples)" --framework kubernetes -d "$tmp/pods"
base_skips=$skips
skips="$skips,$(skip_ids charts/checkov-skips-unsized.txt)"
checkov_run "sqld pods the operator renders (examples without resources)" --framework kubernetes -d "$tmp/pods-unsized"
skips=$base_skips

step "kustomize"
for k in deploy/operator deploy/operator/namespaced; do
    out="$tmp/kustomize-$(echo "$k" | tr / -).yaml"
    if bounded kubectl kustomize "$k" >"$out"; then
        echo "ok   kubectl kustomize $k: $(grep -c '^kind:' "$out") objects"
        validate "$out"
    else
        fail "kubectl kustomize $k"
    fi
done
if bounded operator/tests/validate.sh >"$tmp/validate" 2>&1; then
    echo "ok   operator/tests/validate.sh (every example cluster)"
else
    cat "$tmp/validate"; fail "operator/tests/validate.sh"
fi

step "the operator's command line in the chart and the manifests"
# The binary must accept the args each rendered Deployment gives it: it then
# gets as far as looking for a cluster (none here), instead of a usage error.
for out in "$tmp"/sqld-operator-*.yaml "$tmp"/kustomize-*.yaml; do
    # One line per container, its args separated by US (0x1f).
    python - "$out" >"$tmp/operator-args" <<'PY' || fail "operator args of $out"
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            print("\x1f".join(c.get("command", [])[1:] + c.get("args", [])))
PY
    while IFS=$'\x1f' read -r -a args; do
        got=$(env -i KUBECONFIG=/nonexistent timeout 20 "$SQLD_OPERATOR_BIN" "${args[@]}" 2>&1 || true)
        if grep -q "kubernetes API" <<<"$got"; then
            echo "ok   $(basename "$out"): sqld-operator ${args[*]}"
        else
            echo "$got" | head -5; fail "$(basename "$out"): sqld-operator ${args[*]} is refused"
        fi
    done <"$tmp/operator-args"
done

step "monitoring"
python - deploy/monitoring/prometheus-rules.yaml "$tmp/rules.yaml" <<'PY' || fail "extract rules"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert doc["kind"] == "PrometheusRule", doc["kind"]
yaml.safe_dump({"groups": doc["spec"]["groups"]}, open(sys.argv[2], "w"))
PY
if bounded promtool check rules "$tmp/rules.yaml"; then :; else fail "promtool check rules"; fi
cp deploy/monitoring/prometheus-rules.test.yaml "$tmp/"
if bounded promtool test rules "$tmp/prometheus-rules.test.yaml"; then :; else fail "promtool test rules"; fi
if python -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"' \
    deploy/monitoring/grafana-dashboard.json; then echo "ok   dashboard JSON"; else fail "dashboard JSON"; fi
validate deploy/monitoring/prometheus-rules.yaml
echo "-- metric names (live sqld primary and replica, operator registry) and the local end-to-end tier"
# `cargo test --workspace` builds target/debug/sqld and the test with the
# feature set the test suite already compiled, so nothing is rebuilt (with
# -p, cargo resolves features per package and rebuilds most of the
# dependency graph: minutes on a fresh machine). The build is bounded apart
# from the run, and more loosely.
if SHIPPING_TIMEOUT=1800 bounded cargo test --quiet --workspace --no-run \
    && SQLD_BIN=${SQLD_BIN:-$target/debug/sqld} bounded cargo test --quiet --workspace --test local_cluster; then
    echo "ok   local_cluster"
else
    fail "cargo test -p sqld-operator --test local_cluster"
fi

step "shellcheck"
mapfile -t scripts < <(ls scripts/*.sh e2e/kind/*.sh e2e/local/*.sh operator/tests/validate.sh 2>/dev/null)
if bounded shellcheck -x "${scripts[@]}"; then echo "ok   ${scripts[*]}"; else fail "shellcheck"; fi

echo
if ((${#failures[@]})); then
    echo "check-shipping: ${#failures[@]} FAILED:" >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "check-shipping: all passed"
