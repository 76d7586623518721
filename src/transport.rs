//! Connections and streams: how many a peer may hold, and for how long.
//!
//! tonic serves what this module accepts. The accept loop caps the number
//! of open connections (one over the cap is closed at once, which clients
//! see as UNAVAILABLE) and backs off when accepting fails (out of file
//! descriptors: without the pause the loop would spin on the error). Each
//! connection carries a [`Connection`] record, visible to every call on it
//! through the request extensions; [`CallLimitLayer`] counts the calls and
//! streams open on it, on its address and in total, refusing one over a
//! limit with RESOURCE_EXHAUSTED, and a connection with nothing open for
//! the idle timeout is closed. (Keep-alive pings keep a connection alive at
//! the HTTP/2 level but do not count as use.) Half-open calls, whose
//! request never finishes arriving, end at the request timeout.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, codegen::http, transport::server::Connected};

use crate::{
    metrics::{self, Metrics},
    peer::{self, TrustedProxies},
};

/// Limits on what peers hold; see the README's table of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections, all peers together.
    pub max_connections: usize,
    /// Open connections from one address (IPv6: one /64; trusted proxies
    /// excepted).
    pub max_connections_per_address: usize,
    /// Live subscriptions on one connection.
    pub max_subscriptions_per_connection: usize,
    /// A connection with no call or stream open for this long is closed.
    pub idle_timeout: Duration,
}

/// What the server knows of one connection; shared by the calls on it.
#[derive(Debug)]
pub struct Connection {
    remote_addr: Option<SocketAddr>,
    /// Calls and streams in progress.
    open: AtomicUsize,
    subscriptions: AtomicUsize,
    /// When the last call began or ended.
    last_active: Mutex<Instant>,
}

impl Connection {
    fn new(remote_addr: Option<SocketAddr>) -> Self {
        Self {
            remote_addr,
            open: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
        }
    }

    /// The peer's address (a proxy's, when one forwards the calls).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// When the connection counts as idle from, if nothing is open.
    fn idle_since(&self) -> Option<Instant> {
        (self.open.load(Ordering::Acquire) == 0)
            .then(|| *self.last_active.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts a subscription on this connection, up to `max`.
    pub fn open_subscription(self: &Arc<Self>, max: usize) -> Option<SubscriptionSlot> {
        self.subscriptions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()?;
        Some(SubscriptionSlot(self.clone()))
    }

    /// Live subscriptions on this connection.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Acquire)
    }
}

/// A subscription's place on its connection, given back when dropped.
#[derive(Debug)]
pub struct SubscriptionSlot(Arc<Connection>);

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection info tonic puts in every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo(pub Arc<Connection>);

/// An accepted TCP connection, closed once idle for the timeout.
pub struct PeerStream {
    stream: TcpStream,
    connection: Arc<Connection>,
    idle_timeout: Duration,
    idle_check: Pin<Box<Sleep>>,
    _slot: ConnectionSlot,
}

/// A place among the open connections, given back when dropped.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
    metrics: Arc<Metrics>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        PeerInfo(self.connection.clone())
    }
}

impl PeerStream {
    /// Ready with an error once the connection has been idle for the
    /// timeout; otherwise re-arms the check for when it could be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.idle_check.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = match self.connection.idle_since() {
                Some(since) if now.duration_since(since) >= self.idle_timeout => {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle for too long",
                    ));
                }
                Some(since) => since + self.idle_timeout,
                None => now + self.idle_timeout,
            };
            self.idle_check.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Pending => self.poll_idle(cx).map(Err),
            ready => ready,
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Connections the kernel may queue before they are accepted (tokio's
/// default of 128 overflows in bursts; the kernel caps it at somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listening socket with a deep accept queue.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};

    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Pause after an accept error such as EMFILE before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this period for refused connections and
/// accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` for tonic, within `limits`, until
/// tonic drops the returned stream.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    trusted_proxies: TrustedProxies,
    metrics: Arc<Metrics>,
) -> ReceiverStream<io::Result<PeerStream>> {
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(accept_loop(
        listener,
        limits,
        trusted_proxies,
        metrics,
        sender,
    ));
    ReceiverStream::new(receiver)
}

