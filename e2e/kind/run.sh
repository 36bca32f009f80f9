#!/usr/bin/env bash
# The kind tier of the end-to-end tests: a real Kubernetes cluster in Docker.
#   1. creates a kind cluster (e2e/kind/kind-config.yaml);
#   2. builds both images (sqld/Dockerfile, operator/Dockerfile) and loads
#      them into the cluster;
#   3. installs charts/sqld-operator and applies
#      deploy/examples/sqldcluster.yaml (primary + 2 replicas) with the
#      built image;
#   4. waits for Ready, writes through app-rw and reads through app-ro with
#      psql (port-forward);
#   5. scales replicas up (3) and down (1) and waits for readyReplicas;
#   6. writes rows while deleting the primary pod, and checks that every
#      acknowledged write is there once it is back;
#   7. changes spec.image, waits for the rollout to finish and checks that
#      every pod runs the new image (the primary a new pod);
#   8. deletes the primary's StatefulSet and checks that the recreated
#      primary has its data;
#   9. deletes the SqldCluster and checks that its children are gone and
#      the volume claim is retained (storage.reclaimPolicy: Retain).
# Needs docker, kind, kubectl, helm and psql. It exits 2 (never 0) when any
# is missing, so it cannot pass where it did not run.
#
# Usage: e2e/kind/run.sh        KEEP_CLUSTER=1 keeps the cluster afterwards;
#                               CLUSTER_NAME (default sqld-e2e).
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${CLUSTER_NAME:-sqld-e2e}
ns=sqld-e2e
tag=e2e-$(date +%s)
timeout=${E2E_TIMEOUT:-300s}

missing=()
for tool in docker kind kubectl helm psql; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "e2e/kind: NOT RUN: missing ${missing[*]} (this tier needs Docker and kind)" >&2
    exit 2
fi
if ! docker info >/dev/null 2>&1; then
    echo "e2e/kind: NOT RUN: no Docker engine answers" >&2
    exit 2
fi

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -z "${KEEP_CLUSTER:-}" ]]; then kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
step() { echo; echo "== $*"; }
die() { echo "e2e/kind: FAIL: $*" >&2; exit 1; }

step "kind cluster $cluster"
kind create cluster --name "$cluster" --config e2e/kind/kind-config.yaml --wait 120s
kubectl config use-context "kind-$cluster"

step "images"
docker build -f sqld/Dockerfile -t "sqld:$tag" .
docker build -f operator/Dockerfile -t "sqld-operator:$tag" .
docker tag "sqld:$tag" "sqld:$tag-b"
kind load docker-image --name "$cluster" "sqld:$tag" "sqld:$tag-b" "sqld-operator:$tag"

step "operator (helm)"
helm install sqld-operator charts/sqld-operator --namespace sqld-system --create-namespace \
    --set image.repository=sqld-operator --set image.tag="$tag" --set image.pullPolicy=Never \
    --set replicaCount=2 --wait --timeout "$timeout"

step "cluster"
kubectl create namespace "$ns"
# The example as users apply it, with the image just built (awk, not sed:
# a newline in a sed replacement is a GNU extension).
awk -v ns="$ns" -v img="sqld:$tag" '
    $0 == "spec:" { print; print "  image: " img; print "  imagePullPolicy: Never"; next }
    { sub(/namespace: default/, "namespace: " ns); print }
' deploy/examples/sqldcluster.yaml | kubectl apply -f -
kubectl -n "$ns" wait sqld/app --for=condition=Ready --timeout "$timeout"

password=$(kubectl -n "$ns" get secret app-credentials -o jsonpath='{.data.password}' | base64 -d)
export PGPASSWORD=$password PGUSER=sqld PGDATABASE=sqld PGCONNECT_TIMEOUT=5
forward() { # service local-port
    kubectl -n "$ns" port-forward "svc/$1" "$2:5432" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do psql -h 127.0.0.1 -p "$2" -Atc 'select 1' >/dev/null 2>&1 && return; sleep 0.2; done
    die "port-forward to $1 does not answer"
}
rw() { psql -h 127.0.0.1 -p 15432 -v ON_ERROR_STOP=1 -Atc "$1"; }
ro() { psql -h 127.0.0.1 -p 15433 -v ON_ERROR_STOP=1 -Atc "$1"; }
forward app-rw 15432
forward app-ro 15433

step "write via app-rw, read via app-ro"
rw "create table kv(k integer primary key, v text)"
rw "insert into kv values (1, 'one')"
for _ in $(seq 100); do [[ "$(ro "select v from kv where k = 1" 2>/dev/null)" == one ]] && break; sleep 0.1; done
[[ "$(ro "select v from kv where k = 1")" == one ]] || die "the write never reached app-ro"
ro "insert into kv values (2, 'forwarded')"
[[ "$(rw "select v from kv where k = 2")" == forwarded ]] || die "a write through a replica was lost"

