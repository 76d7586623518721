//! Issue 12, defect 5: out of file descriptors, the accept loop spun at
//! ≈ 94% of a core and logged nothing.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::server::{Server, list_request};

const OPEN_FILES: u32 = 64;
const CONNECTIONS: usize = 150;
const MEASURED_FOR: Duration = Duration::from_secs(2);

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_logs_and_recovers() {
    let server = Server::start_with_open_files(&[], OPEN_FILES);
    let at_start = server.open_files();
    assert_eq!(server.open_files_limit(), OPEN_FILES.to_string());

    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        connections.push(TcpStream::connect(server.addr).await.expect("connects"));
    }
    // Time for the server to take what it can and run out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_files = server.open_files();
    let before = server.cpu_seconds();
    tokio::time::sleep(MEASURED_FOR).await;
    let used = server.cpu_seconds() - before;
    let share = used / MEASURED_FOR.as_secs_f64();
    eprintln!(
        "out of file descriptors (limit {OPEN_FILES}, {at_start} open at start, {open_files} with \
         {CONNECTIONS} connections waiting): the server used {:.1}% of a core over {MEASURED_FOR:?}",
        share * 100.0
    );
    assert!(
        share < 0.20,
        "the accept loop spins: {:.1}% of a core",
        share * 100.0
    );
    assert!(
        server
            .wait_for_log("cannot accept connections", 1, Duration::from_secs(3))
            .await,
        "no warning about failing accepts; the log:\n{}",
        server.log()
    );

    drop(connections);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    loop {
        match Server::lazy_client(server.addr)
            .list_comments(list_request("recovered"))
            .await
        {
            Ok(_) => break,
            Err(status) => assert!(
                Instant::now() < deadline,
                "no call succeeds after the connections closed: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "after the connections closed, a new call succeeded within {:?}",
        started.elapsed()
    );
}
