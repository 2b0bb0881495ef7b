//! SMS delivery: the [`SmsSender`] trait and the file outbox used when no
//! SMS provider is configured (one `.txt` per message under
//! `<data_dir>/sms_outbox`), plus phone-number normalization.

use std::path::PathBuf;

/// Why an SMS could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmsError {
    /// Writing the outbox file failed.
    #[error("sms outbox i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The provider refused the message or could not be reached.
    #[error("sms provider: {0}")]
    Provider(String),
}

/// Sends text messages. Implement it for your provider (Twilio, Arkesel…)
/// and pass it to [`Auth::sms_sender`](crate::Auth::sms_sender).
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends `body` to `to` (E.164 digits without `+`); returns the provider's message id.
    ///
    /// # Errors
    /// An [`SmsError`] when the message cannot be delivered.
    async fn send(&self, to: &str, body: &str) -> Result<String, SmsError>;
}

/// Writes each SMS as `<unix-micros>-<id>.txt` (`To: +<number>`, a blank
/// line, the text) into a directory, for development and tests.
#[derive(Debug, Clone)]
pub struct FileSmsOutbox {
    dir: PathBuf,
}

impl FileSmsOutbox {
    /// An outbox writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait::async_trait]
impl SmsSender for FileSmsOutbox {
    async fn send(&self, to: &str, body: &str) -> Result<String, SmsError> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{:016}-{id}.txt", chrono::Utc::now().timestamp_micros());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, format!("To: +{to}\n\n{body}\n")).await?;
        tokio::fs::rename(&tmp, self.dir.join(&name)).await?;
        tracing::info!(file = %name, "sms written to the outbox");
        Ok(id)
    }
}

/// Twilio's Messages API (and compatible ones): `POST
/// {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with basic
/// auth and a form body (`To`, `Body`, `From` or `MessagingServiceSid`).
#[derive(Clone)]
pub struct TwilioSms {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: secrecy::SecretString,
    from: Option<String>,
    messaging_service_sid: Option<String>,
}

impl std::fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSms")
            .field("url", &self.url)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioSms {
    /// A sender from config.
    ///
    /// # Errors
    /// [`SmsError::Provider`] when neither `from` nor `messaging_service_sid`
    /// is set or the HTTP client cannot be built.
    pub fn new(config: &crate::config::SmsProviderConfig) -> Result<Self, SmsError> {
        if config.from.is_none() && config.messaging_service_sid.is_none() {
            return Err(SmsError::Provider(
                "set `from` or `messaging_service_sid`".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SmsError::Provider(e.to_string()))?;
        Ok(Self {
            client,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            from: config.from.clone(),
            messaging_service_sid: config.messaging_service_sid.clone(),
        })
    }
}

#[async_trait::async_trait]
impl SmsSender for TwilioSms {
    async fn send(&self, to: &str, body: &str) -> Result<String, SmsError> {
        use secrecy::ExposeSecret;
        let to = format!("+{to}");
        let mut form = vec![("To", to.as_str()), ("Body", body)];
        match (&self.messaging_service_sid, &self.from) {
            (Some(sid), _) => form.push(("MessagingServiceSid", sid.as_str())),
            (None, Some(from)) => form.push(("From", from.as_str())),
            (None, None) => {}
        }
        let res = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsError::Provider(format!("request failed: {}", e.without_url())))?;
        let status = res.status();
        let json: serde_json::Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(SmsError::Provider(format!(
                "HTTP {status}, code {}",
                json["code"]
            )));
        }
        json["sid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SmsError::Provider("response without `sid`".into()))
    }
}

/// Normalizes a phone number to E.164 digits without `+` (GoTrue's storage
/// form): spaces, dashes, dots and parentheses are dropped; the result must
/// be 8 to 15 digits not starting with 0.
pub fn normalize_phone(phone: &str) -> Option<String> {
    let trimmed = phone.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    ((8..=15).contains(&digits.len()) && !digits.starts_with('0')).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+1 (555) 555-0100").as_deref(),
            Some("15555550100")
        );
        assert_eq!(
            normalize_phone("233 24 123 4567").as_deref(),
            Some("233241234567")
        );
        for bad in [
            "",
            "+",
            "12345",
            "0123456789",
            "+1555abc0100",
            "1234567890123456",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }
}
