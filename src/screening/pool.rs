//! Screening off the async threads.
//!
//! Screening is CPU work (about 0.3 ms for a typical comment, a few ms for
//! the longest): run on tokio's worker threads it would delay every other
//! call they serve. The pool runs it on its own `workers` threads instead,
//! which take comments from one queue of at most `queue` waiting; a call
//! beyond that is refused at once with RESOURCE_EXHAUSTED rather than queued
//! without bound.
//!
//! A worker that finishes takes the next comment straight from the queue.
//! (Before, a semaphore permit went back to a waiting tokio task, which then
//! handed its comment to tokio's blocking pool: two thread wake-ups between
//! one screening and the next, which left the screening threads idle a
//! third of the time under load; see `benches/README.md`.)

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Instant,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
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

/// What the workers run: the pipeline (another function in tests).
type Screen = dyn Fn(Option<&AuthorName>, &CommentText) -> Verdict + Send + Sync;

/// One comment to screen, and where its verdict goes.
struct Job {
    author_name: Option<AuthorName>,
    text: CommentText,
    /// The caller's span: the screening is its child.
    span: Span,
    reply: oneshot::Sender<Verdict>,
    /// Its place in the pool, held until it is screened: a caller that gives
    /// up (a reset, a timeout) does not free it while the work still runs.
    _admitted: OwnedSemaphorePermit,
}

pub struct ScreeningPool {
    /// The queue the workers take from; they stop when the pool is dropped.
    jobs: mpsc::Sender<Job>,
    /// Permits to run or wait.
    admitted: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl ScreeningPool {
    /// Starts `size.workers` threads screening with `pipeline`.
    pub fn new(pipeline: Pipeline, size: PoolSize, metrics: Arc<Metrics>) -> Self {
        let screen = move |author_name: Option<&AuthorName>, text: &CommentText| {
            pipeline.screen(author_name, text)
        };
        Self::with_screen(Arc::new(screen), size, metrics)
    }

    fn with_screen(screen: Arc<Screen>, size: PoolSize, metrics: Arc<Metrics>) -> Self {
        let workers = size.workers.max(1);
        let capacity = workers + size.queue;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers {
            let (screen, queue, metrics) = (screen.clone(), queue.clone(), metrics.clone());
            thread::Builder::new()
                .name(format!("commentd-screen-{index}"))
                .spawn(move || work(&*screen, &queue, &metrics))
                .expect("starting a screening thread");
        }
        Self {
            jobs,
            admitted: Arc::new(Semaphore::new(capacity)),
            capacity,
            metrics,
        }
    }

    /// Screens on one of the pool's threads.
    pub async fn screen(
        &self,
        author_name: Option<AuthorName>,
        text: CommentText,
    ) -> Result<Verdict, ScreeningError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            self.metrics.refused_at_capacity("screening");
            ScreeningError::Busy(self.capacity)
        })?;
        let (reply, verdict) = oneshot::channel();
        let job = Job {
            author_name,
            text,
            span: tracing::info_span!(parent: Span::current(), "screening"),
            reply,
            _admitted: admitted,
        };
        self.jobs
            .send(job)
            .map_err(|_| ScreeningError::Failed("the screening threads stopped".to_owned()))?;
        verdict
            .await
            .map_err(|_| ScreeningError::Failed("screening panicked".to_owned()))
    }
}

/// A screening thread: takes the next comment as soon as it is free, until
/// the pool is dropped. A panic fails that comment only.
fn work(screen: &Screen, queue: &Mutex<mpsc::Receiver<Job>>, metrics: &Metrics) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            author_name,
            text,
            span,
            reply,
            _admitted: admitted,
        }) = next
        else {
            return;
        };
        let _entered = span.enter();
        let started = Instant::now();
        let screened = catch_unwind(AssertUnwindSafe(|| screen(author_name.as_ref(), &text)));
        metrics
            .screening_duration
            .observe(started.elapsed().as_secs_f64());
        // The place is free before the caller hears back, so a caller that
        // screens again at once finds it free.
        drop(admitted);
        match screened {
            Ok(verdict) => {
                let _ = reply.send(verdict);
            }
            Err(_) => tracing::error!("screening panicked; the call fails with INTERNAL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::screening::{Models, ProfanityPolicy, SpamPolicy, TermList, ToxicityPolicy};

    fn pipeline() -> Pipeline {
        Pipeline::new(
            ProfanityPolicy::default(),
            SpamPolicy::default(),
            ToxicityPolicy::default(),
            Arc::new(TermList::new(&[])),
            Models::default(),
        )
    }

    fn pool(size: PoolSize) -> Arc<ScreeningPool> {
        Arc::new(ScreeningPool::new(
            pipeline(),
            size,
            Arc::new(Metrics::new()),
        ))
    }

    #[tokio::test]
    async fn screening_runs_and_answers() {
        let pool = pool(PoolSize::default());
        let text = CommentText::parse("A fair point about the budget.", 100).unwrap();
        let verdict = pool.screen(None, text).await.unwrap();
        assert_eq!(verdict.decision, crate::domain::Decision::Approved);
    }

    #[tokio::test]
    async fn a_panic_fails_its_call_only_and_the_worker_goes_on() {
        let pipeline = pipeline();
        let screen = move |author: Option<&AuthorName>, text: &CommentText| {
            assert!(!text.as_str().contains("boom"), "a screening panic");
            pipeline.screen(author, text)
        };
        let size = PoolSize {
            workers: 1,
            queue: 4,
        };
        let pool = ScreeningPool::with_screen(Arc::new(screen), size, Arc::new(Metrics::new()));
        let boom = CommentText::parse("boom", 100).unwrap();
        let fine = CommentText::parse("A fair point about the budget.", 100).unwrap();
        for _ in 0..3 {
            let failed = pool.screen(None, boom.clone()).await;
            assert!(
                matches!(failed, Err(ScreeningError::Failed(_))),
                "{failed:?}"
            );
            // The one worker survived the panic and its place was freed.
            let verdict =
                tokio::time::timeout(Duration::from_secs(10), pool.screen(None, fine.clone()))
                    .await
                    .expect("the worker died with the panic")
                    .unwrap();
            assert_eq!(verdict.decision, crate::domain::Decision::Approved);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_has_its_answer_finds_its_place_free() {
        let pool = pool(PoolSize {
            workers: 1,
            queue: 0,
        });
        let text = CommentText::parse("A fair point about the budget.", 100).unwrap();
        for call in 0..200 {
            if let Err(error) = pool.screen(None, text.clone()).await {
                panic!("call {call}: {error}");
            }
        }
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
