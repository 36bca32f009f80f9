//! Authentication at startup: trust, cleartext password, or SCRAM-SHA-256
//! (the default), with users from `--users-file` or `SQLD_PASSWORD`.
//! pgwire's `AuthDriver` runs the exchange; this module picks the mechanism
//! and holds the credentials.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::mechanism::{AuthMechanism, AuthMechanismFactory, AuthState};
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::sasl::SaslMechanisms;
use pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, DefaultServerParameterProvider, LoginInfo, Password,
    StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionManager, METADATA_APPLICATION_NAME, METADATA_USER};
use pgwire::error::ErrorInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::{PasswordMessageFamily, SASLInitialResponse};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::admission::Place;
use crate::activity::{Identity, Sessions};
use crate::config::AuthMethod;
use crate::database::catalog_server_version;
use crate::error::sqlstate;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read users file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("users file {file}, line {line}: expected `user:password`")]
    Malformed { file: String, line: usize },
    #[error("password authentication needs users: pass --users-file or set SQLD_PASSWORD (or use --auth trust for local development)")]
    NoUsers,
}

/// Known users and what each mechanism needs to check them.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Credentials>,
}

#[derive(Debug)]
struct Credentials {
    password: String,
    /// PBKDF2 of the password, computed once at start rather than per login.
    scram_salt: Vec<u8>,
    scram_salted_password: Vec<u8>,
}

impl Users {
    /// Reads `user:password` lines (`#` starts a comment).
    pub fn from_file(path: &Path) -> Result<Self, UsersError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| UsersError::Read(name.clone(), e))?;
        let mut users = Users::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or(UsersError::Malformed {
                file: name.clone(),
                line: i + 1,
            })?;
            users.add(user.trim(), password);
        }
        Ok(users)
    }

    pub fn add(&mut self, user: &str, password: &str) {
        let scram_salt: [u8; 16] = rand_salt();
        self.by_name.insert(
            user.to_owned(),
            Credentials {
                password: password.to_owned(),
                scram_salted_password: gen_salted_password(password, &scram_salt, SCRAM_ITERATIONS),
                scram_salt: scram_salt.to_vec(),
            },
        );
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn get(&self, login: &LoginInfo) -> PgWireResult<&Credentials> {
        let user = login.user().unwrap_or_default();
        self.by_name
            .get(user)
            .ok_or_else(|| PgWireError::InvalidPassword(user.to_owned()))
    }
}

fn rand_salt() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; two draws make 16 bytes.
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

#[derive(Debug)]
struct ScramSource(Arc<Users>);

#[async_trait]
impl AuthSource for ScramSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let c = self.0.get(login)?;
        Ok(Password::new(
            Some(c.scram_salt.clone()),
            c.scram_salted_password.clone(),
        ))
    }
}

#[derive(Debug)]
struct CleartextSource(Arc<Users>);

#[async_trait]
impl AuthSource for CleartextSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let c = self.0.get(login)?;
        Ok(Password::new(None, c.password.as_bytes().to_vec()))
    }
}

/// `--auth trust`: everyone is let in.
struct Trust;

#[async_trait]
impl AuthMechanism for Trust {
    async fn begin(&mut self, _client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<AuthState> {
        Ok(AuthState::Ok {
            final_message: None,
            identity: None,
        })
    }

    async fn next(
        &mut self,
        _client: &(dyn ClientInfo + Send + Sync),
        _message: PasswordMessageFamily,
    ) -> PgWireResult<AuthState> {
        Ok(AuthState::Ok {
            final_message: None,
            identity: None,
        })
    }
}

impl AuthMechanismFactory for Trust {
    fn create(&self) -> Box<dyn AuthMechanism> {
        Box::new(Trust)
    }
}

/// SASL with the client's first message checked before pgwire decodes it:
/// its decoder trusts the inner length of a SASLInitialResponse and panics
/// on one longer than the message (or on a message too short to hold it).
struct CheckedSasl(SaslMechanisms);

impl AuthMechanismFactory for CheckedSasl {
    fn create(&self) -> Box<dyn AuthMechanism> {
        Box::new(CheckedSaslExchange {
            inner: self.0.create(),
            started: false,
        })
    }
}

struct CheckedSaslExchange {
    inner: Box<dyn AuthMechanism>,
    /// The initial response has been seen; later messages are
    /// SASLResponses, whose whole body is data.
    started: bool,
}

#[async_trait]
impl AuthMechanism for CheckedSaslExchange {
    async fn begin(&mut self, client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<AuthState> {
        self.inner.begin(client).await
    }

    async fn next(
        &mut self,
        client: &(dyn ClientInfo + Send + Sync),
        message: PasswordMessageFamily,
    ) -> PgWireResult<AuthState> {
        let message = match message {
            PasswordMessageFamily::Raw(body) if !self.started => {
                PasswordMessageFamily::SASLInitialResponse(decode_initial_response(&body)?)
            }
            other => other,
        };
        self.started = true;
        match self.inner.next(client, message).await {
            // The SCRAM exchange names the user its messages carry, which
            // libpq leaves empty (the server is to use the startup
            // packet's): name that one.
            Err(PgWireError::InvalidPassword(_)) => {
                let login = LoginInfo::from_client_info(client);
                Err(PgWireError::InvalidPassword(
                    login.user().unwrap_or_default().to_owned(),
                ))
            }
            other => other,
        }
    }
}

/// SASLInitialResponse: mechanism name (C string), then the length of the
/// data (-1 for none) and exactly that many bytes.
fn decode_initial_response(body: &[u8]) -> PgWireResult<SASLInitialResponse> {
    let malformed = || {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".to_owned(),
            sqlstate::PROTOCOL_VIOLATION.to_owned(),
            "malformed SASLInitialResponse message".to_owned(),
        )))
    };
    let nul = body.iter().position(|b| *b == 0).ok_or_else(malformed)?;
    let auth_method = String::from_utf8_lossy(&body[..nul]).into_owned();
    let rest = &body[nul + 1..];
    let (len, data) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
    let data = match i32::from_be_bytes(*len) {
        -1 if data.is_empty() => None,
        n if usize::try_from(n).is_ok_and(|n| n == data.len()) => {
            Some(bytes::Bytes::copy_from_slice(data))
        }
        _ => return Err(malformed()),
    };
    Ok(SASLInitialResponse::new(auth_method, data))
}

