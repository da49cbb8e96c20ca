//! What a pull needs of a connection: to open request streams, and to know who answers. A
//! QUIC connection is one; the `pull_responses` fuzz target plays a scripted peer with another
//! (see [`crate::fuzz_api`]), so the pull's handling of whatever a peer sends is fuzzed without
//! a network.

use std::future::Future;

use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::EndpointId;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::NetError;

/// Request streams to a peer.
pub(crate) trait PeerStreams: Clone + Send + Sync + 'static {
    /// The writing half of a stream.
    type Send: AsyncWrite + Unpin + Send + 'static;
    /// The reading half of a stream.
    type Recv: AsyncRead + Unpin + Send + 'static;

    /// The peer's endpoint id (authenticated by the connection).
    fn remote_id(&self) -> EndpointId;

    /// Opens a new bidirectional stream.
    fn open_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), NetError>> + Send;

    /// Tells the peer that the rest of this stream will not be read.
    fn stop(recv: &mut Self::Recv);
}

impl PeerStreams for Connection {
    type Send = SendStream;
    type Recv = RecvStream;

    fn remote_id(&self) -> EndpointId {
        let conn: &Connection = self;
        conn.remote_id()
    }

    async fn open_bi(&self) -> Result<(SendStream, RecvStream), NetError> {
        let conn: &Connection = self;
        Ok(conn.open_bi().await?)
    }

    fn stop(recv: &mut RecvStream) {
        let _ = recv.stop(0u32.into());
    }
}

/// A peer whose answers are given by a function of each request (for the fuzzer).
#[derive(Clone)]
pub(crate) struct ScriptedPeer {
    pub(crate) id: EndpointId,
    #[allow(clippy::type_complexity)]
    pub(crate) answer: std::sync::Arc<dyn Fn(&crate::wire::Request) -> Vec<u8> + Send + Sync>,
}

/// What the pull wrote on a scripted stream.
#[derive(Default)]
pub(crate) struct Written(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl AsyncWrite for Written {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().expect("written").extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The scripted answer to what was written, once the request is complete.
pub(crate) struct Answer {
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    peer: ScriptedPeer,
    out: Option<std::io::Cursor<Vec<u8>>>,
}

impl AsyncRead for Answer {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.out.is_none() {
            let written = self.written.lock().expect("written").clone();
            let request = written
                .get(4..)
                .and_then(|body| crate::wire::decode_body(body).ok());
            let bytes = request.map(|r| (self.peer.answer)(&r)).unwrap_or_default();
            self.out = Some(std::io::Cursor::new(bytes));
        }
        let out = self.out.as_mut().expect("just set");
        std::pin::Pin::new(out).poll_read(cx, buf)
    }
}

impl PeerStreams for ScriptedPeer {
    type Send = Written;
    type Recv = Answer;

    fn remote_id(&self) -> EndpointId {
        self.id
    }

    async fn open_bi(&self) -> Result<(Written, Answer), NetError> {
        let written = Written::default();
        let answer = Answer {
            written: written.0.clone(),
            peer: self.clone(),
            out: None,
        };
        Ok((written, answer))
    }

    fn stop(_: &mut Answer) {}
}
