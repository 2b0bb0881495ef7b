//! SMTP delivery with lettre (implicit TLS, STARTTLS or plain for local relays).

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;

use super::{Email, MailError, Mailer, build_message};
use crate::config::{SmtpConfig, SmtpTls};

/// Sends through an SMTP server (pooled connections).
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpMailer")
    }
}

impl SmtpMailer {
    /// Builds the transport from config (does not connect yet).
    ///
    /// # Errors
    /// [`MailError::Smtp`] when the TLS settings cannot be built.
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        Self::build(config, None)
    }

    /// Like [`SmtpMailer::new`], but the server's certificate may also chain
    /// to `root_pem` (PEM certificates): a relay with a private CA or a
    /// self-signed certificate. The host name (or IP) in `config.host` is
    /// still verified against the certificate.
    ///
    /// # Errors
    /// [`MailError::Smtp`] when the PEM or the TLS settings are invalid.
    pub fn with_root_certificate(config: &SmtpConfig, root_pem: &[u8]) -> Result<Self, MailError> {
        Self::build(config, Some(root_pem))
    }

    fn build(config: &SmtpConfig, root_pem: Option<&[u8]>) -> Result<Self, MailError> {
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let smtp = |e: lettre::transport::smtp::Error| MailError::Smtp(e.to_string());
        let tls = |root_pem: &[u8]| -> Result<TlsParameters, MailError> {
            TlsParameters::builder(config.host.clone())
                .add_root_certificate(Certificate::from_pem(root_pem).map_err(smtp)?)
                .build_rustls()
                .map_err(smtp)
        };
        let mut builder = match (config.tls, root_pem) {
            (SmtpTls::Tls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(smtp)?
            }
            (SmtpTls::Starttls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(smtp)?
            }
            (SmtpTls::Tls, Some(pem)) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                    .tls(Tls::Wrapper(tls(pem)?))
            }
            (SmtpTls::Starttls, Some(pem)) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                    .tls(Tls::Required(tls(pem)?))
            }
            (SmtpTls::None, _) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        }
        .port(config.port)
        .timeout(Some(std::time::Duration::from_secs(10)));
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = build_message(email)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Smtp(e.to_string()))
    }
}
