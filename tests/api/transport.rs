//! TCP settings of the connections the server accepts.

use std::{
    net::SocketAddr,
    os::fd::{BorrowedFd, RawFd},
    time::Duration,
};

use crate::helpers::spawn_app;

/// TCP_NODELAY of this process's socket whose peer is `peer`, if any.
fn nodelay_of_socket_with_peer(peer: SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for the two calls below; if
        // the server closes it meanwhile the calls fail (or read another
        // socket, whose peer then does not match), nothing is freed twice.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        if socket.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer) {
            return socket.tcp_nodelay().ok();
        }
    }
    None
}

/// Without TCP_NODELAY a response written in two segments waits for the
/// client's delayed ACK: about 44 ms a call with one call in flight.
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let app = spawn_app().await;
    let client = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    let mut found = None;
    for _ in 0..100 {
        found = nodelay_of_socket_with_peer(client_addr);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        found,
        Some(true),
        "the server's side of the connection (None: not found)"
    );
}
