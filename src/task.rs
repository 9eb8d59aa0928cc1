//! Helpers for the tasks of the async shell.

use tokio::task::JoinHandle;

/// Waits until `task` has ended. A panic inside it is an invariant
/// violation, so it is raised again here in the caller; a cancelled task
/// simply ends.
pub(crate) async fn join(task: JoinHandle<()>) {
    if let Err(err) = task.await
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Runs blocking work (an engine's reads, writes and fsyncs) on tokio's
/// blocking threads and returns its result, or `None` when the runtime shut
/// down before it ran. A panic inside is raised again here. In
/// [`crate::simulation`] the work runs inline, so its timing cannot vary.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if crate::simulation::active() {
        return Some(work());
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => None,
    }
}
