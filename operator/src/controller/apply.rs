//! Thin helpers over the Kubernetes API used by the reconciler: server-side
//! apply with the operator's field manager, deletes that tolerate absence,
//! and discovery of optional API groups.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::naming::FIELD_MANAGER;

/// Server-side applies `obj` (forcing ownership of conflicting fields, as a
/// controller must) and returns the object as stored, status included.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(crate::Error::MissingField("metadata.name"))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(obj)).await?)
}

/// Deletes `name` when this cluster owns it (an owner reference with the
/// cluster's UID), and only then: an object of the same name that a user
/// or another tool made is left alone. Absence is success. The delete is
/// conditional on the UID read, so an object replaced meanwhile survives.
pub async fn delete_owned<K>(api: &Api<K>, name: &str, owner_uid: Option<&str>) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(owner_uid) = owner_uid else {
        return Ok(());
    };
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let owned = obj
        .meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == owner_uid));
    if !owned {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether the API server serves `kind` in `group_version` (a CRD that may
/// or may not be installed).
pub async fn serves_kind(client: &Client, group_version: &str, kind: &str) -> Result<bool> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.kind == kind)),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A 404 from the API server.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A 409 from the API server.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
