//! Sockets: opening them, framing, and keeping one open between messages.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio::sync::Mutex;

use crate::address::{Address, HostPort};
use crate::error::SyslogError;

/// An open socket to the receiver.
#[derive(Debug)]
enum Conn {
    Udp(UdpSocket),
    UnixDatagram(UnixDatagram),
    /// A unix stream socket: one message per line (see [`Conn::send`]).
    UnixStream(UnixStream),
    /// RFC 6587 octet counting.
    Tcp(TcpStream),
}

impl Conn {
    async fn open(address: &Address) -> io::Result<Self> {
        match address {
            Address::Unix(path) => {
                // /dev/log is a datagram socket on Linux (systemd-journald, rsyslog); some
                // syslog daemons offer a stream socket instead. Try datagram first, as
                // glibc's syslog(3) does, and report its error if stream fails too.
                let dgram = UnixDatagram::unbound().and_then(|s| {
                    s.connect(path)?;
                    Ok(s)
                });
                match dgram {
                    Ok(s) => Ok(Self::UnixDatagram(s)),
                    Err(dgram_err) => match UnixStream::connect(path).await {
                        Ok(s) => Ok(Self::UnixStream(s)),
                        Err(_) => Err(dgram_err),
                    },
                }
            }
            Address::Udp(hp) => {
                let mut last = None;
                for addr in resolve(hp).await? {
                    let local: SocketAddr = if addr.is_ipv6() {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    };
                    let attempt = async {
                        let s = UdpSocket::bind(local).await?;
                        s.connect(addr).await?;
                        Ok::<_, io::Error>(s)
                    };
                    match attempt.await {
                        Ok(s) => return Ok(Self::Udp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| no_address(hp)))
            }
            Address::Tcp(hp) => {
                let s = TcpStream::connect((hp.host.as_str(), hp.port)).await?;
                // One write per message: without this, a message written while the
                // previous one is unacknowledged waits ~40 ms for a delayed ACK.
                s.set_nodelay(true)?;
                Ok(Self::Tcp(s))
            }
        }
    }

    /// Sends one message, framed for the socket type.
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Self::Udp(s) => s.send(msg).await.map(drop),
            Self::UnixDatagram(s) => s.send(msg).await.map(drop),
            Self::UnixStream(s) => {
                // Stream receivers of the local socket (syslog-ng's unix-stream, rsyslog's
                // imptcp on a path) read one message per line; the message has no line
                // ends of its own (format::clean_text).
                let mut frame = Vec::with_capacity(msg.len() + 1);
                frame.extend_from_slice(msg);
                frame.push(b'\n');
                s.write_all(&frame).await
            }
            Self::Tcp(s) => {
                // RFC 6587 §3.4.1 octet counting: "LEN SP MSG", no trailer.
                let mut frame = Vec::with_capacity(msg.len() + 8);
                frame.extend_from_slice(msg.len().to_string().as_bytes());
                frame.push(b' ');
                frame.extend_from_slice(msg);
                s.write_all(&frame).await
            }
        }
    }

    /// Whether a kept stream connection was closed by the receiver (it restarted, or
    /// timed out an idle client). Writing to it would seem to succeed and lose the message:
    /// the peer's RST only fails the write after it. A peek costs one system call; we
    /// ask the socket directly, since tokio's readiness cache may not have seen the FIN
    /// yet.
    fn is_closed_by_peer(&self) -> bool {
        let sock = match self {
            Self::Udp(_) | Self::UnixDatagram(_) => return false,
            Self::UnixStream(s) => socket2::SockRef::from(s),
            Self::Tcp(s) => socket2::SockRef::from(s),
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); 1];
        match sock.peek(&mut buf) {
            Ok(0) => true,
            // A receiver has nothing to say to a syslog client; unread bytes mean nothing.
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

async fn resolve(hp: &HostPort) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((hp.host.as_str(), hp.port))
        .await?
        .collect();
    if addrs.is_empty() {
        return Err(no_address(hp));
    }
    Ok(addrs)
}

fn no_address(hp: &HostPort) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} resolves to no address", hp.host),
    )
}

/// One notifier's way to the receiver: the address, and the socket kept open between
/// messages.
#[derive(Debug)]
pub(crate) struct Transport {
    address: Address,
    /// `address` as written in errors.
    shown: String,
    timeout: Duration,
    /// The kept socket. An async mutex: sends of one notifier go out one at a time, in
    /// order, and a stream frame is never interleaved with another.
    conn: Mutex<Option<Conn>>,
}

