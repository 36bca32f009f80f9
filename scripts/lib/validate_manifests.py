"""Validates every object of multi-document YAML files with
kubernetes-validate (strict: unknown fields are errors) for each Kubernetes
version given. Objects of the Prometheus operator's kinds are not part of
Kubernetes' schemas: they are checked for their required structure here
(PrometheusRule rules also go through promtool in check-shipping.sh).

usage: validate_manifests.py VERSION[,VERSION...] FILE...
Exit status 1 when anything fails, or when no object was validated.
"""

import sys

import kubernetes_validate
import yaml

EXTERNAL = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["selector", "endpoints"],
    ("monitoring.coreos.com/v1", "PodMonitor"): ["selector", "podMetricsEndpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["groups"],
}


def main() -> int:
    versions = sys.argv[1].split(",")
    failed = validated = 0
    for path in sys.argv[2:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            what = f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            key = (doc.get("apiVersion"), doc.get("kind"))
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
