"""Validates every object of multi-document YAML files with
kubernetes-validate (strict: unknown fields are errors) for each Kubernetes
version given. Objects of the Prometheus operator's kinds are not part of
Kubernetes' schemas: they are checked for their required structure here
(PrometheusRule rules also go through promtool in check-shipping.sh).

Objects of a kind defined by a CRD given with --crd FILE are validated
against that CRD's openAPIV3Schema (closed like structural pruning: unknown
fields are errors; CEL rules are not evaluated here).

usage: validate_manifests.py [--crd FILE]... VERSION[,VERSION...] FILE...
Exit status 1 when anything fails, or when no object was validated.
"""

import copy
import sys

import jsonschema
import kubernetes_validate
import yaml

EXTERNAL = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["selector", "endpoints"],
    ("monitoring.coreos.com/v1", "PodMonitor"): ["selector", "podMetricsEndpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["groups"],
}


def closed(schema):
    """openAPIV3Schema -> JSON Schema that rejects unknown fields."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
        for key in list(node):
            if key.startswith("x-kubernetes-"):
                node.pop(key)
        for p in (node.get("properties") or {}).values():
            walk(p)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key) or []:
                walk(sub)
        if node.get("type") == "object" and "properties" in node and not preserve:
            node.setdefault("additionalProperties", False)

    walk(s)
    return s


def load_crds(paths):
    kinds = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for v in crd["spec"]["versions"]:
                    schema = closed(v["schema"]["openAPIV3Schema"])
                    # apiVersion, kind and metadata are the API server's.
                    props = schema.setdefault("properties", {})
                    props["apiVersion"] = {"const": f"{group}/{v['name']}"}
                    props["kind"] = {"const": kind}
                    props["metadata"] = {"type": "object"}
                    kinds[(f"{group}/{v['name']}", kind)] = schema
    return kinds


def main() -> int:
    args = sys.argv[1:]
    crd_paths = []
    while args and args[0] == "--crd":
        crd_paths.append(args[1])
        args = args[2:]
    crds = load_crds(crd_paths)
    versions = args[0].split(",")
    failed = validated = 0
    for path in args[1:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            what = f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                errors = list(jsonschema.Draft7Validator(crds[key]).iter_errors(doc))
                for e in errors:
                    print(f"FAIL {what} (CRD schema): {e.message} at {list(e.path)}")
                if errors:
                    failed += 1
                else:
                    validated += 1
                    print(f"ok   {what} (CRD schema)")
                continue
            if key in EXTERNAL:
                missing = [k for k in EXTERNAL[key] if k not in (doc.get("spec") or {})]
                if missing:
                    print(f"FAIL {what}: spec lacks {missing}")
                    failed += 1
                else:
                    print(f"ok   {what} (structure only: not a Kubernetes kind)")
                    validated += 1
                continue
            ok = True
            for v in versions:
                try:
                    kubernetes_validate.validate(doc, v, strict=True)
                except kubernetes_validate.ValidationError as e:
                    print(f"FAIL {what} (Kubernetes {v}): {e.message} at {list(e.path)}")
                    ok = False
                except Exception as e:  # unknown kind/version, schema not found
                    print(f"FAIL {what} (Kubernetes {v}): {e}")
                    ok = False
            if ok:
                validated += 1
                print(f"ok   {what} ({', '.join(versions)})")
            else:
                failed += 1
    if validated == 0 and failed == 0:
        print("FAIL nothing was validated")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
