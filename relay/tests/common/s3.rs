//! An S3-compatible server on loopback for the S3 blob store's tests: `moto_server` from the PyPI
//! package `moto[server]`, which `cargo xtask test` installs into `.tools/s3-venv` (or
//! `DOORLESS_MOTO_SERVER` names a `moto_server`). One server per test binary, with one bucket; each
//! test uses a prefix of its own. The server runs under a small `sh` that kills it when the test
//! process's end closes its stdin. moto keeps every object in memory: tests use small blobs.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The bucket every test of a binary shares.
pub const BUCKET: &str = "doorless-test";

/// The `moto_server` program: `DOORLESS_MOTO_SERVER`, or the one `cargo xtask test` installs.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("DOORLESS_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/s3-venv/bin/moto_server");
    assert!(
        path.exists(),
        "no moto_server: run `cargo xtask test` (it installs PyPI moto[server] into .tools/s3-venv) \
         or set DOORLESS_MOTO_SERVER"
    );
    path
}

/// A running `moto_server` with [`BUCKET`] created.
pub struct Moto {
    port: u16,
    /// The `sh` guarding the server; its stdin closes when the test process ends.
    _guard: Mutex<Child>,
}

impl Moto {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static Moto {
        static SERVER: OnceLock<Moto> = OnceLock::new();
        SERVER.get_or_init(Moto::start)
    }

    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let guard = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" & read _; kill -9 $! 2>/dev/null"#)
            .arg(moto_server())
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Moto { port, _guard: Mutex::new(guard) };
        // Creating the bucket is also the readiness check: it succeeds once the server answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match moto.http("PUT", &format!("/{BUCKET}")) {
                Ok(status) => {
                    assert_eq!(status, 200, "creating the test bucket");
                    return moto;
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Err(err) => panic!("moto_server did not answer within 60 s: {err}"),
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The store's options for a fresh key prefix (one per relay under test, or shared by the
    /// relays of one test).
    pub fn options(&self) -> relay::blob::S3Options {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        relay::blob::S3Options {
            endpoint: self.endpoint(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            prefix: format!("t{}-{n}", std::process::id()),
            allow_http: true,
            credentials: Some(("test".into(), "test".into())),
        }
    }

    /// An unsigned request without a body (moto does not check signatures); the status code.
    fn http(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        reply
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP status line"))
    }
}
