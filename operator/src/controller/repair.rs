//! Repairs the StatefulSet controller does not make by itself. With the
//! default `podManagementPolicy: OrderedReady` it replaces a pod during a
//! rolling update only once that pod is Running and Ready, so a primary
//! broken by a bad image or flag keeps crash-looping after the spec is
//! reverted. The field cannot change on an existing StatefulSet, so the
//! operator does what an administrator would: it deletes the stale pod and
//! lets the StatefulSet controller recreate it at the current revision.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::EventType;

use super::apply::{is_conflict, is_not_found};
use super::Context;
use crate::crd::SqldCluster;
use crate::error::Result;
use crate::naming;

/// Label the StatefulSet controller puts on each pod: its revision.
const REVISION_LABEL: &str = "controller-revision-hash";

/// Whether `pod` is a stale, broken instance of `sts`: from an older
/// revision than the one the StatefulSet rolls to, not Ready, and not
/// already going away. Only such a pod is deleted (a Ready one is replaced
/// by the StatefulSet controller itself).
pub fn is_stale_and_broken(sts: &StatefulSet, pod: &Pod) -> bool {
    let Some(update) = sts.status.as_ref().and_then(|s| s.update_revision.clone()) else {
        return false;
    };
    let revision = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL));
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    pod.metadata.deletion_timestamp.is_none() && revision.is_some_and(|r| *r != update) && !ready
}

/// The primary's pod as it runs (for the status' `currentImage`).
pub async fn primary_pod(c: &SqldCluster, ctx: &Context, ns: &str) -> Result<Option<Pod>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    Ok(pods.get_opt(&primary_pod_name(c)).await?)
}

fn primary_pod_name(c: &SqldCluster) -> String {
    format!("{}-0", naming::primary_name(c))
}

/// The image the sqld container of `pod` runs.
pub fn running_image(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|ct| ct.name == crate::builders::pod::CONTAINER_NAME)?
        .image
        .clone()
}

/// Deletes the primary's pod when it is stale and broken.
pub async fn replace_stale_primary_pod(
    c: &SqldCluster,
    ctx: &Context,
    ns: &str,
    sts: &StatefulSet,
    pod: &Pod,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let name = primary_pod_name(c);
    if !is_stale_and_broken(sts, pod) {
        return Ok(());
    }
    // Conditional on the pod read: a pod recreated meanwhile is not touched.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&name, &params).await {
        Ok(_) => {
            ctx.event(
                c,
                EventType::Normal,
                "PrimaryReplaced",
                "Repair",
                format!("deleted pod {name}: not ready and of an old revision, which the StatefulSet controller does not replace"),
            )
            .await;
            Ok(())
        }
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
