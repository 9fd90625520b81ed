//! Answers of fleet views, cached by the request and the store's data
//! generation, with single flight: identical requests that arrive together
//! (ten panels of one dashboard, many viewers of one wall screen) compute
//! once and share the answer.
//!
//! Exact, not approximate: an entry's key holds the generation of the
//! resolution it read, and the store bumps that generation on every change
//! to that resolution, so a cached answer equals a fresh one.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::ApiError;

type Cell = Arc<OnceCell<Arc<String>>>;

#[derive(Default)]
struct Inner {
    cells: HashMap<String, Cell>,
    /// Sizes of initialised entries, in insertion order, for eviction.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

pub struct ViewCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl ViewCache {
    pub fn new(max_bytes: usize) -> ViewCache {
        ViewCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    /// The cached answer for `key`, or the one `compute` produces (once, for
    /// every concurrent caller). Errors are not cached.
    pub async fn get_or_compute<F, Fut>(
        &self,
        key: String,
        compute: F,
    ) -> Result<Arc<String>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, ApiError>>,
    {
        if self.max_bytes == 0 {
            return compute().await.map(Arc::new);
        }
        let cell = {
            let mut inner = self
                .inner
                .lock()
                .map_err(|_| ApiError::Internal("view cache poisoned".into()))?;
            inner.cells.entry(key.clone()).or_default().clone()
        };
        // An entry whose computation failed or was abandoned (the client
        // went away, the request timed out) goes, unless another caller
        // still waits on it.
        let _unfinished = ForgetUnfinished {
            cache: self,
            key: &key,
            cell: &cell,
        };
        let mut computed_here = false;
        let result = cell
            .get_or_try_init(|| async {
                computed_here = true;
                compute().await.map(Arc::new)
            })
            .await
            .cloned();
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| ApiError::Internal("view cache poisoned".into()))?;
        if let (Ok(answer), true) = (&result, computed_here) {
            inner.order.push_back((key.clone(), answer.len()));
            inner.bytes += answer.len();
            while inner.bytes > self.max_bytes {
                let Some((old, size)) = inner.order.pop_front() else {
                    break;
                };
                inner.bytes -= size;
                inner.cells.remove(&old);
            }
        }
        drop(inner);
        result
    }
}

struct ForgetUnfinished<'a> {
    cache: &'a ViewCache,
    key: &'a str,
    cell: &'a Cell,
}

impl Drop for ForgetUnfinished<'_> {
    fn drop(&mut self) {
        if self.cell.initialized() {
            return;
        }
        let Ok(mut inner) = self.cache.inner.lock() else {
            return;
        };
        // Held by the map and by this caller alone: nobody else waits.
        let ours = inner
            .cells
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell) && Arc::strong_count(c) == 2);
        if ours {
            inner.cells.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_identical_requests_compute_once() {
        let cache = Arc::new(ViewCache::new(1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("k".into(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Ok("answer".to_string())
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().as_str(), "answer");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_retried_and_size_is_bounded() {
        let cache = ViewCache::new(10);
        let failed = cache
            .get_or_compute("k".into(), || async {
                Err(ApiError::BadRequest("no".into()))
            })
            .await;
        assert!(failed.is_err());
        let ok = cache
            .get_or_compute("k".into(), || async { Ok("12345".to_string()) })
            .await;
        assert_eq!(ok.unwrap().as_str(), "12345");
        cache
            .get_or_compute("j".into(), || async { Ok("678901".to_string()) })
            .await
            .unwrap();
        let inner = cache.inner.lock().unwrap();
        assert!(inner.bytes <= 10);
        assert!(!inner.cells.contains_key("k"), "oldest entry evicted");
    }

    #[tokio::test]
    async fn an_abandoned_computation_leaves_no_entry() {
        let cache = ViewCache::new(1 << 20);
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            cache.get_or_compute("k".into(), || async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok("late".to_string())
            }),
        )
        .await;
        assert!(abandoned.is_err(), "timed out");
        assert!(cache.inner.lock().unwrap().cells.is_empty());
        let again = cache
            .get_or_compute("k".into(), || async { Ok("now".to_string()) })
            .await;
        assert_eq!(again.unwrap().as_str(), "now");
    }
}
