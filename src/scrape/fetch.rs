//! Bounded HTTP fetch of one exposition payload.

use std::io::Read;
use std::time::Duration;

use futures_util::StreamExt;

use super::parse::Format;
use crate::config::NameEscaping;
use crate::telemetry::ScrapeErrorReason;

/// The Accept header of a scrape. The Prometheus text format first: it has
/// no `_created` series, so fewer series per target. Version 1.0.0 is 0.0.4
/// with quoted names; an exporter that does not know it answers 0.0.4, and
/// Prometheus' client libraries escape names to underscores for 0.0.4.
pub fn accept_header(escaping: NameEscaping) -> &'static str {
    match escaping {
        NameEscaping::AllowUtf8 => concat!(
            "text/plain;version=1.0.0;escaping=allow-utf-8;q=1,",
            "text/plain;version=0.0.4;q=0.9,",
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,",
            "application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1"
        ),
        NameEscaping::Underscores => concat!(
            "text/plain;version=0.0.4;q=1,",
            "application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
        ),
    }
}

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
        .pool_max_idle_per_host(2)
        .tcp_nodelay(true)
        .build()
}

/// Idle payload buffers the pool keeps, in bytes of capacity. A scrape
/// holds its buffers only while it is in flight, so a fleet needs about as
/// many as it has scrapes in flight at once, whatever its number of targets.
const IDLE_BUFFER_BYTES: usize = 64 << 20;

/// A scrape's payload buffers: the bytes as they came over the wire, and
/// the exposition text after gzip. Lent by a `BodyPool` for one scrape.
///
/// Inflating the whole compressed body in one call straight into `text`
/// costs one pass over the text; a streaming decoder's chunks cost an
/// allocation each and a second copy.
#[derive(Default)]
pub struct Body {
    pub text: Vec<u8>,
    wire: Vec<u8>,
    inflater: Option<WholeGzip>,
}

/// Payload buffers shared by every target's task.
///
/// Kept per target, buffers cost memory for every target of the fleet
/// (75-95 KB for a node exporter's or cAdvisor's payload, per buffer);
/// allocated per scrape, each megabyte-sized payload paid for fresh pages
/// and a trip through the allocator's large bins. Lent per scrape, the few
/// buffers of the scrapes in flight are reused, the last returned first.
#[derive(Default)]
pub struct BodyPool {
    idle: std::sync::Mutex<Vec<Body>>,
}

impl BodyPool {
    /// A body with empty buffers: the most recently returned one.
    pub fn take(&self) -> Body {
        self.lock().pop().unwrap_or_default()
    }

    /// Takes `body` back, keeping its buffers while the idle ones fit in
    /// `IDLE_BUFFER_BYTES`.
    pub fn give_back(&self, mut body: Body) {
        body.text.clear();
        body.wire.clear();
        let mut idle = self.lock();
        let held: usize = idle.iter().map(Body::capacity).sum();
        if held + body.capacity() <= IDLE_BUFFER_BYTES {
            idle.push(body);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Body>> {
        // The list is valid whatever a panicking holder left half done.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.lock().iter().map(Body::capacity).sum()
    }
}

/// libdeflate's whole-buffer gzip decoder: about twice zlib's speed, for the
/// common case of one gzip member whose size trailer tells the output size.
struct WholeGzip(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

// The decompressor is plain memory owned by one target's task at a time.
unsafe impl Send for WholeGzip {}

impl WholeGzip {
    fn new() -> WholeGzip {
        // SAFETY: allocation has no preconditions; NULL means out of memory.
        let raw = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        match std::ptr::NonNull::new(raw) {
            Some(p) => WholeGzip(p),
            None => std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 32 << 10]>()),
        }
    }

    /// Appends the inflated `gz` to `out` (empty) when `gz` is exactly one
    /// gzip member of at most `limit` bytes inflated; false otherwise, with
    /// `out` left empty.
    fn inflate(&mut self, gz: &[u8], out: &mut Vec<u8>, limit: usize) -> bool {
        let Some(trailer) = gz.len().checked_sub(4).and_then(|at| gz.get(at..)) else {
            return false;
        };
        let stated = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
        if gz.len() < 18 || stated > limit {
            return false;
        }
        out.clear();
        out.reserve(stated);
        let (mut read, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is ours; `gz` is readable for its length;
        // `out` has `stated` bytes of spare capacity, and libdeflate writes
        // at most `stated` bytes and reports how many in `written`.
        let result = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                gz.as_ptr().cast(),
                gz.len(),
                out.spare_capacity_mut().as_mut_ptr().cast(),
                stated,
                &mut read,
                &mut written,
            )
        };
        if result != libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS
            || read != gz.len()
            || written > stated
        {
            return false;
        }
        // SAFETY: libdeflate initialised the first `written` bytes.
        unsafe { out.set_len(written) };
        true
    }
}

impl Drop for WholeGzip {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

impl Body {
    fn capacity(&self) -> usize {
        self.text.capacity() + self.wire.capacity()
    }

