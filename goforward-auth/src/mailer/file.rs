//! The file outbox: one `.eml` file per message under `<data_dir>/outbox`.

use std::path::PathBuf;

use super::{Email, MailError, Mailer, build_message};

/// Writes every message as an `.eml` file (RFC 5322) into a directory, for
/// local development and tests (read links and codes from the files).
/// Files are named `<unix-micros>-<uuid>.eml`, so they sort by time.
#[derive(Debug, Clone)]
pub struct FileOutbox {
    dir: PathBuf,
}

impl FileOutbox {
    /// An outbox writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The outbox directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[async_trait::async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let bytes = build_message(email)?.formatted();
        tokio::fs::create_dir_all(&self.dir).await?;
        let name = format!(
            "{:016}-{}.eml",
            chrono::Utc::now().timestamp_micros(),
            uuid::Uuid::new_v4().simple()
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, self.dir.join(&name)).await?;
        tracing::info!(kind = email.kind.as_str(), file = %name, "email written to the outbox");
        Ok(())
    }
}
