//! Database faults give a fast 503 and recover (checklist item 37): the app
//! reaches PostgreSQL through a TCP proxy this test cuts and restores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use goforward::testing;
use tokio::{net::TcpListener, sync::Mutex, task::JoinHandle};

struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, upstream: String) -> (Self, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns = tasks.clone();
        let up = upstream.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let up = up.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns.lock().await.push(task);
            }
        });
        (
            Self {
                port,
                upstream,
                tasks,
            },
            acceptor,
        )
    }

    async fn cut(&self, acceptor: JoinHandle<()>) {
        acceptor.abort();
        let _ = acceptor.await;
        for t in self.tasks.lock().await.drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn database_outage_gives_fast_503_then_recovers() {
    let Some(admin) = testing::postgres_url_or_skip("database faults") else {
        return;
    };
    let admin_url = url::Url::parse(&admin).unwrap();
    let upstream = format!(
        "{}:{}",
        admin_url.host_str().unwrap(),
        admin_url.port().unwrap_or(5432)
    );
    let (proxy, acceptor) = Proxy::start(0, upstream).await;

    let (db_url, name) = testing::create_postgres_database(&admin).await.unwrap();
    let mut via_proxy = url::Url::parse(&db_url).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();

    let app = testing::TestApp::builder()
        .postgres(false)
        .config(|c| {
            c.database.url = Some(via_proxy.to_string());
            c.database.acquire_timeout_ms = 500;
            c.database.connect_timeout_ms = 500;
        })
        .start()
        .await
        .unwrap();
    let ready = || async {
        app.client()
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(ready().await.status(), 200);

    proxy.cut(acceptor).await;
    let started = std::time::Instant::now();
    let res = ready().await;
    let elapsed = started.elapsed();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"], false);
    // Not a timing assertion on performance: a hung worker would take the client's default (none).
    assert!(
        elapsed < Duration::from_secs(10),
        "answered instead of hanging ({elapsed:?})"
    );
    // Liveness is unaffected.
    assert_eq!(
        app.client()
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let (_proxy2, acceptor2) = Proxy::start(proxy.port, proxy.upstream.clone()).await;
    let mut recovered = false;
    for _ in 0..50 {
        if ready().await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "ready again after the database came back");
    acceptor2.abort();
    app.stop().await;
    testing::drop_postgres_database(&admin, &name)
        .await
        .unwrap();
}
