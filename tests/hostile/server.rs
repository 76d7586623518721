#![allow(dead_code)] // shared with tests/replicas, which use other parts
//! The `commentd` binary as a child process, measured from outside: its
//! resident memory and CPU time come from `/proc/PID`, so the test's own
//! clients are not counted.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use commentd::api::pb::{self, comment_service_client::CommentServiceClient};
use tempfile::TempDir;
use tonic::transport::Channel;

pub type Client = CommentServiceClient<Channel>;

/// How long the binary may take to start listening (a debug build on a
/// busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `commentd serve`, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The data folder (removed on drop unless the test gave it).
    pub data_dir: std::path::PathBuf,
    _data: Option<TempDir>,
}

impl Server {
    /// Serves on an ephemeral loopback port with a fresh data folder and
    /// the given extra flags.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, None, None)
    }

    /// Like [`Server::start`], with the data folder `data_dir` (kept).
    pub fn start_in(data_dir: &std::path::Path, args: &[&str]) -> Self {
        Self::spawn(args, None, Some(data_dir))
    }

    /// Like [`Server::start`], with at most `limit` open file descriptors
    /// (`ulimit -n`, then `exec`: the child's PID is the server's).
    pub fn start_with_open_files(args: &[&str], limit: u32) -> Self {
        Self::spawn(args, Some(limit), None)
    }

    fn spawn(args: &[&str], open_files: Option<u32>, data_dir: Option<&std::path::Path>) -> Self {
        let (data, data_dir) = match data_dir {
            Some(dir) => (None, dir.to_owned()),
            None => {
                let data = TempDir::new().expect("a temporary folder");
                let dir = data.path().join("data");
                (Some(data), dir)
            }
        };
        let binary = std::env::var("HOSTILE_COMMENTD_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_commentd").to_owned());
        let mut command = match open_files {
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("COMMENTD_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Only the flags given here apply.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("COMMENTD_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("the commentd binary starts");

        // Keep reading stderr (so the child never blocks on a full pipe)
        // into a buffer the tests search; report the listening address.
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, listening) = mpsc::channel();
        let buffer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("commentd listening on ").nth(1) {
                    let _ = found.send(addr.trim().to_owned());
                }
                let mut buffer = buffer.lock().unwrap();
                buffer.push_str(&line);
                buffer.push('\n');
            }
        });
        let addr = match listening.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr.parse().expect("a socket address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "commentd did not start listening; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Self {
            child,
            addr,
            log,
            data_dir,
            _data: data,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("the server is running");
        // The command name (field 2) is in parentheses and may hold spaces;
        // utime and stime are fields 14 and 15.
        let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ticks as f64 / per_second as f64
    }

    /// Open file descriptors.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// The soft limit on open file descriptors, as the kernel reports it.
    pub fn open_files_limit(&self) -> String {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid()))
            .expect("the server is running");
        limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(3))
            .unwrap_or("?")
            .to_owned()
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` at least `count` times.
    pub async fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new HTTP/2 connection to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connects")
    }

    /// A CommentService client on a connection of its own.
    pub async fn client(&self) -> Client {
        CommentServiceClient::new(self.channel().await)
    }

    /// A client that connects on its first call (and reports a failure to
    /// connect as that call's status).
    pub fn lazy_client(addr: SocketAddr) -> Client {
        CommentServiceClient::new(
            Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect_lazy(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A comment that passes screening.
pub fn clean_submission(article: &str, text: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        article_id: article.to_owned(),
        author_name: "Reader".to_owned(),
        text: text.to_owned(),
        client_id: "hostile-tests".to_owned(),
        ..Default::default()
    }
}

pub fn subscribe_request(article: &str) -> pb::SubscribeCommentsRequest {
    pb::SubscribeCommentsRequest {
        article_id: article.to_owned(),
        after_comment_id: String::new(),
    }
}

/// A call that needs the server but no data: an empty listing.
pub fn list_request(article: &str) -> pb::ListCommentsRequest {
    pb::ListCommentsRequest {
        article_id: article.to_owned(),
        page_size: 10,
        page_token: String::new(),
    }
}

/// KiB to bytes per item, for reports.
pub fn bytes_per(kib: i64, items: usize) -> i64 {
    kib * 1024 / items as i64
}

/// The `q`-quantile (0–1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}