    /// Inflates `wire` into `text`, stopping as soon as `limit` is passed.
    fn inflate(&mut self, limit: usize) -> Result<(), FetchError> {
        self.text.clear();
        let inflater = self.inflater.get_or_insert_with(WholeGzip::new);
        if inflater.inflate(&self.wire, &mut self.text, limit) {
            return Ok(());
        }
        // Multi-member, a lying size trailer, corrupt data, or too large: the
        // streaming decoder handles every valid case and names the error.
        self.text.clear();
        let mut decoder =
            flate2::bufread::MultiGzDecoder::new(&self.wire[..]).take(limit as u64 + 1);
        decoder
            .read_to_end(&mut self.text)
            .map_err(|e| FetchError::Read(format!("gzip: {e}")))?;
        if self.text.len() > limit {
            return Err(FetchError::BodyTooLarge { limit });
        }
        Ok(())
    }
}

/// Fetches `url` into `body.text`. The whole exchange, body included, is
/// bounded by `timeout`, and the body by `limit` bytes on the wire and
/// decompressed: reading stops as soon as the limit is passed, so an
/// oversized or gzip-bomb body is never held in memory. `accept` is one of
/// [`accept_header`]'s.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    timeout: Duration,
    limit: usize,
    body: &mut Body,
) -> Result<Format, FetchError> {
    body.text.clear();
    body.wire.clear();
    match tokio::time::timeout(
        timeout,
        fetch_inner(client, url, accept, timeout, limit, body),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(timeout)),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    timeout: Duration,
    limit: usize,
    body: &mut Body,
) -> Result<Format, FetchError> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, accept)
        // Inflated here (see `Body`), not by reqwest's streaming decoder.
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
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
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
    };
    let format = header(reqwest::header::CONTENT_TYPE)
        .map(Format::from_content_type)
        .unwrap_or(Format::Prometheus);
    let gzipped = match header(reqwest::header::CONTENT_ENCODING).map(str::trim) {
        None | Some("") | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => true,
        Some(other) => {
            return Err(FetchError::Read(format!(
                "unsupported Content-Encoding {other:?}"
            )))
        }
    };
    if let Some(len) = response.content_length() {
        if len > limit as u64 {
            return Err(FetchError::BodyTooLarge { limit });
        }
    }
    let wire = if gzipped {
        &mut body.wire
    } else {
        &mut body.text
    };
    if let Some(len) = response.content_length() {
        wire.reserve(len as usize);
    }
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Read(error_chain(&e)))?;
        if wire.len() + chunk.len() > limit {
            return Err(FetchError::BodyTooLarge { limit });
        }
        wire.extend_from_slice(&chunk);
    }
    if gzipped {
        body.inflate(limit)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn inflated(wire: Vec<u8>, limit: usize) -> Result<Vec<u8>, FetchError> {
        let mut body = Body {
            wire,
            ..Body::default()
        };
        body.inflate(limit).map(|()| body.text)
    }

    #[test]
    fn gzip_bodies_inflate_whole_or_are_errors() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("m{{i=\"{i}\"}} {i}\n").into_bytes())
            .collect();
        assert_eq!(inflated(gzip(&text), 1 << 24).unwrap(), text);
        assert_eq!(inflated(gzip(b""), 10).unwrap(), b"");

        // Two members (allowed by RFC 1952): both halves, in order.
        let mut two = gzip(&text[..1000]);
        two.extend(gzip(&text[1000..]));
        assert_eq!(inflated(two.clone(), 1 << 24).unwrap(), text);

        // The fast path takes exactly one member, and only within the limit.
        let mut out = Vec::new();
        let mut whole = WholeGzip::new();
        assert!(whole.inflate(&gzip(&text), &mut out, 1 << 24));
        assert_eq!(out, text);
        assert!(
            !whole.inflate(&two, &mut out, 1 << 24),
            "second member left over"
        );
        out.clear();
        assert!(!whole.inflate(&gzip(&text), &mut out, 1000));

        // A size trailer that lies either way still inflates correctly.
        for lie in [10u32, 1 << 23] {
            let mut gz = gzip(&text);
            let at = gz.len() - 4;
            gz[at..].copy_from_slice(&lie.to_le_bytes());
            let got = inflated(gz, 1 << 24);
            // The trailer is also checked by the streaming decoder, so a
            // wrong size is corrupt data, never a wrong body.
            assert!(matches!(got, Err(FetchError::Read(_))), "{got:?}");
        }

        // Over the limit: refused whatever the trailer says.
        let got = inflated(gzip(&text), text.len() - 1);
        assert_eq!(
            got,
            Err(FetchError::BodyTooLarge {
                limit: text.len() - 1
            })
        );

        // Corrupt or truncated data is a read error.
        let mut corrupt = gzip(&text);
        corrupt[20] ^= 0xff;
        assert!(matches!(
            inflated(corrupt, 1 << 24),
            Err(FetchError::Read(_))
        ));
        let truncated = gzip(&text)[..100].to_vec();
        assert!(matches!(
            inflated(truncated, 1 << 24),
            Err(FetchError::Read(_))
        ));
        assert!(matches!(
            inflated(b"\x1f\x8b".to_vec(), 1 << 24),
            Err(FetchError::Read(_))
        ));
    }

    /// Buffers come back empty with their capacity, the last returned
    /// first; what the pool keeps idle stays within its budget.
    #[test]
    fn the_pool_reuses_buffers_within_its_budget() {
        let pool = BodyPool::default();
        let mut body = pool.take();
        body.text.extend_from_slice(&[b'x'; 1 << 20]);
        body.wire.extend_from_slice(&[b'z'; 1 << 16]);
        let kept = body.capacity();
        pool.give_back(body);
        assert_eq!(pool.idle_bytes(), kept);

        // Over the budget together with what is idle: dropped, not kept.
        let mut large = Body::default();
        large.text.reserve_exact(IDLE_BUFFER_BYTES);
        pool.give_back(large);
        assert_eq!(pool.idle_bytes(), kept);

        let again = pool.take();
        assert!(again.text.is_empty() && again.wire.is_empty());
        assert_eq!(again.capacity(), kept);
        assert_eq!(pool.take().capacity(), 0, "nothing else was kept");
    }
}
