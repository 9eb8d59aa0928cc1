//! Sans-IO apply scheduling: which certified write-set may start applying,
//! and how far the in-order visible watermark may move.
//!
//! Positions enter in seqno order. A write-set starts applying once every
//! position at or below its `depends_on` has finished applying and a worker
//! is free; positions with nothing to apply (aborted write-sets, barriers)
//! finish on entry. `last_applied` is the highest seqno at or below which
//! everything has finished; the engine makes positions visible up to it,
//! one request at a time, so they become visible strictly in seqno order
//! (`last_visible`).

use std::collections::{BTreeSet, VecDeque};

use crate::ids::Seqno;

/// What to do at an admitted position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Apply a committed write-set after everything at or below `depends_on`.
    Apply {
        /// From certification.
        depends_on: Seqno,
    },
    /// Nothing to apply, but the watermark must pass this position.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Waiting,
    Applying,
    Done,
}

/// The scheduler. Bounded: at most `capacity` positions between the
/// visible watermark and the last admitted one, at most `workers` applying at once.
#[derive(Clone, Debug)]
pub struct ApplyScheduler {
    workers: usize,
    capacity: usize,
    last_visible: Seqno,
    visible_requested: Seqno,
    last_applied: Seqno,
    last_admitted: Seqno,
    /// One slot per position in `last_visible + 1 ..= last_admitted`.
    slots: VecDeque<Slot>,
    /// Waiting positions keyed by (depends_on, seqno): the first entry is
    /// eligible exactly when any entry is.
    waiting: BTreeSet<(Seqno, Seqno)>,
    in_flight: usize,
}

impl ApplyScheduler {
    /// A scheduler whose watermarks start at `start`: everything at or
    /// below it is applied and visible.
    ///
    /// # Panics
    /// Panics if `workers` or `capacity` is zero.
    #[must_use]
    pub fn new(workers: usize, capacity: usize, start: Seqno) -> Self {
        assert!(workers > 0, "apply needs at least one worker");
        assert!(capacity > 0, "apply queue capacity must be positive");
        ApplyScheduler {
            workers,
            capacity,
            last_visible: start,
            visible_requested: start,
            last_applied: start,
            last_admitted: start,
            slots: VecDeque::with_capacity(capacity),
            waiting: BTreeSet::new(),
            in_flight: 0,
        }
    }

    /// Whether another position can be admitted.
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.slots.len() < self.capacity
    }

    /// Admits the next position.
    ///
    /// # Panics
    /// Panics if `seqno` is not the next position, the queue is full, or the
    /// dependency is not before `seqno`.
    pub fn admit(&mut self, seqno: Seqno, job: Job) {
        assert_eq!(
            seqno,
            self.last_admitted.next(),
            "apply admission out of order"
        );
        assert!(
            self.has_room(),
            "apply queue over capacity {} at seqno {seqno}",
            self.capacity
        );
        self.last_admitted = seqno;
        match job {
            Job::Apply { depends_on } => {
                assert!(
                    depends_on < seqno,
                    "seqno {seqno} depends on later {depends_on}"
                );
                self.slots.push_back(Slot::Waiting);
                self.waiting.insert((depends_on, seqno));
            }
            Job::Skip => {
                self.slots.push_back(Slot::Done);
                self.advance_applied();
            }
        }
    }

    /// The next write-set to hand to a worker, if one is eligible and a
    /// worker is free. The caller must report it with [`Self::applied`].
    pub fn next_apply(&mut self) -> Option<Seqno> {
        if self.in_flight >= self.workers {
            return None;
        }
        let &(depends_on, seqno) = self.waiting.first()?;
        if depends_on > self.last_applied {
            return None;
        }
        self.waiting.remove(&(depends_on, seqno));
        let slot = self.slot_mut(seqno);
        assert_eq!(*slot, Slot::Waiting, "seqno {seqno} started twice");
        *slot = Slot::Applying;
        self.in_flight += 1;
        Some(seqno)
    }

    /// Reports that a worker finished applying `seqno`.
    ///
    /// # Panics
    /// Panics if `seqno` was not handed out by [`Self::next_apply`].
    pub fn applied(&mut self, seqno: Seqno) {
        let slot = self.slot_mut(seqno);
        assert_eq!(
            *slot,
            Slot::Applying,
            "seqno {seqno} finished but was not applying"
        );
        *slot = Slot::Done;
        self.in_flight -= 1;
        self.advance_applied();
    }

    /// The watermark to make visible next, if it moved since the last
    /// request and the last request was carried out: one request is in
    /// flight at a time, and the next covers everything applied meanwhile
    /// (the store's group commit).
    pub fn next_visible(&mut self) -> Option<Seqno> {
        if self.last_applied <= self.visible_requested || self.visible_requested > self.last_visible
        {
            return None;
        }
        self.visible_requested = self.last_applied;
        Some(self.visible_requested)
    }

    /// Reports that the engine made everything at or below `upto` visible.
    ///
    /// # Panics
    /// Panics if `upto` was not requested by [`Self::next_visible`] or moves
    /// the watermark backwards.
    pub fn visible(&mut self, upto: Seqno) {
        assert!(
            upto > self.last_visible,
            "visible watermark regressed to {upto}"
        );
        assert!(
            upto <= self.visible_requested,
            "visibility up to {upto} was never requested"
        );
        let count = upto.distance_from(self.last_visible) as usize;
        for slot in self.slots.drain(..count) {
            assert_eq!(
                slot,
                Slot::Done,
                "made visible a position that was not applied"
            );
        }
        self.last_visible = upto;
    }

    /// Everything at or below this is applied and visible.
    #[must_use]
    pub fn last_visible(&self) -> Seqno {
        self.last_visible
    }

    /// Everything at or below this has finished applying.
    #[must_use]
    pub fn last_applied(&self) -> Seqno {
        self.last_applied
    }

    /// The last admitted position.
    #[must_use]
    pub fn last_admitted(&self) -> Seqno {
        self.last_admitted
    }

    /// Positions admitted and not yet visible.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.slots.len()
    }

    /// Write-sets currently with workers.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Asserts the ordering chain and the bounds.
    ///
    /// # Panics
    /// Panics with the offending values when an invariant is violated.
    pub fn check_invariants(&self) {
        assert!(self.last_visible <= self.visible_requested, "{self:?}");
        assert!(self.visible_requested <= self.last_applied, "{self:?}");
        assert!(self.last_applied <= self.last_admitted, "{self:?}");
        assert!(self.in_flight <= self.workers, "{self:?}");
        assert!(self.slots.len() <= self.capacity, "{self:?}");
        let span = self.last_admitted.distance_from(self.last_visible) as usize;
        assert_eq!(self.slots.len(), span, "{self:?}");
    }

    fn slot_mut(&mut self, seqno: Seqno) -> &mut Slot {
        let offset = seqno.distance_from(self.last_visible) as usize;
        assert!(
            offset >= 1 && seqno <= self.last_admitted,
            "seqno {seqno} is not queued"
        );
        &mut self.slots[offset - 1]
    }

    fn advance_applied(&mut self) {
        let mut offset = self.last_applied.distance_from(self.last_visible) as usize;
        while self.slots.get(offset) == Some(&Slot::Done) {
            offset += 1;
            self.last_applied = self.last_applied.next();
        }
    }
}