wait_replicas() { # n
    for _ in $(seq 150); do
        [[ "$(kubectl -n "$ns" get sqld app -o jsonpath='{.status.readyReplicas}')" == "$1" ]] && return
        sleep 2
    done
    die "readyReplicas never reached $1"
}
step "scale"
kubectl -n "$ns" scale sqld/app --replicas=3 && wait_replicas 3
kubectl -n "$ns" scale sqld/app --replicas=1 && wait_replicas 1

step "delete the primary pod while writing"
acked=$(mktemp)
(
    i=1000
    while true; do
        if psql -h 127.0.0.1 -p 15432 -Atc "insert into kv values ($i, 'x')" >/dev/null 2>&1; then echo "$i" >>"$acked"; fi
        i=$((i + 1)); sleep 0.05
    done
) &
writer=$!
pids+=("$writer")
sleep 2
old_uid=$(kubectl -n "$ns" get pod app-primary-0 -o jsonpath='{.metadata.uid}')
kubectl -n "$ns" delete pod app-primary-0 --wait=false
# Wait for the replacement (a new UID), not for the old pod, which may still
# answer as Ready while it terminates.
wait_new_primary() { # old-uid
    for _ in $(seq 150); do
        uid=$(kubectl -n "$ns" get pod app-primary-0 -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
        [[ -n "$uid" && "$uid" != "$1" ]] && break
        sleep 2
    done
    [[ -n "$uid" && "$uid" != "$1" ]] || die "no new primary pod replaced $1"
    kubectl -n "$ns" wait pod/app-primary-0 --for=condition=Ready --timeout "$timeout"
}
wait_new_primary "$old_uid"
kill "$writer"
kill "${pids[0]}" 2>/dev/null || true   # the old port-forward died with the pod
forward app-rw 15432
lost=0
while read -r k; do
    [[ "$(rw "select count(*) from kv where k = $k")" == 1 ]] || { echo "lost acknowledged write $k" >&2; lost=$((lost + 1)); }
done <"$acked"
echo "$(wc -l <"$acked") acknowledged writes checked, $lost lost"
((lost == 0)) || die "acknowledged writes lost"

step "change the image"
old_uid=$(kubectl -n "$ns" get pod app-primary-0 -o jsonpath='{.metadata.uid}')
kubectl -n "$ns" patch sqld app --type merge -p "{\"spec\":{\"image\":\"sqld:$tag-b\"}}"
# status.currentImage is read from the running primary pod, and Ready is
# False while a new configuration rolls: wait for both, then check the pods.
for _ in $(seq 150); do
    [[ "$(kubectl -n "$ns" get sqld app -o jsonpath='{.status.currentImage}')" == "sqld:$tag-b" ]] && break
    sleep 2
done
kubectl -n "$ns" wait sqld/app --for=condition=Ready --timeout "$timeout"
[[ "$(kubectl -n "$ns" get pod app-primary-0 -o jsonpath='{.metadata.uid}')" != "$old_uid" ]] || die "the primary pod never rolled"
images=$(kubectl -n "$ns" get pods -l sqld.dev/cluster=app -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u)
[[ "$images" == "sqld:$tag-b" ]] || die "pods run: $images"
[[ "$(rw "select v from kv where k = 1")" == one ]] || { forward app-rw 15432; [[ "$(rw "select v from kv where k = 1")" == one ]] || die "data lost in the roll"; }

step "delete the StatefulSet: the volume and the data survive"
old_uid=$(kubectl -n "$ns" get pod app-primary-0 -o jsonpath='{.metadata.uid}')
kubectl -n "$ns" delete statefulset app-primary --wait
wait_new_primary "$old_uid"   # the operator recreates the StatefulSet
forward app-rw 15434
[[ "$(psql -h 127.0.0.1 -p 15434 -Atc "select v from kv where k = 1")" == one ]] || die "the primary came back without its data"

step "delete the cluster"
kubectl -n "$ns" delete sqld app --wait
for _ in $(seq 60); do
    left=$(kubectl -n "$ns" get statefulset,deployment,service,secret,pdb,networkpolicy -l sqld.dev/cluster=app -o name 2>/dev/null)
    [[ -z "$left" ]] && break
    sleep 2
done
[[ -z "$left" ]] || die "left behind after delete: $left"
# storage.reclaimPolicy Retain (the default) keeps the primary's claim.
kubectl -n "$ns" get pvc data-app-primary-0 >/dev/null || die "the retained volume claim is gone"
kubectl -n "$ns" delete pvc data-app-primary-0 --wait

echo
echo "e2e/kind: all passed"
