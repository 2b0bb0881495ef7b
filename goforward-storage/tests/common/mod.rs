//! Shared harness of the storage integration tests: a real server with the
//! storage plugin on SQLite or PostgreSQL, local-filesystem backend by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use goforward_core::testing::{self, TestApp};
use goforward_storage::{BackendConfig, Bucket, Storage};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

pub const U1: &str = "11111111-1111-4111-8111-111111111111";
pub const U2: &str = "22222222-2222-4222-8222-222222222222";

/// A running app plus helpers.
pub struct H {
    pub app: TestApp,
    pub memory: bool,
}

/// Who calls.
#[derive(Clone, Copy, Debug)]
pub enum As {
    Nobody,
    Anon,
    Service,
    User(&'static str),
}

pub fn storage(memory: bool) -> Storage {
    let s = Storage::new()
        .bucket(
            Bucket::public("pub")
                .allowed_mime_types(["image/*", "text/plain"])
                .file_size_limit(64 * 1024),
        )
        .bucket(Bucket::private("priv").file_size_limit(4 << 20))
        .bucket(Bucket::public("open"));
    if memory {
        s.backend(BackendConfig::Memory)
    } else {
        s
    }
}

/// Runs `scenario` against a fresh app on SQLite (`pg == false`) or
/// PostgreSQL (skipped without `GOFORWARD_TEST_DATABASE_URL`, failing under CI).
pub async fn run<F, Fut>(pg: bool, memory: bool, name: &str, scenario: F)
where
    F: FnOnce(Arc<H>) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(pg, storage(memory), memory, name, scenario).await;
}

/// As [`run`] with a given plugin; `remote` skips the local-file checks.
pub async fn run_with<F, Fut>(pg: bool, plugin: Storage, remote: bool, name: &str, scenario: F)
where
    F: FnOnce(Arc<H>) -> Fut,
    Fut: Future<Output = ()>,
{
    run_configured(
        pg,
        plugin,
        remote,
        name,
        serde_json::json!({"max_file_size": "12MiB"}),
        scenario,
    )
    .await;
}

/// As [`run_with`] with the given `[storage]` section.
pub async fn run_configured<F, Fut>(
    pg: bool,
    plugin: Storage,
    remote: bool,
    name: &str,
    section: Value,
    scenario: F,
) where
    F: FnOnce(Arc<H>) -> Fut,
    Fut: Future<Output = ()>,
{
    if pg && testing::postgres_url_or_skip(name).is_none() {
        return;
    }
    let memory = remote;
    let app = TestApp::builder()
        .postgres(pg)
        .config(|c| {
            c.sections.insert("storage".into(), section);
        })
        .plugin(plugin)
        .start()
        .await
        .expect("app starts");
    let h = Arc::new(H { app, memory });
    scenario(h.clone()).await;
    let h = Arc::try_unwrap(h)
        .ok()
        .expect("scenario released the harness");
    h.app.stop().await;
}

/// One test per backend: `both!(name, scenario_fn)` (local filesystem);
/// `both!(name, scenario_fn, memory)` (in-memory object store).
#[macro_export]
macro_rules! both {
    ($name:ident, $scenario:path) => {
        $crate::both!($name, $scenario, false);
    };
    ($name:ident, $scenario:path, memory) => {
        $crate::both!($name, $scenario, true);
    };
    ($name:ident, $scenario:path, $memory:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::run(
                    false,
                    $memory,
                    concat!(stringify!($name), " (sqlite)"),
                    $scenario,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::run(
                    true,
                    $memory,
                    concat!(stringify!($name), " (postgres)"),
                    $scenario,
                )
                .await;
            }
        }
    };
}

impl H {
    pub fn url(&self, path: &str) -> String {
        self.app.url(&format!("/storage/v1{path}"))
    }

    pub fn token(&self, who: As) -> Option<String> {
        match who {
            As::Nobody => None,
            As::Anon => Some(self.app.anon_key()),
            As::Service => Some(self.app.service_key()),
            As::User(id) => Some(self.app.user_token(id)),
        }
    }

    pub fn req(&self, method: Method, path: &str, who: As) -> RequestBuilder {
        let mut r = self.app.client().request(method, self.url(path));
        if !matches!(who, As::Nobody) {
            r = r.header("apikey", self.app.anon_key());
        }
        if let Some(t) = self.token(who) {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends `method path` over a raw TCP connection, byte for byte (no URL
    /// normalisation: `%2e%2e` reaches the server as sent); `(status, json)`.
    pub async fn raw(&self, method: &str, path: &str, who: As, body: &[u8]) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.app.base_url.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let mut head = format!(
            "{method} /storage/v1{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !matches!(who, As::Nobody) {
            head.push_str(&format!("apikey: {}\r\n", self.app.anon_key()));
        }
        if let Some(t) = self.token(who) {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Sends and returns `(status, json body or Null)`.
    pub async fn send(&self, r: RequestBuilder) -> (u16, Value) {
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Raw upload (`POST`, `x-upsert` as given).
    pub async fn upload(
        &self,
        who: As,
        bucket: &str,
        name: &str,
        body: impl Into<reqwest::Body>,
        content_type: &str,
        upsert: bool,
    ) -> (u16, Value) {
        self.send(
            self.req(Method::POST, &format!("/object/{bucket}/{name}"), who)
                .header("content-type", content_type)
                .header("x-upsert", if upsert { "true" } else { "false" })
                .body(body),
        )
        .await
    }

    /// A `multipart/form-data` body as storage-js builds it from a Blob:
    /// text fields first, then the file part named `""`. Returns (content type, body).
    pub fn form(fields: &[(&str, &str)], file: &[u8], file_type: &str) -> (String, Vec<u8>) {
        let boundary = "----goforwardtestboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"\"; filename=\"blob\"\r\nContent-Type: {file_type}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    /// GET an object; `(status, headers, bytes)`.
    pub async fn download(
        &self,
        who: As,
        path: &str,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let res = self
            .req(Method::GET, path, who)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.expect("body").to_vec())
    }

    /// Number of objects rows.
    pub async fn rows(&self) -> usize {
        use goforward_core::sea_orm::{EntityTrait, PaginatorTrait};
        goforward_storage::entity::object::Entity::find()
            .count(self.app.db())
            .await
            .unwrap() as usize
    }

    /// The local backend's root.
    pub fn root(&self) -> PathBuf {
        self.app.gf.config().data_dir.join("storage")
    }

    /// Files under the local backend's root (staging files included).
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        out.push(p);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root(), &mut out);
        out
    }

    /// Asserts the storage error shape and logical code.
    pub fn assert_error(&self, (status, body): &(u16, Value), want_status: u16, want_code: &str) {
        assert_eq!(*status, want_status, "status; body {body}");
        assert_eq!(
            body["statusCode"],
            want_status.to_string(),
            "statusCode in {body}"
        );
        assert_eq!(body["code"], want_code, "code in {body}");
        assert!(body["error"].is_string(), "error in {body}");
        assert!(body["message"].is_string(), "message in {body}");
    }
}
