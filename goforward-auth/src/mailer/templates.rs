//! Message templates (minijinja), overridable by the host.

use std::collections::BTreeMap;

use minijinja::Environment;
use serde::Serialize;

/// The kinds of auth email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EmailKind {
    /// Confirm a new account (`signup`).
    Confirmation,
    /// Reset a password (`recovery`).
    Recovery,
    /// Sign in with a link or code (`magiclink`).
    MagicLink,
    /// Confirm a new email address (`email_change`).
    EmailChange,
    /// Join by invitation (`invite`).
    Invite,
    /// Confirm a sensitive change (`reauthentication`).
    Reauthentication,
}

impl EmailKind {
    /// Template name: `confirmation`, `recovery`, `magic_link`, `email_change`, `invite`, `reauthentication`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Recovery => "recovery",
            Self::MagicLink => "magic_link",
            Self::EmailChange => "email_change",
            Self::Invite => "invite",
            Self::Reauthentication => "reauthentication",
        }
    }

    const ALL: [EmailKind; 6] = [
        Self::Confirmation,
        Self::Recovery,
        Self::MagicLink,
        Self::EmailChange,
        Self::Invite,
        Self::Reauthentication,
    ];

    fn defaults(self) -> (&'static str, &'static str) {
        match self {
            Self::Confirmation => (
                "Confirm Your Signup",
                "Confirm your signup\n\nFollow this link to confirm your account:\n{{ confirmation_url }}\n\nOr enter this code: {{ token }}\n",
            ),
            Self::Recovery => (
                "Reset Your Password",
                "Reset your password\n\nFollow this link to reset the password of {{ email }}:\n{{ confirmation_url }}\n\nOr enter this code: {{ token }}\n",
            ),
            Self::MagicLink => (
                "Your Magic Link",
                "Sign in\n\nFollow this link to sign in:\n{{ confirmation_url }}\n\nOr enter this code: {{ token }}\n",
            ),
            Self::EmailChange => (
                "Confirm Email Change",
                "Confirm the change of your email from {{ email }} to {{ new_email }}:\n{{ confirmation_url }}\n\nOr enter this code: {{ token }}\n",
            ),
            Self::Invite => (
                "You have been invited",
                "You have been invited to create an account on {{ site_url }}.\nFollow this link to accept the invite:\n{{ confirmation_url }}\n\nOr enter this code: {{ token }}\n",
            ),
            Self::Reauthentication => (
                "Confirm Reauthentication",
                "Confirm it is you\n\nTo confirm the change, enter this code: {{ token }}\n",
            ),
        }
    }
}

/// What a template can use.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    /// The site URL.
    pub site_url: String,
    /// The verification link (`…/auth/v1/verify?token=…&type=…&redirect_to=…`).
    pub confirmation_url: String,
    /// The one-time code.
    pub token: String,
    /// The hashed token carried by the link.
    pub token_hash: String,
    /// The recipient's current address.
    pub email: String,
    /// The new address (email change).
    pub new_email: String,
    /// Where the browser goes after verification.
    pub redirect_to: String,
}

/// Subject and body templates for every [`EmailKind`].
#[derive(Debug, Clone)]
pub struct Templates {
    sources: BTreeMap<EmailKind, (String, String)>,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            sources: EmailKind::ALL
                .iter()
                .map(|k| {
                    let (s, b) = k.defaults();
                    (*k, (s.to_owned(), b.to_owned()))
                })
                .collect(),
        }
    }
}

impl Templates {
    /// Replaces the subject and body templates of `kind`.
    ///
    /// # Errors
    /// The minijinja syntax error when a template does not parse.
    pub fn set(
        &mut self,
        kind: EmailKind,
        subject: &str,
        body: &str,
    ) -> Result<(), minijinja::Error> {
        let mut env = Environment::new();
        env.add_template("subject", subject)?;
        env.add_template("body", body)?;
        self.sources
            .insert(kind, (subject.to_owned(), body.to_owned()));
        Ok(())
    }

    /// Renders `(subject, body)` of `kind`.
    ///
    /// # Errors
    /// The minijinja error when rendering fails.
    pub fn render(
        &self,
        kind: EmailKind,
        ctx: &TemplateContext,
    ) -> Result<(String, String), minijinja::Error> {
        let (subject, body) = self.sources.get(&kind).cloned().unwrap_or_else(|| {
            let (s, b) = kind.defaults();
            (s.to_owned(), b.to_owned())
        });
        let mut env = Environment::new();
        env.add_template_owned("subject", subject)?;
        env.add_template_owned("body", body)?;
        let subject = env.get_template("subject")?.render(ctx)?;
        let body = env.get_template("body")?.render(ctx)?;
        Ok((subject.trim().to_owned(), body))
    }
}
