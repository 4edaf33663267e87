//! Long polling for a store that has none: duroxide-pg answers "no work" at once, so idle
//! dispatchers would have to poll the database every few milliseconds to keep steps fast. This
//! wrapper makes a fetch that finds nothing wait (up to the runtime's long-poll timeout) until
//! this process enqueues work for that queue, then fetch again. Steps become as fast as a
//! notification, and an idle server polls a few times a second instead of hundreds.
//!
//! Work enqueued by another server replica, and delayed items (timers, retries), are seen at
//! the next poll, at most one long-poll timeout later.

use async_trait::async_trait;
use duroxide::Event;
use duroxide::providers::{
    DispatcherCapabilityFilter, ExecutionMetadata, OrchestrationItem, Provider, ProviderAdmin,
    ProviderError, ScheduledActivityIdentifier, SessionFetchConfig, TagFilter, WorkItem,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A store wrapper that wakes idle fetches when this process enqueues work.
pub struct WakingStore {
    inner: Arc<dyn Provider>,
    orchestrator_work: Notify,
    worker_work: Notify,
}

impl WakingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self {
            inner,
            orchestrator_work: Notify::new(),
            worker_work: Notify::new(),
        }
    }
}

/// Wakes one waiting fetch per new item (not all of them: the others would only find nothing).
fn wake(signal: &Notify, new_items: usize) {
    for _ in 0..new_items.min(WAKE_AT_MOST) {
        signal.notify_one();
    }
}

/// More wake-ups than this per enqueue would exceed any dispatcher count we run.
const WAKE_AT_MOST: usize = 64;

/// Runs `fetch`; when it finds nothing, waits for `signal` (or `poll_timeout`) and runs it once more.
async fn fetch_or_wait<T, F, Fut>(
    signal: &Notify,
    poll_timeout: Duration,
    fetch: F,
) -> Result<Option<T>, ProviderError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    // Register interest before looking, so work enqueued in between is not missed.
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if let Some(found) = fetch().await? {
        return Ok(Some(found));
    }
    if poll_timeout.is_zero() {
        return Ok(None);
    }
    let _ = tokio::time::timeout(poll_timeout, notified).await;
    fetch().await
}

