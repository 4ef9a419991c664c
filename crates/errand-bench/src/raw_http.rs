//! A minimal HTTP/1.1 load client: one connection per task, no pool, no locks. The
//! single-enqueue scenarios use it so that the load generator, which shares the machine's
//! cores with the server, costs as little CPU as it can and the figures describe the server.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct RawConnection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl RawConnection {
    /// Connects to `base` (`http://host:port`).
    ///
    /// # Errors
    /// The server cannot be reached.
    pub async fn connect(base: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("only http:// servers can be benchmarked"))?
            .trim_end_matches('/')
            .to_string();
        let stream = TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { sender, authority })
    }

    /// `count` connections spread over `nodes` in turn.
    ///
    /// # Errors
    /// A server cannot be reached.
    pub async fn spread(
        nodes: &[errand_client::Client],
        count: usize,
    ) -> anyhow::Result<Vec<Self>> {
        let mut conns = Vec::with_capacity(count);
        for (_, node) in (0..count).zip(nodes.iter().cycle()) {
            conns.push(Self::connect(node.base_url()).await?);
        }
        Ok(conns)
    }

    /// POSTs `body` to `path`; returns the status after reading the whole answer.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn post(&mut self, path: &str, body: Bytes) -> anyhow::Result<u16> {
        self.send(hyper::Method::POST, path, body).await
    }

    /// Sends `body` to `path` with `method`; returns the status after reading the whole
    /// answer.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<u16> {
        self.exchange(method, path, body)
            .await
            .map(|(status, _)| status)
    }

    /// Sends `body` to `path` with `method`; returns the status and the whole answer (for
    /// the endpoints the typed client does not cover).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn exchange(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
