//! Test support: start the real Paraply server on `127.0.0.1:0` over a fresh SQLite file
//! or a fresh PostgreSQL database, and speak HTTP to it.
//!
//! PostgreSQL runs when `PARAPLY_TEST_DATABASE_URL` names a server; each server gets its
//! own database, so runs never collide. Without it, every PostgreSQL test says loudly
//! that it was skipped.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use paraply_server::config::{AuthMode, FileConfig};
use paraply_server::{Config, open_stores, run};
use paraply_store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use paraply_store_sql::testing::{POSTGRES_URL_VAR, PostgresTestDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres(PostgresTestDatabase),
}

impl TestDatabase {
    /// `None`, after saying so on stderr, for PostgreSQL without a server configured.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let name = format!("paraply_e2e_{}", uuid::Uuid::new_v4().simple());
                let path = std::env::temp_dir()
                    .join("paraply-tests")
                    .join(format!("{name}.db"));
                Some(TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::File(path),
                })
            }
            Backend::Postgres => {
                let database = PostgresTestDatabase::create().await?;
                Some(TestDatabase {
                    url: database.url.clone(),
                    cleanup: Cleanup::Postgres(database),
                })
            }
        }
    }

    /// Best effort: a leftover test database or file is harmless.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres(database) => database.remove().await,
        }
    }
}

/// One running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub root: String,
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A server with its own fresh database.
pub struct TestBed {
    pub server: TestServer,
    pub database: TestDatabase,
}

impl TestBed {
    pub async fn start(backend: Backend) -> Option<TestBed> {
        Self::start_with(backend, FileConfig::default()).await
    }

    pub async fn start_with(backend: Backend, file: FileConfig) -> Option<TestBed> {
        let database = TestDatabase::create(backend).await?;
        let server = TestServer::start(&database.url, file).await;
        Some(TestBed { server, database })
    }

    pub async fn finish(self) {
        self.server.stop().await;
        self.database.remove().await;
    }
}

impl TestServer {
    /// Starts a server (a "node") on an existing database, with `--auth none`.
    pub async fn start(database_url: &str, file: FileConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        TestServer::start_on(listener, database_url, file, AuthMode::None).await
    }

    /// Starts a server on a bound listener with the given settings.
    pub async fn start_on(
        listener: TcpListener,
        database_url: &str,
        file: FileConfig,
        auth: AuthMode,
    ) -> TestServer {
        let address = listener.local_addr().expect("local address");
        let config = Config {
            listen: address,
            database_url: database_url.to_owned(),
            auth,
            file,
        };
        let stores = open_stores(&config).await.expect("open the test database");
        let store = stores.resources.clone();
        let (tx, rx) = oneshot::channel::<()>();

        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            run(listener, stores, &config, shutdown)
                .await
                .expect("server runs");
        });
        let root = format!("http://{address}");
        TestServer {
            base: format!("{root}/fhir"),
            root,
            client: reqwest::Client::new(),
            store,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful shutdown: waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(self.request(reqwest::Method::GET, path).send().await).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Reply::from(self.request(reqwest::Method::DELETE, path).send().await).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> Reply {
        Reply::send(
            self.request(method, path)
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await
    }

    /// Creates a resource and returns its server-assigned id.
    pub async fn create(&self, resource: &Value) -> String {
        let resource_type = resource["resourceType"].as_str().expect("resourceType");
        let reply = self.post(resource_type, resource).await;
        assert_eq!(reply.status, 201, "create {resource_type}: {}", reply.text);
        reply.body["id"]
            .as_str()
            .expect("id in the created resource")
            .to_owned()
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The parsed JSON body, `Value::Null` when empty.
    pub body: Value,
}

impl Reply {
    pub async fn send(request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await).await
    }

    async fn from(response: reqwest::Result<reqwest::Response>) -> Reply {
        let response = response.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OperationOutcome in FHIR JSON and returns its first issue.
    pub fn outcome_issue(&self) -> &Value {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "expected an OperationOutcome, got {} {}",
            self.status, self.text
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/fhir+json")),
            "OperationOutcome must be application/fhir+json"
        );
        &self.body["issue"][0]
    }
}

/// Runs a test body against a fresh server on each backend: `mod name { fn sqlite; fn
/// postgres }`. The PostgreSQL variant passes, saying so loudly, when no server is set.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        $crate::on_both_backends_with!($name, paraply_server::config::FileConfig::default(), $body);
    };
}

/// [`on_both_backends!`] with the server's settings.
#[macro_export]
macro_rules! on_both_backends_with {
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run_on(backend: $crate::Backend) {
                let Some(bed) = $crate::TestBed::start_with(backend, $config).await else {
                    return;
                };
                ($body)(&bed.server).await;
                bed.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run_on($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run_on($crate::Backend::Postgres).await;
            }
        }
    };
}

/// The official R4 reference data, when `../shared` is present beside the repository.
pub fn shared_fhir_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-r4");
    if dir.is_dir() {
        Some(dir)
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is absent; official R4 examples not used",
            dir.display()
        );
        None
    }
}
