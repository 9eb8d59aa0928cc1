//! [`FaultyEngine`]: an engine that fails on command, for testing how a
//! node and its cluster live through a sick disk (a full disk, an I/O
//! error) without touching a real one.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;

use super::engine::{Engine, WriteBatch};
use super::error::EngineError;
use crate::Cause;

/// What a [`FaultyEngine`] does with writes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Writes go through.
    None,
    /// Every write fails as a full disk does (`ENOSPC`); nothing is written.
    DiskFull,
    /// Every write fails with an I/O error (`EIO`); nothing is written.
    Io,
}

impl Fault {
    fn code(self) -> u8 {
        match self {
            Fault::None => 0,
            Fault::DiskFull => 1,
            Fault::Io => 2,
        }
    }

    fn from_code(code: u8) -> Fault {
        match code {
            1 => Fault::DiskFull,
            2 => Fault::Io,
            _ => Fault::None,
        }
    }

    fn error(self) -> Option<io::Error> {
        match self {
            Fault::None => None,
            Fault::DiskFull => Some(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected)",
            )),
            Fault::Io => Some(io::Error::other("Input/output error (injected)")),
        }
    }
}

/// Switches the faults of the [`FaultyEngine`]s it was given to.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch(Arc<AtomicU8>);

impl FaultSwitch {
    /// A switch set to [`Fault::None`].
    #[must_use]
    pub fn new() -> Self {
        FaultSwitch::default()
    }

    /// From now on, writes do what `fault` says.
    pub fn set(&self, fault: Fault) {
        self.0.store(fault.code(), Ordering::Release);
    }

    /// The fault in force.
    #[must_use]
    pub fn get(&self) -> Fault {
        Fault::from_code(self.0.load(Ordering::Acquire))
    }
}

/// An engine over another whose writes fail while its [`FaultSwitch`] says
/// so. Reads always go through: the disk is full, not gone.
pub struct FaultyEngine {
    inner: Arc<dyn Engine>,
    switch: FaultSwitch,
}

impl FaultyEngine {
    /// Wraps `inner`; `switch` turns the faults on and off.
    #[must_use]
    pub fn new(inner: Arc<dyn Engine>, switch: FaultSwitch) -> Self {
        FaultyEngine { inner, switch }
    }
}

impl Engine for FaultyEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        self.inner.scan(start, end, limit)
    }

    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        self.inner.scan_rev(start, end, limit)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        match self.switch.get().error() {
            Some(err) => Err(EngineError::Io(Cause::new(err))),
            None => self.inner.write(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryEngine;

    #[test]
    fn writes_fail_while_the_switch_is_on_and_nothing_is_written() {
        let switch = FaultSwitch::new();
        let engine = FaultyEngine::new(Arc::new(MemoryEngine::new()), switch.clone());
        let batch = |value: &'static str| {
            let mut batch = WriteBatch::new();
            batch.put("k", value);
            batch
        };
        engine.write(batch("a")).unwrap();
        switch.set(Fault::DiskFull);
        let err = engine.write(batch("b")).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(engine.get(b"k").unwrap().as_deref(), Some(&b"a"[..]));
        switch.set(Fault::None);
        engine.write(batch("c")).unwrap();
        assert_eq!(engine.get(b"k").unwrap().as_deref(), Some(&b"c"[..]));
    }
}
