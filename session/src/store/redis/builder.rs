//! Building a [`RedisStore`]: its prefix, timeout, TLS roots and replica wait, checked once.

use std::{sync::Arc, time::Duration};

use ::redis::{Client, ConnectionInfo, ErrorKind, RedisError, Script, TlsCertificates};

use super::{
    cluster,
    conn::{Connections, Target},
    scripts::*,
    Inner, RedisStore, DEFAULT_PREFIX, DEFAULT_TIMEOUT, MAX_PREFIX, OWNER_SET,
};
use crate::BuildError;

/// Builds a [`RedisStore`]; start with [`RedisStore::builder`].
///
/// ```
/// use actix_typed_session::{redis, RedisStore};
///
/// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
/// assert!(RedisStore::builder(client.clone()).prefix("app:sess:").build().is_ok());
/// assert!(RedisStore::builder(client).prefix("has space").build().is_err());
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    pub(super) target: Target,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) root_certificates: Option<Vec<u8>>,
    /// How many replicas must acknowledge each write, within how long.
    pub(super) replicas: (usize, Duration),
}

impl RedisStoreBuilder {
    pub(super) fn new(target: Target) -> Self {
        Self {
            target,
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            root_certificates: None,
            replicas: (0, Duration::ZERO),
        }
    }

    /// The text every key of this store starts with (default `session:`): printable ASCII
    /// without spaces, at most 128 bytes. Give each application (or each store in one
    /// application) its own prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most time one operation may take, connecting included (default 2 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts the CA certificates in `pem` (PEM text, one or more certificates) for a `rediss://`
    /// server, in place of the system's root certificates: for a Redis whose certificate is
    /// signed by a private CA. [`build`](Self::build) fails when the URL is not `rediss://` or
    /// `pem` cannot be read as PEM certificates, and on a cluster, whose client takes its
    /// certificates itself (`ClusterClientBuilder::certs`).
    ///
    /// These roots replace the client's TLS settings. For a client certificate (mutual TLS),
    /// build the client with [`redis::Client::build_with_tls`](::redis::Client::build_with_tls),
    /// giving it both the roots and the certificate, and leave this unset.
    ///
    /// ```no_run
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// # fn setup() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let store = RedisStore::builder(redis::Client::open("rediss://redis.internal:6380/")?)
    ///     .tls_root_certificates(ca)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Validates the settings and builds the store. No connection is opened yet.
    pub fn build(self) -> Result<RedisStore, BuildError> {
        validate_prefix(&self.prefix)?;
        if self.timeout.is_zero() {
            return Err(BuildError::Timeouts(
                "the Redis timeout must be longer than zero",
            ));
        }
        let replicas = self.replicas()?;
        let target = match (self.target, self.root_certificates) {
            (Target::Server(client), None) => {
                Target::Server(Client::open(with_nodelay(&client)).map_err(BuildError::RedisTls)?)
            }
            (Target::Server(client), Some(pem)) => Target::Server(
                Client::build_with_tls(
                    with_nodelay(&client),
                    TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
                .map_err(BuildError::RedisTls)?,
            ),
            (target @ Target::Cluster(_), None) => target,
            (Target::Cluster(_), Some(_)) => {
                return Err(BuildError::RedisTls(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a cluster's client takes its root certificates itself \
                     (redis::cluster::ClusterClientBuilder::certs)",
                ))))
            }
        };
        let cluster = match &target {
            Target::Server(client) => {
                if matches!(
                    client.get_connection_info().addr(),
                    ::redis::ConnectionAddr::TcpTls { .. }
                ) {
                    install_crypto_provider();
                }
                None
            }
            Target::Cluster(_) => {
                // The cluster client does not tell whether its nodes speak TLS.
                install_crypto_provider();
                Some(cluster::Scripts::new())
            }
        };
        // Each script is hashed once here; its `EVALSHA` names it by that hash.
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        let writer = |body: &str| Script::new(&format!("{PRELUDE}{WRITE}{body}"));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conns: Connections::new(target, self.timeout),
                owner_prefix: format!("{}{OWNER_SET}", self.prefix),
                prefix: self.prefix,
                timeout: self.timeout,
                replicas,
                cluster,
                create: writer(CREATE),
                update: script(UPDATE),
                update_small: Script::new(UPDATE_SMALL),
                renew: script(RENEW),
                delete: script(DELETE),
                put: writer(PUT),
                list_owned: script(LIST_OWNED),
                delete_owned: script(DELETE_OWNED),
                delete_all_owned: script(DELETE_ALL_OWNED),
            }),
        })
    }
}

/// Makes `ring` rustls's process-wide crypto provider unless the application installed one.
/// rustls picks it from its crate features by itself only when exactly one provider is enabled:
/// another crate of the application enabling `aws-lc-rs` as well would make every TLS connect
/// panic.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // rustls deprecates `ring` (no post-quantum key exchange) in favour of `aws-lc-rs`, which
        // needs a C build of its own; `ring` is already a dependency of this crate. Another
        // thread may have installed a provider meanwhile: theirs stays.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

pub(super) fn validate_prefix(prefix: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidIdentifier {
        what: "Redis key prefix",
        name: prefix.to_owned(),
        reason,
    };
    if prefix.len() > MAX_PREFIX {
        return Err(invalid("it is longer than 128 bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "only printable ASCII characters without spaces are allowed",
        ));
    }
    Ok(())
}

/// The client's connection settings with `TCP_NODELAY` on (the `redis` crate leaves it off): a
/// runtime's connection writes its commands in batches, and with Nagle's algorithm a batch
/// written while the previous one is unacknowledged would wait for Redis's reply.
fn with_nodelay(client: &Client) -> ConnectionInfo {
    let info = client.get_connection_info().clone();
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info.set_tcp_settings(tcp)
}
