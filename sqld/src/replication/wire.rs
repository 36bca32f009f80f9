//! The internal API's vocabulary, shared by the primary's side (`api`,
//! `remote`) and the replica's (`follower`, `link`): paths, headers, and
//! the JSON of a forwarded statement and its answer. A leaf: it depends on
//! nothing else in sqld.

use libsql_sys::rusqlite::types::Value;
use serde::{Deserialize, Serialize};

pub const INFO_PATH: &str = "/v1/replication/info";
pub const SNAPSHOT_PATH: &str = "/v1/replication/snapshot";
pub const FRAMES_PATH: &str = "/v1/replication/frames";
pub const EXECUTE_PATH: &str = "/v1/replication/execute";

/// Every answer names the log it comes from.
pub const LOG_ID_HEADER: &str = "x-sqld-log-id";
/// On every answer: the primary's epoch. On forwarded statements: the
/// replica's, so a primary that was replaced fences itself.
pub const EPOCH_HEADER: &str = "x-sqld-epoch";
pub const SNAPSHOT_FRAME_HEADER: &str = "x-sqld-snapshot-frame-no";
/// On frame answers: the primary's newest durable frame, so a replica knows
/// how far behind it is.
pub const CURRENT_FRAME_HEADER: &str = "x-sqld-current-frame-no";
/// Sent by a replica with each poll and forwarded statement: who is
/// following (for `sqld_replicas_connected`), and who owns a forwarded
/// transaction.
pub const REPLICA_ID_HEADER: &str = "x-sqld-replica-id";

/// A value on the wire: SQLite's storage classes, losslessly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum WireValue {
    Null,
    Int(i64),
    /// As Rust prints it, so infinities and NaN survive JSON.
    Real(String),
    Text(String),
    /// Base64: a third larger than the bytes, where a JSON array of numbers
    /// would be up to four times larger.
    Blob(#[serde(with = "base64_bytes")] Vec<u8>),
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

impl From<&Value> for WireValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => WireValue::Null,
            Value::Integer(i) => WireValue::Int(*i),
            Value::Real(f) => WireValue::Real(f.to_string()),
            Value::Text(s) => WireValue::Text(s.clone()),
            Value::Blob(b) => WireValue::Blob(b.clone()),
        }
    }
}

impl From<WireValue> for Value {
    fn from(v: WireValue) -> Self {
        match v {
            WireValue::Null => Value::Null,
            WireValue::Int(i) => Value::Integer(i),
            WireValue::Real(s) => Value::Real(s.parse().unwrap_or(f64::NAN)),
            WireValue::Text(s) => Value::Text(s),
            WireValue::Blob(b) => Value::Blob(b),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// The remote session of a transaction already running on the primary.
    pub session: Option<String>,
    /// Opens a transaction whose earlier reads saw this frame_no.
    pub begin_after_frame: Option<u64>,
    pub sql: String,
    pub params: Vec<WireValue>,
    /// Result column type OIDs the client was told at Describe time.
    pub column_types: Option<Vec<u32>>,
    /// The replica's session speaks the SQLite API dialect; the primary's
    /// session for it must too.
    #[serde(default)]
    pub sqlite_api: bool,
    /// What is left of the replica session's statement timeout: the
    /// primary stops the statement then too (and rolls it back), so a
    /// timed-out write has one outcome on both sides.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireColumn {
    pub name: String,
    pub type_oid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireResult {
    Ok {
        tag: String,
        columns: Option<Vec<WireColumn>>,
        rows: Vec<Vec<WireValue>>,
    },
    Err {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireTxn {
    Idle,
    Active,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardResponse {
    /// Set while the transaction stays open on the primary.
    pub session: Option<String>,
    pub result: WireResult,
    pub txn: WireTxn,
    /// The primary's newest durable frame after the statement: a replica
    /// that has applied it sees this write.
    pub frame_no: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_answers_survive_the_round_trip() {
        let values = vec![
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(f64::INFINITY),
            Value::Real(-0.5),
            Value::Text("ünïcode".into()),
            Value::Blob(vec![0, 255, 7]),
        ];
        let wire: Vec<WireValue> = values.iter().map(WireValue::from).collect();
        let json = serde_json::to_string(&wire).unwrap();
        let back: Vec<Value> = serde_json::from_str::<Vec<WireValue>>(&json)
            .unwrap()
            .into_iter()
            .map(Value::from)
            .collect();
        assert_eq!(back, values);
        let nan: Value = serde_json::from_str::<WireValue>(
            &serde_json::to_string(&WireValue::from(&Value::Real(f64::NAN))).unwrap(),
        )
        .unwrap()
        .into();
        assert!(matches!(nan, Value::Real(f) if f.is_nan()));

        let answer = ForwardResponse {
            session: Some("s".into()),
            result: WireResult::Err {
                code: "40001".into(),
                message: "retry".into(),
            },
            txn: WireTxn::Failed,
            frame_no: 42,
        };
        let back: ForwardResponse =
            serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
        assert_eq!(back.session.as_deref(), Some("s"));
        assert_eq!(back.txn, WireTxn::Failed);
        assert_eq!(back.frame_no, 42);
        assert!(matches!(back.result, WireResult::Err { code, .. } if code == "40001"));
    }

    #[test]
    fn a_blob_travels_as_base64() {
        let blob: Vec<u8> = (0..=255).cycle().take(3 * 1024).collect();
        let json = serde_json::to_string(&WireValue::from(&Value::Blob(blob.clone()))).unwrap();
        assert!(json.len() < blob.len() * 4 / 3 + 32, "{} bytes", json.len());
        let back: Value = serde_json::from_str::<WireValue>(&json).unwrap().into();
        assert_eq!(back, Value::Blob(blob));
        assert!(serde_json::from_str::<WireValue>(r#"{"t":"Blob","v":"not base64!"}"#).is_err());
    }
}