#[async_trait]
impl Provider for WakingStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn version(&self) -> &str {
        self.inner.version()
    }

    async fn fetch_orchestration_item(
        &self,
        lock_timeout: Duration,
        poll_timeout: Duration,
        filter: Option<&DispatcherCapabilityFilter>,
    ) -> Result<Option<(OrchestrationItem, String, u32)>, ProviderError> {
        fetch_or_wait(&self.orchestrator_work, poll_timeout, || {
            self.inner
                .fetch_orchestration_item(lock_timeout, Duration::ZERO, filter)
        })
        .await
    }

    async fn ack_orchestration_item(
        &self,
        lock_token: &str,
        execution_id: u64,
        history_delta: Vec<Event>,
        worker_items: Vec<WorkItem>,
        orchestrator_items: Vec<WorkItem>,
        metadata: ExecutionMetadata,
        cancelled_activities: Vec<ScheduledActivityIdentifier>,
    ) -> Result<(), ProviderError> {
        let new_worker_items = worker_items.len();
        let new_orchestrator_items = orchestrator_items.len();
        self.inner
            .ack_orchestration_item(
                lock_token,
                execution_id,
                history_delta,
                worker_items,
                orchestrator_items,
                metadata,
                cancelled_activities,
            )
            .await?;
        wake(&self.worker_work, new_worker_items);
        wake(&self.orchestrator_work, new_orchestrator_items);
        Ok(())
    }

    async fn abandon_orchestration_item(
        &self,
        lock_token: &str,
        delay: Option<Duration>,
        ignore_attempt: bool,
    ) -> Result<(), ProviderError> {
        self.inner
            .abandon_orchestration_item(lock_token, delay, ignore_attempt)
            .await?;
        wake(&self.orchestrator_work, 1);
        Ok(())
    }

    async fn read(&self, instance: &str) -> Result<Vec<Event>, ProviderError> {
        self.inner.read(instance).await
    }

    async fn read_with_execution(
        &self,
        instance: &str,
        execution_id: u64,
    ) -> Result<Vec<Event>, ProviderError> {
        self.inner.read_with_execution(instance, execution_id).await
    }

    async fn append_with_execution(
        &self,
        instance: &str,
        execution_id: u64,
        new_events: Vec<Event>,
    ) -> Result<(), ProviderError> {
        self.inner
            .append_with_execution(instance, execution_id, new_events)
            .await
    }

    async fn enqueue_for_worker(&self, item: WorkItem) -> Result<(), ProviderError> {
        self.inner.enqueue_for_worker(item).await?;
        wake(&self.worker_work, 1);
        Ok(())
    }

    async fn fetch_work_item(
        &self,
        lock_timeout: Duration,
        poll_timeout: Duration,
        session: Option<&SessionFetchConfig>,
        tag_filter: &TagFilter,
    ) -> Result<Option<(WorkItem, String, u32)>, ProviderError> {
        fetch_or_wait(&self.worker_work, poll_timeout, || {
            self.inner
                .fetch_work_item(lock_timeout, Duration::ZERO, session, tag_filter)
        })
        .await
    }

    async fn ack_work_item(
        &self,
        token: &str,
        completion: Option<WorkItem>,
    ) -> Result<(), ProviderError> {
        let new_orchestrator_items = usize::from(completion.is_some());
        self.inner.ack_work_item(token, completion).await?;
        wake(&self.orchestrator_work, new_orchestrator_items);
        Ok(())
    }

    async fn renew_work_item_lock(
        &self,
        token: &str,
        extend_for: Duration,
    ) -> Result<(), ProviderError> {
        self.inner.renew_work_item_lock(token, extend_for).await
    }

    async fn renew_session_lock(
        &self,
        owner_ids: &[&str],
        extend_for: Duration,
        idle_timeout: Duration,
    ) -> Result<usize, ProviderError> {
        self.inner
            .renew_session_lock(owner_ids, extend_for, idle_timeout)
            .await
    }

    async fn cleanup_orphaned_sessions(
        &self,
        idle_timeout: Duration,
    ) -> Result<usize, ProviderError> {
        self.inner.cleanup_orphaned_sessions(idle_timeout).await
    }

    async fn abandon_work_item(
        &self,
        token: &str,
        delay: Option<Duration>,
        ignore_attempt: bool,
    ) -> Result<(), ProviderError> {
        self.inner
            .abandon_work_item(token, delay, ignore_attempt)
            .await?;
        wake(&self.worker_work, 1);
        Ok(())
    }

    async fn renew_orchestration_item_lock(
        &self,
        token: &str,
        extend_for: Duration,
    ) -> Result<(), ProviderError> {
        self.inner
            .renew_orchestration_item_lock(token, extend_for)
            .await
    }

    async fn enqueue_for_orchestrator(
        &self,
        item: WorkItem,
        delay: Option<Duration>,
    ) -> Result<(), ProviderError> {
        self.inner.enqueue_for_orchestrator(item, delay).await?;
        wake(&self.orchestrator_work, 1);
        Ok(())
    }

    fn as_management_capability(&self) -> Option<&dyn ProviderAdmin> {
        self.inner.as_management_capability()
    }

    async fn get_custom_status(
        &self,
        instance: &str,
        last_seen_version: u64,
    ) -> Result<Option<(Option<String>, u64)>, ProviderError> {
        self.inner
            .get_custom_status(instance, last_seen_version)
            .await
    }

    async fn get_kv_value(
        &self,
        instance: &str,
        key: &str,
    ) -> Result<Option<String>, ProviderError> {
        self.inner.get_kv_value(instance, key).await
    }

    async fn get_kv_all_values(
        &self,
        instance: &str,
    ) -> Result<std::collections::HashMap<String, String>, ProviderError> {
        self.inner.get_kv_all_values(instance).await
    }

    async fn get_instance_stats(
        &self,
        instance: &str,
    ) -> Result<Option<duroxide::SystemStats>, ProviderError> {
        self.inner.get_instance_stats(instance).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn an_empty_fetch_waits_for_a_signal_then_looks_again() -> Result<(), ProviderError> {
        let signal = Arc::new(Notify::new());
        let calls = Arc::new(AtomicU32::new(0));
        let waker = signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waker.notify_one();
        });
        let started = tokio::time::Instant::now();
        let found = fetch_or_wait(&signal, Duration::from_secs(30), || {
            let calls = calls.clone();
            async move {
                Ok(if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    None
                } else {
                    Some(7)
                })
            }
        })
        .await?;
        assert_eq!(found, Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the signal, not the timeout"
        );
        Ok(())
    }

    #[tokio::test]
    async fn without_a_signal_it_gives_up_after_the_poll_timeout() -> Result<(), ProviderError> {
        let signal = Notify::new();
        let found: Option<u8> =
            fetch_or_wait(&signal, Duration::from_millis(20), || async { Ok(None) }).await?;
        assert_eq!(found, None);
        Ok(())
    }
}
