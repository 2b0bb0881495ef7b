//! Password policy and bcrypt hashing (always off the async workers).

use crate::error::{AuthError, Result};

/// bcrypt's input limit: longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Checks `password` against the policy: at least `min_len` characters and
/// at most 72 bytes of UTF-8.
///
/// # Errors
/// [`AuthError::WeakPassword`] (422, reason `length`) when too short,
/// [`AuthError::Validation`] (400) when longer than 72 bytes.
pub fn check_policy(password: &str, min_len: usize) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::Validation(format!(
            "Password cannot be longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.chars().count() < min_len {
        return Err(AuthError::WeakPassword {
            message: format!("Password should be at least {min_len} characters."),
            reasons: vec!["length"],
        });
    }
    Ok(())
}

/// Hashes `password` with bcrypt at `cost` on the blocking pool.
///
/// # Errors
/// [`AuthError::Validation`] for passwords over 72 bytes; [`AuthError::Internal`]
/// if hashing fails.
pub async fn hash(password: &str, cost: u32) -> Result<String> {
    // bcrypt uses at most 72 bytes; longer input is refused here, never truncated.
    // (bcrypt's `non_truncating_*` also refuses exactly 72 bytes because it
    // counts the C terminator, which would turn away valid 72-byte passwords.)
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::Validation(format!(
            "Password cannot be longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let password = password.to_owned();
    on_bcrypt_pool(move || bcrypt::hash(password.as_bytes(), cost))
        .await
        .ok_or_else(|| AuthError::Internal("hash task failed".into()))?
        .map_err(|e| AuthError::Internal(format!("bcrypt: {e}")))
}

type Job = Box<dyn FnOnce() + Send>;

/// The nice value of the bcrypt threads (Linux): the lowest priority a
/// normal thread can have (weight 15 against 1024 at nice 0), so a request
/// thread that wakes gets the core almost at once (see docs/auth.md, *Bench*).
const BCRYPT_NICE: i32 = 19;

/// The bcrypt pool: one thread per core, at the lowest scheduling priority
/// (nice [`BCRYPT_NICE`] on Linux), fed by a queue. Hashing saturates the cores when
/// nothing else runs, while the async workers (and the database threads)
/// preempt it as soon as they have work, so other requests' latency does
/// not grow with the sign-in load; and never more hashes run at once than
/// there are cores.
fn bcrypt_pool() -> Option<&'static std::sync::mpsc::SyncSender<Job>> {
    static POOL: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Job>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(1024);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("goforward-bcrypt-{i}"))
                .spawn(move || {
                    #[cfg(target_os = "linux")]
                    if let Err(err) =
                        rustix::process::setpriority_process(
                            Some(rustix::thread::gettid()),
                            BCRYPT_NICE,
                        )
                    {
                        tracing::debug!(error = %err, "could not lower the bcrypt thread's priority");
                    }
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job drops its reply channel; the thread lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(err) => tracing::warn!(error = %err, "could not start a bcrypt thread"),
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// Runs `f` on the bcrypt pool (or, if it could not start, tokio's
/// blocking pool); `None` if the job failed.
async fn on_bcrypt_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let Some(pool) = bcrypt_pool() else {
        return tokio::task::spawn_blocking(f).await.ok();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(f());
    });
    match pool.try_send(job) {
        Ok(()) => {}
        // A full queue blocks only a blocking-pool thread, never a worker.
        Err(std::sync::mpsc::TrySendError::Full(job)) => {
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || pool.send(job))
                .await
                .ok()?
                .ok()?;
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return None,
    }
    answer.await.ok()
}

static VERIFICATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many bcrypt verifications this process has run (for metrics, and for
/// the test that known and unknown accounts cost the same bcrypt work).
pub fn verifications() -> u64 {
    VERIFICATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Verifies `password` against a stored bcrypt hash on the blocking pool.
/// Over-long passwords and malformed hashes simply do not match.
pub async fn verify(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    VERIFICATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let password = password.to_owned();
    let hash = hash.to_owned();
    on_bcrypt_pool(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// The cost a stored bcrypt hash was made with (`$2b$12$…` → 12).
pub fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2).and_then(|c| c.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn policy_limits_bytes_not_chars() {
        assert!(check_policy(&"a".repeat(72), 8).is_ok());
        assert!(matches!(
            check_policy(&"a".repeat(73), 8),
            Err(AuthError::Validation(_))
        ));
        assert!(check_policy(&"€".repeat(24), 8).is_ok());
        assert!(matches!(
            check_policy(&"€".repeat(25), 8),
            Err(AuthError::Validation(_))
        ));
        assert!(matches!(
            check_policy("short", 8),
            Err(AuthError::WeakPassword { .. })
        ));
    }

    #[tokio::test]
    async fn hash_verify_round_trip_and_no_truncation() {
        let base = "b".repeat(72);
        let h = hash(&base, 4).await.unwrap();
        assert_eq!(cost_of(&h), Some(4));
        assert!(verify(&base, &h).await);
        assert!(!verify(&format!("{base}x"), &h).await);
        assert!(hash(&format!("{base}x"), 4).await.is_err());
        // Two passwords differing only in the last (72nd) byte do not match.
        let other = format!("{}c", "b".repeat(71));
        assert!(!verify(&other, &h).await);
        assert!(!verify("wrong", &h).await);
        assert!(!verify("anything", "not-a-bcrypt-hash").await);
        assert!(!verify("anything", "$2b$04$short").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_runs_more_jobs_than_threads_and_answers_each() {
        let h = hash("right password", 4).await.unwrap();
        let mut jobs = Vec::new();
        for i in 0..40 {
            let h = h.clone();
            jobs.push(tokio::spawn(async move {
                let guess = if i % 2 == 0 {
                    "right password"
                } else {
                    "wrong"
                };
                (i, verify(guess, &h).await)
            }));
        }
        for job in jobs {
            let (i, matched) = job.await.unwrap();
            assert_eq!(matched, i % 2 == 0, "job {i}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Arbitrary stored "hashes" (including truncated and malformed
        /// bcrypt strings) never panic and never verify.
        #[test]
        fn verify_never_panics_on_garbage(hash in "(\\$2[abxy]\\$(0[0-9])?\\$)?[ -~]{0,80}", pw in "[ -~]{0,80}") {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            proptest::prop_assert!(!rt.block_on(verify(&pw, &hash)));
        }

        /// The policy check never panics on arbitrary Unicode.
        #[test]
        fn policy_never_panics(pw in "\\PC{0,100}") {
            let _ = check_policy(&pw, 8);
        }
    }
}
