//! Screening off the async threads.
//!
//! Screening is CPU work (about 0.3 ms for a typical comment, a few ms for
//! the longest): run on tokio's worker threads it would delay every other
//! call they serve. The pool runs it on blocking threads instead, at most
//! `workers` at a time, with at most `queue` more waiting; a call beyond
//! that is refused at once with RESOURCE_EXHAUSTED rather than queued
//! without bound.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Span;

use super::Pipeline;
use crate::{
    domain::{AuthorName, CommentText, Verdict},
    metrics::Metrics,
};

/// How much screening may run and wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Screenings running at once (threads busy).
    pub workers: usize,
    /// Screenings waiting for a worker before more are refused.
    pub queue: usize,
}

impl Default for PoolSize {
    /// One worker per core, 64 waiting per worker.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            workers,
            queue: 64 * workers,
        }
    }
}

/// Why a screening did not run.
#[derive(Debug, thiserror::Error)]
pub enum ScreeningError {
    #[error("screening is busy ({0} comments running or waiting); retry shortly")]
    Busy(usize),
    #[error("screening failed: {0}")]
    Failed(String),
}

pub struct ScreeningPool {
    pipeline: Arc<Pipeline>,
    /// Permits to run.
    workers: Arc<Semaphore>,
    /// Permits to run or wait.
    admitted: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl ScreeningPool {
    pub fn new(pipeline: Pipeline, size: PoolSize, metrics: Arc<Metrics>) -> Self {
        let workers = size.workers.max(1);
        let capacity = workers + size.queue;
        Self {
            pipeline: Arc::new(pipeline),
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(capacity)),
            capacity,
            metrics,
        }
    }

    /// Screens on a blocking thread.
    pub async fn screen(
        &self,
        author_name: Option<AuthorName>,
        text: CommentText,
    ) -> Result<Verdict, ScreeningError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            self.metrics.refused_at_capacity("screening");
            ScreeningError::Busy(self.capacity)
        })?;
        let running = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| ScreeningError::Failed(error.to_string()))?;
        let pipeline = self.pipeline.clone();
        let metrics = self.metrics.clone();
        // A child span of the call, with its timing, on the blocking thread.
        let span = tracing::info_span!(parent: Span::current(), "screening");
        // The permits go with the work: a caller that gives up (a reset, a
        // timeout) does not free its place while its screening still runs.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            let _entered = span.enter();
            let started = std::time::Instant::now();
            let verdict = pipeline.screen(author_name.as_ref(), &text);
            metrics
                .screening_duration
                .observe(started.elapsed().as_secs_f64());
            verdict
        })
        .await
        .map_err(|error| ScreeningError::Failed(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screening::{Models, ProfanityPolicy, SpamPolicy, TermList, ToxicityPolicy};

    fn pool(size: PoolSize) -> Arc<ScreeningPool> {
        let pipeline = Pipeline::new(
            ProfanityPolicy::default(),
            SpamPolicy::default(),
            ToxicityPolicy::default(),
            Arc::new(TermList::new(&[])),
            Models::default(),
        );
        Arc::new(ScreeningPool::new(pipeline, size, Arc::new(Metrics::new())))
    }

    #[tokio::test]
    async fn screening_runs_and_answers() {
        let pool = pool(PoolSize::default());
        let text = CommentText::parse("A fair point about the budget.", 100).unwrap();
        let verdict = pool.screen(None, text).await.unwrap();
        assert_eq!(verdict.decision, crate::domain::Decision::Approved);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_queue_calls_are_refused_not_queued() {
        let pool = pool(PoolSize {
            workers: 1,
            queue: 2,
        });
        let text = CommentText::parse(&"word ".repeat(900), 5_000).unwrap();
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let pool = pool.clone();
                let text = text.clone();
                tokio::spawn(async move { pool.screen(None, text).await })
            })
            .collect();
        let mut busy = 0;
        let mut screened = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => screened += 1,
                Err(ScreeningError::Busy(3)) => busy += 1,
                Err(error) => panic!("{error}"),
            }
        }
        assert!(busy > 0, "no call was refused");
        assert!(screened >= 3, "{screened} screened");
    }
}
