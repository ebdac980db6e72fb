//! Each edge thread's sign of life. The threads serve the apps' host-routed traffic on
//! event loops of their own, apart from the runtime the API and the systemd watchdog run
//! on, so a loop stuck in work that never yields would go unseen there: each loop records
//! a beat every second, and the watchdog and `/health` ask whether every one still does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a running edge loop records that it runs.
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// The least silence that counts as stuck: a few beats, so a loop busy for a moment (a
/// burst of connections) is not taken for a hung one.
pub const SILENT_AFTER_AT_LEAST: Duration = Duration::from_secs(3);

/// The last beat of each edge thread.
pub struct Heartbeats {
    epoch: Instant,
    /// Per thread (slot 1 at index 0): milliseconds from `epoch` to its last beat, plus
    /// one; 0 until the edge opens (from then a thread that never beats is silent too).
    last: Box<[AtomicU64]>,
}

/// An edge thread that has not beaten for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    /// Its slot (`lakefly-edge-N`).
    pub slot: usize,
    /// How long since its last beat.
    pub for_: Duration,
}

impl Heartbeats {
    /// Beats for `threads` threads, none started.
    pub fn new(threads: usize) -> Self {
        Heartbeats {
            epoch: Instant::now(),
            last: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts every thread as started now: the edge is opening, and from now on each must
    /// beat (one whose loop never started is as stuck as one that stopped).
    pub fn open(&self) {
        let now = Instant::now();
        for slot in 1..=self.last.len() {
            self.beat_at(slot, now);
        }
    }

    /// Records that the loop of thread `slot` (from 1) runs now.
    pub fn beat(&self, slot: usize) {
        self.beat_at(slot, Instant::now());
    }

    fn beat_at(&self, slot: usize, at: Instant) {
        if let Some(last) = slot.checked_sub(1).and_then(|i| self.last.get(i)) {
            let ms = at.saturating_duration_since(self.epoch).as_millis() as u64;
            last.store(ms + 1, Ordering::Relaxed);
        }
    }

    /// The threads that have not beaten for longer than `max` (at least
    /// [`SILENT_AFTER_AT_LEAST`]) since the edge opened; none before it does.
    pub fn silent(&self, max: Duration) -> Vec<Silent> {
        self.silent_at(max, Instant::now())
    }

    fn silent_at(&self, max: Duration, now: Instant) -> Vec<Silent> {
        let max = max.max(SILENT_AFTER_AT_LEAST);
        let now = now.saturating_duration_since(self.epoch);
        self.last
            .iter()
            .enumerate()
            .filter_map(|(i, last)| {
                let beat = last.load(Ordering::Relaxed).checked_sub(1)?;
                let for_ = now.saturating_sub(Duration::from_millis(beat));
                (for_ > max).then_some(Silent { slot: i + 1, for_ })
            })
            .collect()
    }
}

/// Beats for thread `slot` for as long as its loop runs this task.
pub async fn keep_beating(beats: std::sync::Arc<Heartbeats>, slot: usize) {
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        beats.beat(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_silent_once_its_last_beat_is_older_than_the_limit() {
        let beats = Heartbeats::new(3);
        let start = beats.epoch;
        beats.beat_at(1, start);
        beats.beat_at(2, start + Duration::from_secs(8));
        // Thread 3 never beat, and the edge has not opened: nothing yet asks it to.
        let now = start + Duration::from_secs(10);
        assert_eq!(
            beats.silent_at(Duration::from_secs(5), now),
            vec![Silent {
                slot: 1,
                for_: Duration::from_secs(10)
            }]
        );
        assert!(beats.silent_at(Duration::from_secs(11), now).is_empty());
    }

    #[test]
    fn once_the_edge_opens_a_thread_that_never_beats_is_silent() {
        let beats = Heartbeats::new(2);
        beats.open();
        beats.beat(2);
        let later = Instant::now() + SILENT_AFTER_AT_LEAST + Duration::from_millis(10);
        let silent = beats.silent_at(Duration::ZERO, later);
        assert_eq!(
            silent.iter().map(|s| s.slot).collect::<Vec<_>>(),
            vec![1, 2],
            "neither beat since: {silent:?}"
        );
        beats.beat_at(1, later);
        assert_eq!(beats.silent_at(Duration::ZERO, later).len(), 1);
    }

    #[test]
    fn a_limit_shorter_than_a_few_beats_is_raised() {
        let beats = Heartbeats::new(1);
        beats.beat_at(1, beats.epoch);
        let now = beats.epoch + SILENT_AFTER_AT_LEAST;
        assert!(beats.silent_at(Duration::from_millis(100), now).is_empty());
        let later = now + Duration::from_millis(1);
        assert_eq!(beats.silent_at(Duration::from_millis(100), later).len(), 1);
    }

    #[test]
    fn a_slot_out_of_range_is_ignored() {
        let beats = Heartbeats::new(1);
        beats.beat(0);
        beats.beat(2);
        assert!(beats.last.iter().all(|b| b.load(Ordering::Relaxed) == 0));
    }
}
