//! Implicit TLS (`smtps://`) on a socket we opened ourselves.
//!
//! lettre's `connect_with_transport` takes an already connected stream and starts with
//! the server greeting, so for implicit TLS the handshake has to happen before. We let
//! lettre do it (`AsyncNetworkStream::upgrade_tls`, the same code and the same
//! `TlsParameters` its own `smtps://` path and our STARTTLS path use), then adapt the
//! result from the `futures-io` traits it implements to the tokio ones
//! `connect_with_transport` wants. `AsyncNetworkStream` is public but deprecated in
//! lettre 0.11 ("not meant to be made public"); if a later lettre removes it, do the
//! handshake with `tokio-rustls` here instead.

#![allow(deprecated)]

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead as _, AsyncWrite as _};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::{AsyncNetworkStream, AsyncTokioStream, TlsParameters};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS stream, ready for the SMTP greeting.
#[derive(Debug)]
pub(crate) struct ImplicitTls {
    inner: AsyncNetworkStream,
    peer: io::Result<SocketAddr>,
}

impl ImplicitTls {
    /// Runs the TLS handshake on `tcp`, verifying the server against `params`.
    pub(crate) async fn connect(tcp: TcpStream, params: TlsParameters) -> Result<Self, SmtpError> {
        let peer = tcp.peer_addr();
        let mut inner = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        inner.upgrade_tls(params).await?;
        Ok(Self { inner, peer })
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.peer {
            Ok(a) => Ok(*a),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let dst = buf.initialize_unfilled();
        match Pin::new(&mut self.inner).poll_read(cx, dst) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