async fn accept_loop(
    listener: TcpListener,
    limits: ConnectionLimits,
    trusted_proxies: TrustedProxies,
    metrics: Arc<Metrics>,
    sender: mpsc::Sender<io::Result<PeerStream>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = AddressCounts::default();
    let mut warnings = Warnings::default();
    loop {
        let accepted = tokio::select! {
            () = sender.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_transient(&error) => continue,
            Err(error) => {
                warnings.warn(|suppressed| {
                    tracing::warn!(%error, suppressed, "cannot accept connections; retrying shortly");
                });
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.refused_at_capacity("connections");
            warnings.warn(|suppressed| {
                tracing::warn!(
                    limit = limits.max_connections,
                    suppressed,
                    "connection limit reached; closing new connections"
                );
            });
            drop(stream);
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let address = remote_addr.ip().to_canonical();
        let address_slot = if trusted_proxies.is_trusted(address) {
            None
        } else {
            match per_address.take(peer::limit_key(address), limits.max_connections_per_address) {
                Some(slot) => Some(slot),
                None => {
                    metrics.refused_at_capacity("address_connections");
                    warnings.warn(|suppressed| {
                        tracing::warn!(
                            limit = limits.max_connections_per_address,
                            suppressed,
                            "connection limit per address reached; closing its new connections"
                        );
                    });
                    continue;
                }
            }
        };
        metrics.connections.inc();
        let slot = ConnectionSlot {
            _permit: permit,
            _address: address_slot,
            metrics: metrics.clone(),
        };
        let connection = Arc::new(Connection::new(Some(remote_addr)));
        let peer = PeerStream {
            stream,
            connection,
            idle_timeout: limits.idle_timeout,
            idle_check: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            _slot: slot,
        };
        if sender.send(Ok(peer)).await.is_err() {
            return;
        }
    }
}

/// Errors about one connection (already gone), not about the listener.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Rate-limits a repeated warning, counting what it held back.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warnings {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Limits on calls, checked before a request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Calls and streams in progress, all connections together.
    pub max_streams: usize,
    /// Unary calls in progress (each may hold up to a whole request
    /// message while it arrives), all connections together.
    pub max_calls: usize,
    /// Calls and streams in progress from one peer address (trusted
    /// proxies excepted).
    pub max_streams_per_address: usize,
    /// Time to receive a request and answer it (for a stream: to start
    /// answering).
    pub request_timeout: Duration,
}

/// Counts every call and stream (until its response body ends) on its
/// connection, its peer's address and in total, refuses one over a limit
/// with RESOURCE_EXHAUSTED before its request is read, and ends a call
/// that takes longer than the request timeout with CANCELLED (a request
/// that never finishes arriving included). Health checks are never
/// refused (an orchestrator must be able to ask while the server is busy).
///
/// It sits inside the CORS and gRPC-web layers, so browsers can read its
/// answers too.
#[derive(Clone)]
pub struct CallLimitLayer {
    limits: CallLimits,
    all: Arc<Semaphore>,
    unary: Arc<Semaphore>,
    per_address: AddressCounts,
    trusted_proxies: TrustedProxies,
    metrics: Arc<Metrics>,
}

impl CallLimitLayer {
    pub fn new(limits: CallLimits, trusted_proxies: TrustedProxies, metrics: Arc<Metrics>) -> Self {
        Self {
            limits,
            all: Arc::new(Semaphore::new(limits.max_streams)),
            unary: Arc::new(Semaphore::new(limits.max_calls)),
            per_address: AddressCounts::default(),
            trusted_proxies,
            metrics,
        }
    }

    /// Admits a call, or says which limit refuses it: the slots it holds
    /// until its response ends, and the unary-call permit it holds until
    /// its request is read and answered.
    fn admit(
        &self,
        path: &str,
        connection: Option<&Arc<Connection>>,
    ) -> Result<Admitted, (&'static str, String)> {
        if path == "/grpc.health.v1.Health/Check" {
            // One short answer; never refused.
            return Ok(Admitted {
                slots: Vec::new(),
                unary: None,
            });
        }
        let mut slots = Vec::new();
        let address = connection
            .and_then(|connection| connection.remote_addr())
            .map(|address| address.ip().to_canonical())
            .filter(|address| !self.trusted_proxies.is_trusted(*address))
            .map(peer::limit_key);
        if let Some(address) = address {
            let slot = self
                .per_address
                .take(address, self.limits.max_streams_per_address)
                .ok_or_else(|| {
                (
                    "address_streams",
                    format!(
                        "this address has {} calls and streams open, its limit; close some or retry shortly",
                        self.limits.max_streams_per_address
                    ),
                )
            })?;
            slots.push(Slot::Address(slot));
        }
        let all = self.all.clone().try_acquire_owned().map_err(|_| {
            (
                "streams",
                format!(
                    "the server has {} calls and streams open, its limit; retry shortly",
                    self.limits.max_streams
                ),
            )
        })?;
        slots.push(Slot::Permit(all));
        let unary = if metrics::is_streaming(path) {
            None
        } else {
            Some(self.unary.clone().try_acquire_owned().map_err(|_| {
                (
                    "calls",
                    format!(
                        "the server has {} calls in progress, its limit; retry shortly",
                        self.limits.max_calls
                    ),
                )
            })?)
        };
        Ok(Admitted { slots, unary })
    }
}

/// What an admitted call holds: `slots` until its response ends, `unary`
/// until its request is read and answered.
struct Admitted {
    slots: Vec<Slot>,
    unary: Option<OwnedSemaphorePermit>,
}

/// One place a call holds while open.
enum Slot {
    Permit(#[allow(dead_code)] OwnedSemaphorePermit),
    Address(#[allow(dead_code)] AddressSlot),
}

/// What each peer address holds open (connections, or calls).
#[derive(Clone, Default)]
struct AddressCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl AddressCounts {
    /// A place for one more of `address`'s, if it has fewer than `max`.
    fn take(&self, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&address);
            }
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            address,
            open: self.0.clone(),
        })
    }
}

