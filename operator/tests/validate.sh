#!/usr/bin/env bash
# Offline validation of everything the operator ships:
#   1. renders every example in deploy/examples with `sqld-operator render`
#      and validates each rendered object with kubernetes-validate (strict:
#      unknown fields are errors) against Kubernetes 1.33 and 1.37;
#   2. validates the operator's own manifests (deploy/operator, the CRD)
#      the same way;
#   3. validates every example SqldCluster against the openAPIV3Schema of
#      the generated CRD in crds/ (types, bounds, enums, patterns, unknown
#      fields), and checks that known-bad clusters are rejected, so the
#      check cannot pass vacuously.
# CEL rules (x-kubernetes-validations) are not evaluated here; the Rust test
# suite evaluates them (operator/tests/crd.rs).
# Objects of kinds whose schema ships with neither Kubernetes nor this
# repository (PodMonitor, ServiceMonitor, FoundationDBCluster) are only
# reported, not validated.
#
# Usage: operator/tests/validate.sh   (exit status 0 when everything passes)
# Set SQLD_OPERATOR_BIN to use a prebuilt binary instead of building one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
versions=(1.33 1.37)
unvalidated_kinds='PodMonitor|ServiceMonitor|FoundationDBCluster'

# One interpreter for everything, so the packages installed are the ones used.
py=${PYTHON:-python3}
have_packages() { "$1" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; }
if ! have_packages "$py"; then
    echo "installing kubernetes-validate" >&2
    if ! "$py" -m pip install --quiet kubernetes-validate >/dev/null 2>&1 || ! have_packages "$py"; then
        # An externally managed Python refuses pip: use a private venv.
        venv=${XDG_CACHE_HOME:-$HOME/.cache}/sqld-operator-validate
        if [[ ! -x "$venv/bin/python" ]]; then
            "$py" -m venv "$venv" >&2
        fi
        "$venv/bin/python" -m pip install --quiet kubernetes-validate >&2
        py="$venv/bin/python"
    fi
fi
if ! have_packages "$py"; then
    echo "FAIL could not install kubernetes-validate" >&2
    exit 1
fi

bin=${SQLD_OPERATOR_BIN:-}
if [[ -z "$bin" ]]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --quiet -p sqld-operator --bin sqld-operator)
    bin="$target/debug/sqld-operator"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

examples=("$root"/deploy/examples/*.yaml)
for ex in "${examples[@]}"; do
    out="$tmp/$(basename "$ex")"
    if ! "$bin" render -f "$ex" >"$out"; then
        echo "FAIL render $ex" >&2
        failed=1
    fi
done

# The operator's own manifests and the CRD itself, as kustomize builds them
# when kubectl is at hand, else file by file.
manifests=("$root/crds/sqld.dev_sqldclusters.yaml" "$root/deploy/operator/rbac.yaml"
    "$root/deploy/operator/namespaced/rbac.yaml" "$root"/deploy/operator/base/[!k]*.yaml)
if command -v kubectl >/dev/null 2>&1; then
    for k in "" namespaced; do
        if ! kubectl kustomize "$root/deploy/operator/$k" >"$tmp/operator-${k:-cluster}.yaml"; then
            echo "FAIL kustomize deploy/operator/$k" >&2
            failed=1
        fi
    done
else
    i=0
    for m in "${manifests[@]}"; do
        cp "$m" "$tmp/operator-$i-$(basename "$m")"
        i=$((i + 1))
    done
fi

for v in "${versions[@]}"; do
    log="$tmp/validate-$v.log"
    if ! "$py" -m kubernetes_validate --strict --quiet -k "$v" "$tmp"/*.yaml >"$log" 2>&1; then
        cat "$log" >&2
        echo "FAIL kubernetes-validate $v" >&2
        failed=1
        continue
    fi
    # A warning about a kind we expect to validate would hide a typo.
    if grep -v -E "Couldn't find schema for kind ($unvalidated_kinds) " "$log" | grep -q .; then
        cat "$log" >&2
        echo "FAIL kubernetes-validate $v: unexpected output" >&2
        failed=1
        continue
    fi
    n=$(cat "$tmp"/*.yaml | grep -c '^kind:' || true)
    skipped=$(grep -c "Couldn't find schema" "$log" || true)
    echo "ok   kubernetes-validate $v: $((n - skipped)) objects valid, $skipped of kinds ($unvalidated_kinds) not validated"
done

if ! "$py" - "$root/crds/sqld.dev_sqldclusters.yaml" "${examples[@]}" <<'PY'
"""Validates SqldCluster documents against the CRD's openAPIV3Schema."""
import copy
import sys

import jsonschema
import yaml


def to_json_schema(s):
    """openAPIV3Schema -> JSON Schema, closing objects like structural pruning would."""
    s = copy.deepcopy(s)

    def walk(node):
        if isinstance(node, dict):
            for key in ("properties",):
                for v in node.get(key, {}).values():
                    walk(v)
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key])
            for key in ("allOf", "anyOf", "oneOf"):
                for v in node.get(key, []):
                    walk(v)
            if node.get("x-kubernetes-int-or-string"):
                node.pop("type", None)
                node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            if node.pop("nullable", False) and "type" in node:
                node["type"] = [node["type"], "null"]
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for k in [k for k in node if k.startswith("x-kubernetes-")]:
                node.pop(k)
        return node

    schema = walk(s)
    # The API server validates metadata itself.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    return schema


crd = yaml.safe_load(open(sys.argv[1]))
version = crd["spec"]["versions"][0]
schema = to_json_schema(version["schema"]["openAPIV3Schema"])
validator = jsonschema.Draft7Validator(schema)
api_version = f'{crd["spec"]["group"]}/{version["name"]}'
kind = crd["spec"]["names"]["kind"]

failed = False
count = 0
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != kind:
            continue
        count += 1
        if doc.get("apiVersion") != api_version:
            print(f"FAIL {path}: apiVersion {doc.get('apiVersion')} is not {api_version}")
            failed = True
        for err in validator.iter_errors(doc):
            print(f"FAIL {path}: {'.'.join(map(str, err.absolute_path))}: {err.message}")
            failed = True
if count == 0:
    print("FAIL no SqldCluster examples found")
    failed = True

bad = {
    "negative replicas": {"spec": {"replicas": -1}},
    "unknown field": {"spec": {"replica": 2}},
    "bad auth method": {"spec": {"auth": {"method": "md5"}}},
    "bad backend type": {"spec": {"backend": {"type": "s3"}}},
    "bad fdb version": {"spec": {"backend": {"type": "foundationdb", "foundationdb": {"managed": {"version": "latest"}}}}},
}
for name, body in bad.items():
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "bad"}, **body}
    if validator.is_valid(doc):
        print(f"FAIL schema accepts a cluster with {name}")
        failed = True

if not failed:
    print(f"ok   {count} example SqldClusters match the CRD schema; {len(bad)} bad ones are rejected")
sys.exit(1 if failed else 0)
PY
then
    echo "FAIL CRD schema validation" >&2
    failed=1
fi

exit "$failed"
