//! The apply worker pool: the async shell that runs [`Applier::apply`] for
//! the write-sets the scheduler releases.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::applier::{Applier, ApplyError};
use crate::ids::Seqno;
use crate::writeset::WriteSet;

/// A write-set handed to a worker.
#[derive(Debug)]
pub(crate) struct ApplyJob {
    pub(crate) seqno: Seqno,
    pub(crate) ws: Arc<WriteSet>,
}

/// A worker's report.
#[derive(Debug)]
pub(crate) struct ApplyDone {
    pub(crate) seqno: Seqno,
    pub(crate) result: Result<(), ApplyError>,
}

/// `workers` tasks sharing one bounded job queue. The scheduler never has
/// more than `workers` jobs out, so [`ApplyPool::dispatch`] never waits.
#[derive(Debug)]
pub(crate) struct ApplyPool {
    jobs: mpsc::Sender<ApplyJob>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApplyPool {
    /// Starts the workers; their reports arrive on the returned receiver.
    pub(crate) fn start(
        workers: usize,
        applier: Arc<dyn Applier>,
    ) -> (ApplyPool, mpsc::Receiver<ApplyDone>) {
        let (jobs, job_rx) = mpsc::channel::<ApplyJob>(workers);
        let (done_tx, done_rx) = mpsc::channel(workers);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let tasks = (0..workers)
            .map(|_| tokio::spawn(worker(job_rx.clone(), done_tx.clone(), applier.clone())))
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
) {
    loop {
        let job = jobs.lock().await.recv().await;
        let Some(job) = job else { return };
        let (seqno, ws, applier) = (job.seqno, job.ws, applier.clone());
        // Engines block on I/O: apply off the async threads.
        let Some(result) = crate::task::blocking(move || applier.apply(seqno, &ws)).await else {
            return;
        };
        if done
            .send(ApplyDone {
                seqno: job.seqno,
                result,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}
