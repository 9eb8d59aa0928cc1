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
