//! Request headers PostgREST understands: `Prefer`, `Accept`, `Range`,
//! `Accept-Profile` / `Content-Profile`.

use actix_web::{HttpRequest, http::header};

use crate::error::{RestError, Result};

/// `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    /// Empty body (the default for writes).
    #[default]
    Minimal,
    /// Headers only (`Location`).
    HeadersOnly,
    /// The written rows.
    Representation,
}

/// `Prefer: resolution=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Upsert: update the conflicting row.
    MergeDuplicates,
    /// Upsert: keep the conflicting row.
    IgnoreDuplicates,
}

/// The parsed `Prefer` header (a comma list; unknown items are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `return=`.
    pub return_: Return,
    /// `count=exact|planned|estimated` (all computed exactly).
    pub count: bool,
    /// `resolution=`.
    pub resolution: Option<Resolution>,
    /// `missing=default`.
    pub missing_default: bool,
    /// The preferences that were applied, for `Preference-Applied`.
    pub applied: Vec<String>,
    /// `handling=strict`: unknown preferences are an error.
    pub strict: bool,
    /// `max-affected=N` (honoured with `handling=strict`).
    pub max_affected: Option<u64>,
    /// Preferences we do not understand.
    pub invalid: Vec<String>,
    /// `tx=rollback` (`Some(true)`) / `tx=commit` (`Some(false)`): honoured
    /// only when `rest.tx_end` allows overrides.
    pub tx: Option<bool>,
    /// `timezone=Area/City` (PostgreSQL reads; checked against
    /// `pg_timezone_names`).
    pub timezone: Option<String>,
}

impl Prefer {
    /// Parses every `Prefer` header of `req`.
    pub fn from_request(req: &HttpRequest) -> Self {
        let mut p = Prefer::default();
        for value in req.headers().get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',').map(str::trim) {
                let applied = match item {
                    "return=minimal" => {
                        p.return_ = Return::Minimal;
                        true
                    }
                    "return=headers-only" => {
                        p.return_ = Return::HeadersOnly;
                        true
                    }
                    "return=representation" => {
                        p.return_ = Return::Representation;
                        true
                    }
                    "count=exact" | "count=planned" | "count=estimated" => {
                        p.count = true;
                        true
                    }
                    "resolution=merge-duplicates" => {
                        p.resolution = Some(Resolution::MergeDuplicates);
                        true
                    }
                    "resolution=ignore-duplicates" => {
                        p.resolution = Some(Resolution::IgnoreDuplicates);
                        true
                    }
                    "missing=default" => {
                        p.missing_default = true;
                        true
                    }
                    "handling=strict" => {
                        p.strict = true;
                        true
                    }
                    "handling=lenient" | "" => false,
                    // Applied (or not) by the handler, which knows the config and backend.
                    "tx=commit" => {
                        p.tx = Some(false);
                        false
                    }
                    "tx=rollback" => {
                        p.tx = Some(true);
                        false
                    }
                    other
                        if other.strip_prefix("timezone=").is_some_and(|z| {
                            !z.is_empty()
                                && z.len() <= 64
                                && z.chars().all(|c| {
                                    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')
                                })
                        }) =>
                    {
                        p.timezone = other.strip_prefix("timezone=").map(str::to_owned);
                        false
                    }
                    other => match other
                        .strip_prefix("max-affected=")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                    {
                        Some(n) => {
                            p.max_affected = Some(n);
                            true
                        }
                        None => {
                            if p.invalid.len() < 16 {
                                p.invalid.push(other.chars().take(64).collect());
                            }
                            false
                        }
                    },
                };
                if applied && !p.applied.iter().any(|a| a == item) {
                    p.applied.push(item.to_owned());
                }
            }
        }
        p
    }
}

impl Prefer {
    /// Under `handling=strict`, unknown preferences are refused.
    ///
    /// # Errors
    /// [`RestError::InvalidPreferences`] (400 `PGRST122`).
    pub fn check(&self) -> Result<()> {
        if self.strict && !self.invalid.is_empty() {
            return Err(RestError::InvalidPreferences(self.invalid.join(", ")));
        }
        Ok(())
    }

    /// Records whether the preference `item` was applied: echoed in
    /// `Preference-Applied` when it was; under `handling=strict` an
    /// unapplied one is refused.
    ///
    /// # Errors
    /// [`RestError::InvalidPreferences`] (400 `PGRST122`).
    pub fn settle(&mut self, item: String, applied: bool) -> Result<()> {
        if applied {
            if !self.applied.contains(&item) {
                self.applied.push(item);
            }
            Ok(())
        } else if self.strict {
            Err(RestError::InvalidPreferences(item))
        } else {
            Ok(())
        }
    }

