//! [`Cause`]: a shareable, typed source for errors that must stay `Clone`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The underlying error of a failure that is reported to many waiters (a
/// storage engine's I/O error, say): the original error behind an `Arc`, so
/// the enums that carry it stay `Clone` while [`StdError::source`] still
/// reaches it. Two causes are equal only when they are the same failure.
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync + 'static>);

impl Cause {
    /// Wraps `err`.
    pub fn new(err: impl StdError + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(err))
    }

    /// The wrapped error, to downcast.
    #[must_use]
    pub fn get(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_shows_and_reaches_its_error_and_equals_only_itself() {
        let io = std::io::Error::other("disk gone");
        let cause = Cause::new(io);
        assert_eq!(cause.to_string(), "disk gone");
        assert!(cause.get().downcast_ref::<std::io::Error>().is_some());
        assert!(cause.source().is_some());
        assert_eq!(cause, cause.clone());
        assert_ne!(cause, Cause::new(std::io::Error::other("disk gone")));
    }
}
