//! The apply worker pool: the async shell that runs [`Applier::apply`] for
//! the write-sets the scheduler releases.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::applier::{Applier, ApplyError};
use bytes::Bytes;

use crate::ids::{ClusterTime, Seqno};
use crate::writeset::{Operation, RowOp, WriteSet};

/// What a committed position asks of the engine.
#[derive(Clone, Debug)]
pub(crate) enum Work {
    /// Write a write-set's rows.
    Rows(Arc<WriteSet>),
    /// Execute an operation at the cluster time of its position.
    Execute {
        op: Arc<Operation>,
        time: ClusterTime,
    },
}

/// A committed position handed to a worker.
#[derive(Debug)]
pub(crate) struct ApplyJob {
    pub(crate) seqno: Seqno,
    pub(crate) work: Work,
}

/// A worker's report: for an operation, its output.
#[derive(Debug)]
pub(crate) struct ApplyDone {
    pub(crate) seqno: Seqno,
    pub(crate) result: Result<Option<Bytes>, ApplyError>,
}

/// Write-sets a worker applies in one engine call at most.
const APPLY_BATCH: usize = 32;

/// A batch of at most this many jobs...
const INLINE_JOBS: usize = 4;
/// ...carrying at most this many key and value bytes is applied on the
/// worker's own task: a few microseconds of engine work, where a blocking
/// thread costs a wake-up there and one back.
const INLINE_BYTES: usize = 16 << 10;

impl Work {
    /// The key and value (or payload) bytes the engine will write.
    fn bytes(&self) -> usize {
        match self {
            Work::Rows(ws) => ws
                .ops()
                .iter()
                .map(|op| match op {
                    RowOp::Put { key, value } => key.len() + value.len(),
                    RowOp::Delete { key } => key.len(),
                })
                .sum(),
            Work::Execute { op, .. } => {
                op.payload().len() + op.keys().iter().map(|k| k.key.len()).sum::<usize>()
            }
        }
    }
}

/// Whether `batch` is small enough to apply without leaving the worker's
/// task (see [`INLINE_BYTES`]).
fn runs_inline(batch: &[ApplyJob]) -> bool {
    batch.len() <= INLINE_JOBS
        && batch.iter().map(|job| job.work.bytes()).sum::<usize>() <= INLINE_BYTES
}

/// `workers` tasks sharing one bounded job queue. A worker takes every job
/// queued (up to [`APPLY_BATCH`]) and applies them in one engine call, so
/// under load one engine write carries many write-sets. The scheduler never
/// has more than [`ApplyPool::slots`] jobs out, so [`ApplyPool::dispatch`]
/// never waits.
#[derive(Debug)]
pub(crate) struct ApplyPool {
    jobs: mpsc::Sender<ApplyJob>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApplyPool {
    /// How many jobs `workers` workers take at once.
    pub(crate) fn slots(workers: usize) -> usize {
        workers.max(1) * APPLY_BATCH
    }

    /// Starts the workers; their reports arrive on the returned receiver.
    pub(crate) fn start(
        workers: usize,
        applier: Arc<dyn Applier>,
        timing: Arc<crate::Histogram>,
    ) -> (ApplyPool, mpsc::Receiver<ApplyDone>) {
        let slots = ApplyPool::slots(workers);
        let (jobs, job_rx) = mpsc::channel::<ApplyJob>(slots);
        let (done_tx, done_rx) = mpsc::channel(slots);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let tasks = (0..workers)
            .map(|_| {
                let (jobs, done) = (job_rx.clone(), done_tx.clone());
                tokio::spawn(worker(jobs, done, applier.clone(), timing.clone()))
            })
            .collect();
        (ApplyPool { jobs, tasks }, done_rx)
    }

    /// Hands a job to the next free worker.
    ///
    /// # Panics
    /// Panics if the queue is full (the scheduler released more jobs than
    /// workers) or the workers are gone.
    pub(crate) fn dispatch(&self, job: ApplyJob) {
        let seqno = job.seqno;
        if let Err(err) = self.jobs.try_send(job) {
            panic!("apply pool cannot take seqno {seqno}: {err}");
        }
    }

    /// Stops the workers and waits until every one has returned, so nothing
    /// holds the applier afterwards (an engine can then be reopened).
    /// `done` is dropped first: a worker blocked reporting gives up.
    pub(crate) async fn close(mut self, done: mpsc::Receiver<ApplyDone>) {
        drop(done);
        let tasks = std::mem::take(&mut self.tasks);
        // Dropping the pool drops the job sender: idle workers see the end.
        drop(self);
        for task in tasks {
            crate::task::join(task).await;
        }
    }
}

impl Drop for ApplyPool {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn worker(
    jobs: Arc<Mutex<mpsc::Receiver<ApplyJob>>>,
    done: mpsc::Sender<ApplyDone>,
    applier: Arc<dyn Applier>,
    timing: Arc<crate::Histogram>,
) {
    loop {
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < APPLY_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let applier = applier.clone();
        let timing = timing.clone();
        let inline = runs_inline(&batch);
        let run = move || {
            let started = std::time::Instant::now();
            let reports = run_batch(&*applier, &batch);
            timing.observe(started.elapsed());
            reports
        };
        // Engines block on I/O: larger batches apply off the async threads.
        let reports = if inline {
            run()
        } else {
            let Some(reports) = crate::task::blocking(run).await else {
                return;
            };
            reports
        };
        for report in reports {
            if done.send(report).await.is_err() {
                return;
            }
        }
    }
}

/// Writes a batch's rows in one engine call and executes its operations in
/// another. Jobs released together never depend on each other, so the
/// order between the two does not matter.
fn run_batch(applier: &dyn Applier, batch: &[ApplyJob]) -> Vec<ApplyDone> {
    let mut rows = Vec::new();
    let mut ops = Vec::new();
    for job in batch {
        match &job.work {
            Work::Rows(ws) => rows.push((job.seqno, ws.as_ref())),
            Work::Execute { op, time } => ops.push((job.seqno, *time, op.as_ref())),
        }
    }
    let mut reports = Vec::with_capacity(batch.len());
    if !rows.is_empty() {
        let result = applier.apply_batch(&rows);
        reports.extend(rows.iter().map(|(seqno, _)| ApplyDone {
            seqno: *seqno,
            result: result.clone().map(|()| None),
        }));
    }
    if !ops.is_empty() {
        match applier.execute_batch(&ops) {
            Ok(outputs) => {
                assert_eq!(
                    outputs.len(),
                    ops.len(),
                    "the engine returned {} outputs for {} operations",
                    outputs.len(),
                    ops.len()
                );
                reports.extend(
                    ops.iter()
                        .zip(outputs)
                        .map(|((seqno, _, _), output)| ApplyDone {
                            seqno: *seqno,
                            result: Ok(Some(output)),
                        }),
                );
            }
            Err(err) => reports.extend(ops.iter().map(|(seqno, _, _)| ApplyDone {
                seqno: *seqno,
                result: Err(err.clone()),
            })),
        }
    }
    reports
}
