//! The sqld operator: the control plane that turns `SqldCluster` objects
//! into running sqld primaries and replicas on Kubernetes.
//!
//! `crd` defines the resource; `builders` turn it into child objects without
//! any I/O; `controller` applies them and reports status; `render` prints
//! them for review; `leader`, `metrics` and `http` make the process a good
//! citizen of a cluster.
pub mod backup_status;
pub mod builders;
pub mod controller;
pub mod crd;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod rbac;
pub mod render;
pub mod sqld_flags;
pub mod status;
pub mod telemetry;
pub mod validation;

pub use error::{Error, Result};