/// A place among its address's, given back when dropped.
struct AddressSlot {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

impl<S> tower::Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimit {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallLimit<S> {
    inner: S,
    layer: CallLimitLayer,
}

/// Held by a call or stream while it is open.
struct OpenCall {
    connection: Option<Arc<Connection>>,
    _slots: Vec<Slot>,
    metrics: Arc<Metrics>,
}

impl OpenCall {
    fn new(connection: Option<Arc<Connection>>, slots: Vec<Slot>, metrics: Arc<Metrics>) -> Self {
        if let Some(connection) = &connection {
            connection.open.fetch_add(1, Ordering::AcqRel);
            connection.touch();
        }
        metrics.open_calls.inc();
        Self {
            connection,
            _slots: slots,
            metrics,
        }
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.metrics.open_calls.dec();
        if let Some(connection) = &self.connection {
            connection.touch();
            connection.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for CallLimit<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let connection = request
            .extensions()
            .get::<PeerInfo>()
            .map(|peer| peer.0.clone());
        let Admitted { slots, unary } =
            match self.layer.admit(request.uri().path(), connection.as_ref()) {
                Ok(admitted) => admitted,
                Err((limit, message)) => {
                    self.layer.metrics.refused_at_capacity(limit);
                    let response = Status::resource_exhausted(message).into_http::<ResBody>();
                    return Box::pin(async move {
                        Ok(response.map(|body| CountedBody { body, _open: None }))
                    });
                }
            };
        let open = OpenCall::new(connection, slots, self.layer.metrics.clone());
        let timeout = self.layer.limits.request_timeout;
        let response = self.inner.call(request);
        Box::pin(async move {
            let answered = tokio::time::timeout(timeout, response).await;
            // The request is read (or dropped): what a unary call holds
            // while its message arrives is freed, whatever its response's
            // reader does next.
            drop(unary);
            match answered {
                Ok(response) => Ok(response?.map(|body| CountedBody {
                    body,
                    _open: Some(open),
                })),
                // Dropping the call drops its request: the stream is reset
                // and what it held is freed.
                Err(_) => Ok(Status::cancelled(format!(
                    "Timeout expired: the call took longer than the server's {} s request timeout",
                    timeout.as_secs_f64()
                ))
                .into_http::<ResBody>()
                .map(|body| CountedBody { body, _open: None })),
            }
        })
    }
}

/// A response body that keeps its call counted until it is dropped.
pub struct CountedBody<B> {
    body: B,
    _open: Option<OpenCall>,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
