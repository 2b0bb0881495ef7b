//! Email delivery: the [`Mailer`] trait, a file outbox (default when no
//! SMTP server is configured), lettre SMTP, and the message templates.

mod file;
mod smtp;
mod templates;

pub use file::FileOutbox;
pub use smtp::SmtpMailer;
pub use templates::{EmailKind, TemplateContext, Templates};

/// One email to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Sender mailbox, e.g. `App <noreply@example.com>`.
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Which template produced it (sent as the `X-GoForward-Template` header).
    pub kind: EmailKind,
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// An address or header is invalid.
    #[error("invalid message: {0}")]
    Message(String),
    /// Writing the outbox file failed.
    #[error("outbox i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The SMTP server refused the message or could not be reached.
    #[error("smtp: {0}")]
    Smtp(String),
}

/// Delivers auth emails. Implement it to send through your own provider and
/// pass it to [`Auth::mailer`](crate::Auth::mailer).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends one email.
    ///
    /// # Errors
    /// A [`MailError`] when the message cannot be built or delivered.
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Builds the RFC 5322 message for `email` (shared by the outbox and SMTP).
///
/// # Errors
/// [`MailError::Message`] for invalid addresses.
pub fn build_message(email: &Email) -> Result<lettre::Message, MailError> {
    use lettre::message::header::ContentType;
    let from = email
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| MailError::Message(format!("from: {e}")))?;
    let to = email
        .to
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| MailError::Message(format!("to: {e}")))?;
    use lettre::message::{Body, header::ContentTransferEncoding};
    // 8bit keeps links and codes readable in the outbox (lettre's own choice
    // would fold lines over 76 characters into quoted-printable). RFC 5322
    // allows lines of up to 998 bytes; anything else gets lettre's encoding.
    let crlf = email.text.replace("\r\n", "\n").replace('\n', "\r\n");
    let body = if crlf
        .split("\r\n")
        .all(|line| line.len() <= 998 && !line.contains(['\0', '\r']))
    {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
    } else {
        Body::new(email.text.clone())
    };
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .header(TemplateHeader(email.kind.as_str().to_owned()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Message(e.to_string()))
}

#[derive(Clone)]
struct TemplateHeader(String);

impl lettre::message::header::Header for TemplateHeader {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-GoForward-Template")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}
