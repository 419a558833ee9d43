//! Shared-memory slots the helper may still reference after a request ended: input
//! slots of predictions answered with `inputs_retained` (until `InputsReleased`),
//! and slots of requests that died in flight (until the helper is reaped). A slot
//! goes back to the arena only when it leaves this ledger.
//!
//! ```text
//! held.answered_retained(id);        // Predicted{inputs_retained} dispatched
//! held.retain(id, input_slots);      // the caller hands the slots over
//! held.release(id);                  // InputsReleased: slots dropped, back to the arena
//! held.reaped();                     // helper gone: everything is free
//! ```

use std::collections::{HashMap, HashSet};

use crate::shm::arena::Slot;

#[derive(Default)]
pub(crate) struct Held {
    /// Helper gone: nothing is held any more.
    reaped: bool,
    /// Input slots of predictions answered with `inputs_retained`.
    retained: HashMap<u64, Vec<Slot>>,
    /// `InputsReleased` that arrived before the slots were handed over.
    released_early: HashSet<u64>,
    /// Requests answered with `inputs_retained` whose slots were not handed over yet.
    answered_retained: HashSet<u64>,
    /// Slots of requests that died in flight; freed once the helper is reaped.
    quarantine: Vec<Slot>,
}

impl Held {
    /// A `Predicted` with `inputs_retained` was dispatched for `id`.
    pub(crate) fn answered_retained(&mut self, id: u64) {
        self.answered_retained.insert(id);
    }

    /// Whether `id` was answered with `inputs_retained` and its slots are not
    /// handed over yet.
    pub(crate) fn awaits_handover(&self, id: u64) -> bool {
        self.answered_retained.contains(&id)
    }

    /// Keeps slots until the helper is reaped (drops them at once if it is).
    pub(crate) fn quarantine(&mut self, slots: Vec<Slot>) {
        if !self.reaped {
            self.quarantine.extend(slots);
        }
    }

    /// Takes the input slots of a prediction the helper still references (drops
    /// them if the helper already released them, or is gone).
    pub(crate) fn retain(&mut self, id: u64, slots: Vec<Slot>) {
        self.answered_retained.remove(&id);
        if !self.reaped && !self.released_early.remove(&id) {
            self.retained.insert(id, slots);
        }
    }

    /// An `InputsReleased` for `id`: frees its input slots, or remembers the
    /// release until they are handed over. `false` when nothing waits for it (an
    /// id never answered with `inputs_retained`, or a second release): a lie that
    /// would otherwise grow the ledger without bound.
    pub(crate) fn release(&mut self, id: u64) -> bool {
        if self.retained.remove(&id).is_some() {
            return true;
        }
        self.answered_retained.contains(&id) && self.released_early.insert(id)
    }

    /// The helper cannot be reaped in time: hands over every slot it may still
    /// reference, to be kept for good, and keeps nothing from now on.
    pub(crate) fn abandon(&mut self) -> Vec<Slot> {
        let mut v = std::mem::take(&mut self.quarantine);
        v.extend(self.retained.drain().flat_map(|(_, s)| s));
        self.reaped();
        v
    }

    /// The helper is gone: every slot it held is free again.
    pub(crate) fn reaped(&mut self) {
        self.reaped = true;
        self.retained.clear();
        self.quarantine.clear();
        self.answered_retained.clear();
        self.released_early.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_after_the_handover_frees_the_slots() {
        let mut h = Held::default();
        h.answered_retained(7);
        assert!(h.awaits_handover(7));
        h.retain(7, vec![]);
        assert!(!h.awaits_handover(7));
        assert!(h.retained.contains_key(&7));
        assert!(h.release(7));
        assert!(h.retained.is_empty());
    }

    #[test]
    fn a_release_before_the_handover_is_remembered_once() {
        let mut h = Held::default();
        h.answered_retained(7);
        assert!(h.release(7));
        assert!(!h.release(7), "a second release is a lie");
        h.retain(7, vec![]);
        assert!(h.retained.is_empty() && h.released_early.is_empty());
    }

    #[test]
    fn releases_nobody_waits_for_are_refused_and_not_kept() {
        let mut h = Held::default();
        for id in 0..1000 {
            assert!(!h.release(id));
        }
        assert!(h.released_early.is_empty());
        h.answered_retained(3);
        h.retain(3, vec![]);
        assert!(h.release(3));
        assert!(!h.release(3), "released twice");
    }

    #[test]
    fn nothing_is_kept_once_the_helper_is_reaped() {
        let mut h = Held::default();
        h.answered_retained(1);
        h.reaped();
        h.retain(1, vec![]);
        h.quarantine(vec![]);
        assert!(h.retained.is_empty() && !h.awaits_handover(1));
    }
}
