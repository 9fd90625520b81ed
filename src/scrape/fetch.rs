//! Bounded HTTP fetch of one exposition payload.

use std::time::Duration;

use futures_util::StreamExt;

use super::parse::Format;
use crate::telemetry::ScrapeErrorReason;

/// Text 0.0.4 first: it has no `_created` series, so fewer series per target.
const ACCEPT: &str =
    "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("server returned HTTP {0}")]
    HttpStatus(u16),
    #[error("body exceeds the limit of {limit} bytes (decompressed)")]
    BodyTooLarge { limit: usize },
    #[error("reading the body failed: {0}")]
    Read(String),
}

impl FetchError {
    pub fn reason(&self) -> ScrapeErrorReason {
        match self {
            FetchError::Timeout(_) => ScrapeErrorReason::Timeout,
            FetchError::Connect(_) => ScrapeErrorReason::Connect,
            FetchError::HttpStatus(_) => ScrapeErrorReason::HttpStatus,
            FetchError::BodyTooLarge { .. } => ScrapeErrorReason::BodyTooLarge,
            FetchError::Read(_) => ScrapeErrorReason::ReadError,
        }
    }
}

pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("fleetscope/", env!("CARGO_PKG_VERSION")))
        .gzip(true)
        .pool_max_idle_per_host(2)
        .tcp_nodelay(true)
        .build()
}

/// Fetches `url` into `buf` (cleared first). The whole exchange, body
/// included, is bounded by `timeout`, and the body by `limit` decompressed
/// bytes: the read stops as soon as the limit is passed, so an oversized or
/// gzip-bomb body is never held in memory.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<Format, FetchError> {
    buf.clear();
    match tokio::time::timeout(timeout, fetch_inner(client, url, timeout, limit, buf)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(timeout)),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<Format, FetchError> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout(timeout)
            } else if e.is_connect() {
                FetchError::Connect(error_chain(&e))
            } else {
                FetchError::Read(error_chain(&e))
            }
        })?;
    if !response.status().is_success() {
        return Err(FetchError::HttpStatus(response.status().as_u16()));
    }
    let format = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(Format::from_content_type)
        .unwrap_or(Format::Prometheus);
    if let Some(len) = response.content_length() {
        if len > limit as u64 {
            return Err(FetchError::BodyTooLarge { limit });
        }
        buf.reserve(len as usize);
    }
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Read(error_chain(&e)))?;
        if buf.len() + chunk.len() > limit {
            return Err(FetchError::BodyTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(format)
}

/// reqwest's top-level message is often just "error sending request"; the
/// cause chain says what happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
