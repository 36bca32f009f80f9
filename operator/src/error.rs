//! The operator's errors. Variant names double as the `reason` label of the
//! failure metric, so they stay few and stable.

/// Everything that can fail in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),

    /// A YAML document could not be parsed or written.
    #[error("yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),

    /// Reading an input file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// An object lacks something the API server always sets.
    #[error("object is missing {0}")]
    MissingField(&'static str),

    /// A spec cannot be realised (render refuses it; the reconciler reports
    /// it in status instead of failing).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// Leadership was lost while reconciling.
    #[error("leader election: {0}")]
    Leadership(String),
}

impl Error {
    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Json(_) => "json",
            Error::Yaml(_) => "yaml",
            Error::Io(_) => "io",
            Error::MissingField(_) => "missing_field",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Leadership(_) => "leadership",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