impl Transport {
    pub(crate) fn new(address: Address, timeout: Duration) -> Self {
        Self {
            shown: address.to_string(),
            address,
            timeout,
            conn: Mutex::new(None),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.shown
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one message, on the kept socket if it still works, else on a new one.
    ///
    /// A kept socket that the receiver closed, or that fails the write, is replaced once;
    /// the error of the new socket is the one reported.
    ///
    /// # Errors
    /// [`SyslogError::Connect`], [`SyslogError::Send`] or [`SyslogError::Timeout`].
    pub(crate) async fn send(&self, msg: &[u8]) -> Result<(), SyslogError> {
        let mut guard = self.conn.lock().await;
        let attempt = async {
            if let Some(conn) = guard.as_mut() {
                if conn.is_closed_by_peer() {
                    tracing::debug!(address = %self.shown, "receiver closed the connection; reconnecting");
                } else {
                    match conn.send(msg).await {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            tracing::debug!(address = %self.shown, error = %e, "send on the kept socket failed; reconnecting once");
                        }
                    }
                }
                *guard = None;
            }
            let mut conn =
                Conn::open(&self.address)
                    .await
                    .map_err(|source| SyslogError::Connect {
                        address: self.shown.clone(),
                        source,
                    })?;
            conn.send(msg).await.map_err(|source| SyslogError::Send {
                address: self.shown.clone(),
                source,
            })?;
            *guard = Some(conn);
            Ok(())
        };
        // Most sends complete at the first poll (a datagram, or a frame that fits the
        // socket buffer of a kept connection). Arming the timer only when they do not
        // saves a wake-up of the runtime's driver per message, as much as the send.
        let result = {
            let mut attempt = std::pin::pin!(attempt);
            match std::future::poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx))).await {
                Poll::Ready(result) => Ok(result),
                Poll::Pending => tokio::time::timeout(self.timeout, attempt).await,
            }
        };
        result.unwrap_or_else(|_| {
            // A stream may hold half a frame now: never write after it.
            *guard = None;
            Err(SyslogError::Timeout {
                address: self.shown.clone(),
                timeout: self.timeout,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against real sockets on 127.0.0.1 and in a temporary directory; the rsyslog tests
    //! of the workspace (`tests/it/syslog.rs`) check what a real receiver makes of it.

    use tokio::io::AsyncReadExt as _;
    use tokio::net::{TcpListener, UnixListener};
    use tokio::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn transport(address: &str) -> Transport {
        Transport::new(Address::parse(address).unwrap(), WAIT)
    }

    /// A TCP server that reads each connection to its end and reports its bytes.
    async fn tcp_server() -> (u16, mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf).await;
                    let _ = tx.send(buf);
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn tcp_frames_are_octet_counted_on_one_connection() {
        let (port, mut conns) = tcp_server().await;
        let t = transport(&format!("tcp://127.0.0.1:{port}"));
        for msg in ["<26>1 first", "<26>1 second message", "<29>1 thïrd"] {
            t.send(msg.as_bytes()).await.unwrap();
        }
        drop(t);
        let bytes = tokio::time::timeout(WAIT, conns.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "11 <26>1 first20 <26>1 second message12 <29>1 thïrd"
        );
        assert!(conns.try_recv().is_err(), "a second connection was opened");
    }

    #[tokio::test]
    async fn a_connection_the_receiver_closed_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = transport(&format!("tcp://127.0.0.1:{port}"));
        t.send(b"one").await.unwrap();
        let (mut first, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 5];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"3 one");
        // The receiver restarts: its end of the connection goes away.
        drop(first);
        // The FIN is there as soon as close() returns on loopback; wait for it anyway,
        // without sleeping, so the test checks the peek and not a race.
        for _ in 0..10_000 {
            let closed = t
                .conn
                .lock()
                .await
                .as_ref()
                .is_some_and(Conn::is_closed_by_peer);
            if closed {
                break;
            }
            tokio::task::yield_now().await;
        }
        t.send(b"two").await.unwrap();
        let (mut second, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        second.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"3 two");
    }

    #[tokio::test]
    async fn a_stream_socket_path_gets_one_line_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = transport(&format!("unix://{}", path.display()));
        t.send(b"<26>1 a").await.unwrap();
        t.send(b"<26>1 b").await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        drop(t);
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "<26>1 a\n<26>1 b\n");
    }

    #[tokio::test]
    async fn datagram_sockets_get_one_message_per_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let unix = UnixDatagram::bind(&path).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let to_unix = transport(&format!("unix://{}", path.display()));
        let to_udp = transport(&format!("udp://127.0.0.1:{udp_port}"));
        let mut buf = [0u8; 64];
        for msg in [&b"<26>1 x"[..], b"<26>1 yy"] {
            to_unix.send(msg).await.unwrap();
            let n = unix.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg);
            to_udp.send(msg).await.unwrap();
            let n = udp.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg);
        }
    }

    #[tokio::test]
    async fn no_receiver_is_a_retryable_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        for address in [
            format!("tcp://127.0.0.1:{port}"),
            format!("unix://{}", dir.path().join("missing.sock").display()),
        ] {
            let e = transport(&address).send(b"x").await.unwrap_err();
            assert!(matches!(e, SyslogError::Connect { .. }), "{address}: {e:?}");
            assert!(e.is_retryable(), "{address}: {e:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_that_stops_reading_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        // Bound but never read: its queue fills and the sender blocks.
        let _receiver = UnixDatagram::bind(&path).unwrap();
        let t = Transport::new(
            Address::parse(&format!("unix://{}", path.display())).unwrap(),
            Duration::from_secs(1),
        );
        let msg = vec![b'x'; 1000];
        let mut outcome = None;
        for _ in 0..100_000 {
            if let Err(e) = t.send(&msg).await {
                outcome = Some(e);
                break;
            }
        }
        let e = outcome.expect("the queue never filled");
        assert!(matches!(e, SyslogError::Timeout { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert!(t.conn.lock().await.is_none(), "the blocked socket was kept");
    }
}