/// The startup handler: protocol negotiation, the chosen mechanism, then
/// ParameterStatus, BackendKeyData (registered for CancelRequest) and
/// ReadyForQuery.
pub struct Startup {
    driver: AuthDriver<DefaultServerParameterProvider>,
    mechanism: Arc<dyn AuthMechanismFactory>,
    /// Where an authenticated session is listed (`pg_stat_activity`).
    sessions: Arc<Sessions>,
}

impl Startup {
    pub fn new(
        method: AuthMethod,
        users: Arc<Users>,
        cancels: Arc<ConnectionManager>,
        sessions: Arc<Sessions>,
    ) -> Self {
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = catalog_server_version();
        params.time_zone = "UTC".to_owned();
        params.date_style = "ISO, MDY".to_owned();
        let mechanism: Arc<dyn AuthMechanismFactory> = match method {
            AuthMethod::Trust => Arc::new(Trust),
            AuthMethod::Cleartext => {
                Arc::new(CleartextPasswordAuth::new(Arc::new(CleartextSource(users))))
            }
            AuthMethod::Password => Arc::new(CheckedSasl(SaslMechanisms::new(vec![Arc::new(
                ScramAuth::new(Arc::new(ScramSource(users))),
            )]))),
        };
        Startup {
            driver: AuthDriver::new(params).with_connection_manager(cancels),
            mechanism,
            sessions,
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                pgwire::api::auth::protocol_negotiation(client, startup).await?;
                pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                self.driver
                    .begin_authentication(client, self.mechanism.create())
                    .await?
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await?
            }
            _ => return Ok(()),
        };
        if let AuthOutcome::Authenticated { final_message, .. } = outcome {
            take_authenticated_place(client)?;
            self.driver
                .complete_authentication(client, final_message)
                .await?;
            register_session(client, &self.sessions);
        }
        Ok(())
    }
}

/// Lists the session, under the pid its BackendKeyData reported, until
/// the connection (and with it its extensions) is dropped.
fn register_session<C: ClientInfo>(client: &C, sessions: &Arc<Sessions>) {
    let metadata = client.metadata();
    let registration = sessions.register(Identity {
        pid: client.pid_and_secret_key().0,
        user: metadata.get(METADATA_USER).cloned(),
        application_name: metadata.get(METADATA_APPLICATION_NAME).cloned(),
        client: Some(client.socket_addr()),
    });
    client.session_extensions().insert(registration);
}

/// An authenticated session needs one of `--max-connections` places;
/// without one it is refused before it is told it is in.
fn take_authenticated_place<C: ClientInfo>(client: &C) -> PgWireResult<()> {
    let Some(place) = client.session_extensions().get::<Place>() else {
        return Ok(());
    };
    place.authenticate().map_err(|refusal| {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".to_owned(),
            sqlstate::TOO_MANY_CONNECTIONS.to_owned(),
            refusal.message().to_owned(),
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::decode_initial_response;

    fn message(method: &str, len: i32, data: &[u8]) -> Vec<u8> {
        let mut body = method.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(data);
        body
    }

    #[test]
    fn initial_responses_are_decoded_only_when_their_lengths_agree() {
        let ok = decode_initial_response(&message("SCRAM-SHA-256", 3, b"abc")).unwrap();
        assert_eq!(ok.auth_method, "SCRAM-SHA-256");
        assert_eq!(ok.data.as_deref(), Some(&b"abc"[..]));
        assert!(decode_initial_response(&message("SCRAM-SHA-256", -1, b""))
            .unwrap()
            .data
            .is_none());
        for bad in [
            message("SCRAM-SHA-256", 1_000_000, b"abc"),
            message("SCRAM-SHA-256", 2, b"abc"),
            message("SCRAM-SHA-256", -2, b""),
            message("SCRAM-SHA-256", -1, b"x"),
            b"SCRAM-SHA-256\0\0\0".to_vec(),
            b"SCRAM-SHA-256".to_vec(),
            Vec::new(),
        ] {
            assert!(decode_initial_response(&bad).is_err(), "{bad:?}");
        }
    }
}
