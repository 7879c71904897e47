//! Work over many events: split over threads, results in event order, and
//! progress told to whoever runs it. Calibration, the quantization report
//! and `auto` precision each evaluate a model on thousands of events, which
//! on an image model takes minutes on one core and gives no sign of life.
//!
//! The library takes these settings as an argument (no environment
//! variables, no terminal): the command line draws the progress bar.

use crate::qmodel::QModel;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Told `(phase, done, total)` as work advances: which long step is running
/// and how far it got. Called from worker threads, so it must be `Sync`.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// A faster evaluator of a quantized model's outputs, bit-exact to the
/// golden model: the CPU engine, which the command line passes in (this
/// crate sits before it in the flow and cannot call it). Gives the flat
/// dequantized outputs of the events, or `None` to use the golden model.
pub type FixedEval<'a> = &'a (dyn Fn(&QModel, &[f32]) -> Option<Vec<f64>> + Sync);

/// How to run work over many events.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    /// Threads to use; 0 or 1 runs everything on the calling thread.
    pub threads: usize,
    /// Where progress goes.
    pub progress: Progress<'a>,
    /// Evaluates quantized models' outputs instead of the golden model
    /// (accuracy in reports, `auto`'s checks); `None`: the golden model.
    pub fixed: Option<FixedEval<'a>>,
}

/// Progress that goes nowhere.
fn silent(_: &str, _: usize, _: usize) {}

impl Default for Work<'_> {
    /// Every core the process may use, no progress.
    fn default() -> Self {
        Work {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: &silent,
            fixed: None,
        }
    }
}

impl<'a> Work<'a> {
    /// The same threads, telling nobody: for inner steps of a phase that
    /// reports its own progress.
    pub fn quiet(&self) -> Work<'a> {
        Work {
            progress: &silent,
            ..*self
        }
    }

    /// `f(0), ..., f(n - 1)` in that order, computed on up to `threads`
    /// threads, each taking one contiguous block of indices; progress is
    /// told under `phase`. The result is the serial one: every `f(i)` is
    /// computed independently and put at index `i`.
    pub fn map<T: Send>(&self, phase: &str, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let done = AtomicUsize::new(0);
        let step = |i: usize| {
            let y = f(i);
            (self.progress)(phase, done.fetch_add(1, Ordering::Relaxed) + 1, n);
            y
        };
        (self.progress)(phase, 0, n);
        let threads = self.threads.clamp(1, n.max(1));
        if threads == 1 {
            return (0..n).map(step).collect();
        }
        let block = n.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(block)
                .map(|start| {
                    let step = &step;
                    s.spawn(move || {
                        (start..(start + block).min(n))
                            .map(step)
                            .collect::<Vec<T>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn results_are_in_order_and_progress_reaches_the_total_on_any_thread_count() {
        for threads in [0, 1, 2, 3, 8, 200] {
            let seen = Mutex::new(Vec::new());
            {
                let progress = |phase: &str, done: usize, total: usize| {
                    seen.lock().unwrap().push((phase.to_string(), done, total));
                };
                let work = Work {
                    threads,
                    progress: &progress,
                    fixed: None,
                };
                let squares: Vec<usize> = (0..101).map(|i| i * i).collect();
                assert_eq!(work.map("sq", 101, |i| i * i), squares);
            }
            let seen = seen.into_inner().unwrap();
            assert_eq!(seen.len(), 102, "one report at the start, one per item");
            assert!(seen.iter().all(|(p, _, t)| p == "sq" && *t == 101));
            assert_eq!(seen.iter().map(|s| s.1).max(), Some(101));
            assert!(Work::default().map("none", 0, |i| i).is_empty());
        }
    }
}