    /// Settles `tx=` and `timezone=` as not applied (endpoints that do not
    /// honour them: RPC).
    ///
    /// # Errors
    /// [`RestError::InvalidPreferences`] under `handling=strict`.
    pub fn settle_unsupported(&mut self) -> Result<()> {
        if let Some(tx) = self.tx {
            let item = if tx { "tx=rollback" } else { "tx=commit" };
            self.settle(item.to_owned(), false)?;
        }
        if let Some(zone) = self.timezone.clone() {
            self.settle(format!("timezone={zone}"), false)?;
        }
        Ok(())
    }

    /// Under `handling=strict`, more affected rows than `max-affected` are refused.
    ///
    /// # Errors
    /// [`RestError::MaxAffected`] (400 `PGRST124`), before anything is written.
    pub fn check_affected(&self, rows: usize) -> Result<()> {
        match self.max_affected {
            Some(max) if self.strict && rows as u64 > max => Err(RestError::MaxAffected { rows }),
            _ => Ok(()),
        }
    }
}

/// What the response body should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// A JSON array (the default).
    Json,
    /// One JSON object (`application/vnd.pgrst.object+json`).
    Object,
    /// `text/csv`.
    Csv,
}

impl Accept {
    /// Picks the first media type of `Accept` we can produce.
    ///
    /// # Errors
    /// [`RestError::NotAcceptable`] (406 `PGRST107`) when none fits.
    pub fn from_request(req: &HttpRequest) -> Result<Self> {
        let Some(value) = req.headers().get(header::ACCEPT) else {
            return Ok(Self::Json);
        };
        let value = value.to_str().unwrap_or_default();
        if value.trim().is_empty() {
            return Ok(Self::Json);
        }
        for item in value.split(',') {
            let media = item
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "application/json"
                | "*/*"
                | "application/*"
                | "application/vnd.pgrst.array+json" => {
                    return Ok(Self::Json);
                }
                "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
                    return Ok(Self::Object);
                }
                "text/csv" | "text/*" => return Ok(Self::Csv),
                _ => {}
            }
        }
        Err(RestError::NotAcceptable(value.chars().take(200).collect()))
    }
}

/// A `Range: a-b` request header (with `Range-Unit: items`, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeHeader {
    /// First row (0-based).
    pub first: u64,
    /// Last row, inclusive; `None` for open-ended.
    pub last: Option<u64>,
}

impl RangeHeader {
    /// Parses `Range`, when present.
    ///
    /// # Errors
    /// [`RestError::InvalidRange`] when malformed or `last < first`.
    pub fn from_request(req: &HttpRequest) -> Result<Option<Self>> {
        let Some(value) = req.headers().get(header::RANGE) else {
            return Ok(None);
        };
        if let Some(unit) = req.headers().get("range-unit")
            && unit.to_str().map(|u| u.trim() != "items").unwrap_or(true)
        {
            return Ok(None);
        }
        let invalid = || RestError::InvalidRange {
            details: "The Range header must be of the form first-last".into(),
        };
        let value = value.to_str().map_err(|_| invalid())?.trim();
        let value = value.strip_prefix("items=").unwrap_or(value);
        let (a, b) = value.split_once('-').ok_or_else(invalid)?;
        let first: u64 = a.trim().parse().map_err(|_| invalid())?;
        let last = match b.trim() {
            "" => None,
            b => Some(b.parse::<u64>().map_err(|_| invalid())?),
        };
        if last.is_some_and(|l| l < first) {
            return Err(RestError::InvalidRange {
                details: "The lower boundary must be lower than or equal to the upper boundary"
                    .into(),
            });
        }
        Ok(Some(Self { first, last }))
    }
}

/// Checks `Accept-Profile` (reads) or `Content-Profile` (writes): only `public`.
///
/// # Errors
/// [`RestError::SchemaNotExposed`] (406 `PGRST106`).
pub fn check_profile(req: &HttpRequest, write: bool) -> Result<()> {
    let name = if write {
        "content-profile"
    } else {
        "accept-profile"
    };
    match req.headers().get(name).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(v)) if v.trim() == "public" => Ok(()),
        Some(Ok(v)) => Err(RestError::SchemaNotExposed(v.chars().take(63).collect())),
        Some(Err(_)) => Err(RestError::SchemaNotExposed(String::new())),
    }
}
