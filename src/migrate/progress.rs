//! Progress of long steps, on stderr: one bar per task (count, rate, ETA)
//! when stderr is a terminal, plain rate-limited lines otherwise, so a CI
//! log shows where a run is without being flooded. `--quiet` silences both.
//!
//! Tasks are shared between threads (several readers feed one table), so
//! counting is a relaxed atomic add; only printing takes a lock.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// The progress display of a run.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    interval: Duration,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            multi: (mode == Mode::Bars)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            interval: Duration::from_secs(5),
        }
    }

    /// Plain lines regardless of the terminal (tests, `--log-format json`).
    pub fn lines(interval: Duration) -> Self {
        Progress {
            mode: Mode::Lines,
            multi: None,
            interval,
        }
    }

    /// A line of text that does not tear the bars.
    pub fn println(&self, msg: &str) {
        match (&self.multi, self.mode) {
            (Some(m), _) => {
                let _ = m.println(msg);
            }
            (None, Mode::Lines) => tracing::info!("{msg}"),
            _ => {}
        }
    }

    /// A task of `total` units (`None` when unknown), e.g. rows of a table.
    pub fn task(&self, name: &str, total: Option<u64>, unit: &'static str) -> Arc<Task> {
        let bar = self.multi.as_ref().map(|m| {
            let b = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{prefix:>16.bold} [{bar:28}] {human_pos}/{human_len} {msg} {per_sec:>12} ETA {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let b = m.add(b.with_style(style));
            b.set_prefix(name.to_string());
            b.set_message(unit);
            b
        });
        Arc::new(Task {
            name: name.to_string(),
            unit,
            total,
            done: AtomicU64::new(0),
            started: std::sync::OnceLock::new(),
            last_line: Mutex::new(Instant::now()),
            interval: self.interval,
            mode: self.mode,
            bar,
        })
    }
}

/// One task's progress.
pub struct Task {
    name: String,
    unit: &'static str,
    total: Option<u64>,
    done: AtomicU64,
    /// When the first unit was counted (rates start there, not at creation).
    started: std::sync::OnceLock<Instant>,
    last_line: Mutex<Instant>,
    interval: Duration,
    mode: Mode,
    bar: Option<ProgressBar>,
}

impl Task {
    /// Count `n` more units.
    pub fn inc(&self, n: u64) {
        self.started.get_or_init(Instant::now);
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match self.mode {
            Mode::Bars => {
                if let Some(b) = &self.bar {
                    b.inc(n);
                }
            }
            Mode::Lines => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= self.interval {
                    *last = Instant::now();
                    drop(last);
                    tracing::info!("{}", self.line(done));
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Units counted so far.
    pub fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Start counting again (a redone task).
    pub fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }

    fn rate(&self, done: u64) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            done as f64 / secs
        } else {
            0.0
        }
    }

    fn line(&self, done: u64) -> String {
        let rate = self.rate(done);
        let mut s = format!("{}: {}", self.name, super::thousands(done));
        if let Some(t) = self.total {
            let pct = if t > 0 {
                done as f64 * 100.0 / t as f64
            } else {
                100.0
            };
            s.push_str(&format!(
                "/{} {} ({pct:.0}%)",
                super::thousands(t),
                self.unit
            ));
            if rate > 0.0 && t > done {
                s.push_str(&format!(
                    ", {}/s, ETA {:.0}s",
                    super::thousands(rate as u64),
                    (t - done) as f64 / rate
                ));
            }
        } else {
            s.push_str(&format!(
                " {}, {}/s",
                self.unit,
                super::thousands(rate as u64)
            ));
        }
        s
    }

    /// The task is over; `summary` follows its name (e.g. "99,995 rows in 0.4s").
    pub fn finish(&self, summary: &str) {
        match self.mode {
            Mode::Bars => {
                if let Some(b) = &self.bar {
                    b.finish_with_message(format!("{} {summary}", self.unit));
                }
            }
            Mode::Lines => tracing::info!("{}: {summary}", self.name),
            Mode::Quiet => {}
        }
    }

    /// Remove the bar without a summary (a task that failed or was abandoned).
    pub fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }

    /// Time since the first unit was counted.
    pub fn elapsed(&self) -> Duration {
        self.started.get().map(|s| s.elapsed()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_and_formats_a_line() {
        let p = Progress::lines(Duration::from_secs(3600));
        let t = p.task("load users", Some(4000), "rows");
        std::thread::scope(|s| {
            for _ in 0..4 {
                let t = t.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        t.inc(1)
                    }
                });
            }
        });
        assert_eq!(t.count(), 4000);
        let l = t.line(2000);
        assert!(l.starts_with("load users: 2,000/4,000 rows (50%)"), "{l}");
        t.reset();
        assert_eq!(t.count(), 0);
    }
}
