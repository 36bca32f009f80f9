//! The primary's volume. The StatefulSet's claim template is immutable, so
//! the live one is kept exactly as created; the live claim is what grows,
//! and what carries the owner reference that `storage.reclaimPolicy`
//! chooses. A growth the storage cannot make is reported (a condition and
//! a Warning), never retried into a wedge: the rest of the reconcile goes
//! on.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;

use super::Context;
use crate::crd::{ReclaimPolicy, SqldCluster};
use crate::error::Result;
use crate::naming;
use crate::status::{PartState, STORAGE_READY};
use crate::validation::{parse_quantity, Problem};

/// What the volume step found.
#[derive(Debug, Default)]
pub struct VolumeOutcome {
    /// Changes that cannot be made (a smaller size, a new class).
    pub problems: Vec<Problem>,
    /// `StorageReady`; `None` while there is no claim yet.
    pub state: Option<PartState>,
}

/// Keeps the live claim templates in `desired` and brings the live claim to
/// the wanted size and owner.
pub async fn reconcile(
    c: &SqldCluster,
    ctx: &Context,
    ns: &str,
    live: Option<&StatefulSet>,
    desired: &mut StatefulSet,
) -> Result<VolumeOutcome> {
    let mut out = VolumeOutcome::default();
    if let Some(live) = live {
        out.problems.extend(keep_live_templates(live, desired));
    }
    if desired.spec.volume_claim_templates.is_none() {
        return Ok(out); // FoundationDB: the primary's disk is an emptyDir
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let name = naming::primary_pvc_name(c);
    let Some(pvc) = pvcs.get_opt(&name).await? else {
        return Ok(out); // the StatefulSet controller has not made it yet
    };
    set_owner(c, &pvcs, &pvc).await?;

    let wanted = c.spec.storage.size.clone();
    let spec = pvc.spec.clone().unwrap_or_default();
    let requested = quantity(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let capacity = quantity(pvc.status.as_ref().and_then(|s| s.capacity.as_ref()));
    let Some(requested) = requested else {
        return Ok(out);
    };
    let cmp = match (parse_quantity(&wanted), parse_quantity(&requested)) {
        (Some(w), Some(r)) => w.cmp(&r),
        _ => Ordering::Equal,
    };
    out.state = Some(match cmp {
        Ordering::Less => {
            out.problems.push(Problem {
                reason: "StorageShrinkRejected",
                message: format!(
                    "spec.storage.size {wanted} is below the volume's {requested}; volumes cannot shrink"
                ),
            });
            PartState::ready("VolumeSized", format!("{name} keeps {requested}"))
        }
        Ordering::Greater => {
            let state = expand(
                ctx,
                &pvcs,
                &name,
                spec.storage_class_name.as_deref(),
                &wanted,
                &requested,
            )
            .await;
            let was = previous_reason(c);
            if state.ready {
                ctx.event(
                    c,
                    EventType::Normal,
                    "VolumeExpansion",
                    "Resize",
                    format!("requested {wanted} for {name} (was {requested})"),
                )
                .await;
            } else if was.as_deref() != Some(state.reason.as_str()) {
                ctx.event(
                    c,
                    EventType::Warning,
                    &state.reason,
                    "Resize",
                    state.message.clone(),
                )
                .await;
            }
            if state.ready {
                PartState::not_ready(
                    "VolumeExpanding",
                    format!("{name} is growing from {requested} to {wanted}"),
                )
            } else {
                state
            }
        }
        Ordering::Equal => match capacity.as_deref().and_then(parse_quantity) {
            Some(cap) if parse_quantity(&requested).is_some_and(|r| cap < r) => {
                PartState::not_ready(
                    "VolumeExpanding",
                    format!(
                        "{name} is growing to {requested} (now {})",
                        capacity.unwrap_or_default()
                    ),
                )
            }
            _ => PartState::ready("VolumeSized", format!("{name} has {requested}")),
        },
    });
    Ok(out)
}

/// Keeps the live StatefulSet's claim templates as they are: the API server
/// forbids any change to them, whatever a later version of the builder
/// would write (labels, access modes, volume mode, size). A new storage
/// class is reported, since it cannot be had.
pub fn keep_live_templates(live: &StatefulSet, desired: &mut StatefulSet) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(mut templates) = live.spec.volume_claim_templates.clone() else {
        return problems;
    };
    let class = |t: Option<&PersistentVolumeClaim>| {
        t.and_then(|t| t.spec.as_ref())
            .and_then(|s| s.storage_class_name.clone())
    };
    let wanted_class = class(
        desired
            .spec
            .volume_claim_templates
            .as_ref()
            .and_then(|v| v.first()),
    );
    if class(templates.first()) != wanted_class {
        problems.push(Problem {
            reason: "StorageClassImmutable",
            message: "spec.storage.storageClassName cannot change after creation".to_string(),
        });
    }
    for t in &mut templates {
        t.status = None; // what the API server reports, not ours to apply
    }
    desired.spec.volume_claim_templates = Some(templates);
    problems
}

/// Requests `wanted` for the claim, unless its storage class says it
/// cannot expand. The outcome is a state, never an error: a refusal
/// (no expansion, a quota, a webhook) must not stop the reconcile.
async fn expand(
    ctx: &Context,
    pvcs: &Api<PersistentVolumeClaim>,
    name: &str,
    class: Option<&str>,
    wanted: &str,
    requested: &str,
) -> PartState {
    if let Some(class) = class {
        let classes: Api<StorageClass> = Api::all(ctx.client.clone());
        // Unknown (no permission to read classes, say): let the patch tell.
        if let Ok(Some(sc)) = classes.get_opt(class).await {
            if sc.allow_volume_expansion != Some(true) {
                return PartState::not_ready(
                    "VolumeExpansionUnsupported",
                    format!("StorageClass {class} does not allow volume expansion: {name} stays at {requested} (spec.storage.size {wanted})"),
                );
            }
        }
    }
    let patch = json!({ "spec": { "resources": { "requests": { "storage": wanted } } } });
    match pvcs
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => PartState::ready("VolumeExpansionRequested", ""),
        Err(e) => PartState::not_ready(
            "VolumeExpansionFailed",
            format!("growing {name} to {wanted} was refused: {e}"),
        ),
    }
}

/// Ties the claim to the cluster (`Delete`) or frees it (`Retain`), keeping
/// any other owner the claim has.
async fn set_owner(
    c: &SqldCluster,
    pvcs: &Api<PersistentVolumeClaim>,
    pvc: &PersistentVolumeClaim,
) -> Result<()> {
    let ours = c.uid();
    let current = pvc.metadata.owner_references.clone().unwrap_or_default();
    let mut refs: Vec<_> = current
        .iter()
        .filter(|r| Some(&r.uid) != ours.as_ref())
        .cloned()
        .collect();
    if c.spec.storage.reclaim_policy == ReclaimPolicy::Delete {
        let mut owner = naming::owner_reference(c);
        // Not the controller: the StatefulSet controller may manage the
        // claim's references too.
        owner.controller = Some(false);
        refs.push(owner);
    }
    if refs == current {
        return Ok(());
    }
    let patch = json!({ "metadata": {
        "resourceVersion": pvc.resource_version(),
        "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
    }});
    pvcs.patch(
        &pvc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

fn quantity(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<String> {
    map.and_then(|m| m.get("storage")).map(|q| q.0.clone())
}

fn previous_reason(c: &SqldCluster) -> Option<String> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == STORAGE_READY)
        .map(|x| x.reason.clone())
}
