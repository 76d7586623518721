//! `commentd healthcheck`, the container health probe.

use std::process::Command;

use crate::helpers::ServerProcess;

fn healthcheck(listen: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_commentd"))
        .args(["healthcheck", "--listen", listen, "--timeout-ms", "2000"])
        .env_remove("COMMENTD_LISTEN")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_serving_server_and_1_otherwise() {
    let temp = tempfile::TempDir::new().unwrap();
    let server = ServerProcess::start(temp.path(), &[]);
    let output = healthcheck(&server.addr.to_string());
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("SERVING"));
    // An unspecified host means this machine.
    let output = healthcheck(&format!("0.0.0.0:{}", server.addr.port()));
    assert!(output.status.success(), "{output:?}");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let output = healthcheck(&closed.to_string());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}
