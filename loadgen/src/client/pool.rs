//! The pool of client threads, driven from the main thread.

use super::worker::Worker;
use super::{Cmd, Envelope, Report, Status, WAKER};
use crate::cpu::CpuWatch;
use crate::progress::Progress;
use crate::server::Server;
use crate::wire::{lossy, STATS};

/// The shortest interval between a pacer's wake-ups; faster schedules are sent in batches.
const MIN_PACE: Duration = Duration::from_micros(100);
/// How long before a send time a pacer stops sleeping and yields until it.
const EARLY: Duration = Duration::from_micros(80);
use mio::{Poll, Waker};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a pacer thread waits for each send time (`--pacer`; see [`Pool::pace`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pacer {
    /// Sleep to 80 µs before the send time, then yield in a loop until it: send lag ~10 µs,
    /// for a few % of a core spent yielding right before each send (the default)
    // (80 µs is `EARLY`; plain text above, since clap prints it in --help.)
    #[default]
    Spin,
    /// Sleep to the send time itself: send lag = the timer slack (~50-80 µs on a busy 2-core
    /// box), no spinning
    Sleep,
}

/// A thread's command channel: (phase, command).
type Commands = mpsc::Sender<(u64, Cmd)>;

/// The client threads, seen from the main thread: commands out, reports in, the server's CPU
/// followed while waiting, a progress line on stderr.
pub struct Pool {
    /// Each thread's commands and waker (shared with its pacer, see [`Pool::pace`]).
    workers: Vec<(Commands, Arc<Waker>)>,
    /// The current phase: reports of earlier phases (a scenario that timed out) are ignored.
    seq: u64,
    reports: mpsc::Receiver<Envelope>,
    handles: Vec<JoinHandle<()>>,
    statuses: Vec<Status>,
    /// The server's CPU, sampled while waiting for reports.
    watch: Option<CpuWatch>,
    /// The status line of the phase being waited for.
    pub progress: Progress,
}

impl Pool {
    /// Starts `n` client threads; `epoch` is time zero of every timestamp they report.
    pub fn start(n: usize, epoch: Instant) -> Result<Pool, String> {
        let (report_tx, reports) = mpsc::channel();
        let mut pool = Pool {
            workers: Vec::new(),
            reports,
            handles: Vec::new(),
            statuses: vec![Status::default(); n],
            watch: None,
            seq: 0,
            progress: Progress::new(),
        };
        for index in 0..n {
            let poll = Poll::new().map_err(|e| format!("mio::Poll: {e}"))?;
            let waker =
                Waker::new(poll.registry(), WAKER).map_err(|e| format!("mio::Waker: {e}"))?;
            let (tx, cmds) = mpsc::channel();
            let worker = Worker::new(index, epoch, poll, cmds, report_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("spawning a client thread: {e}"))?;
            pool.workers.push((tx, Arc::new(waker)));
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// How many client threads.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Sends one thread a command of the current phase.
    pub fn send(&self, worker: usize, cmd: Cmd) -> Result<(), String> {
        let (tx, waker) = &self.workers[worker];
        tx.send((self.seq, cmd))
            .map_err(|_| format!("client thread {worker} is gone"))?;
        waker
            .wake()
            .map_err(|e| format!("waking client thread {worker}: {e}"))
    }

    /// Waits for `n` reports of the current phase (one per addressed thread), at most
    /// `timeout`, sampling the server's CPU and updating the progress line meanwhile.
    pub fn gather(&mut self, n: usize, timeout: Duration) -> Result<Vec<(usize, Report)>, String> {
        let until = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            self.progress.tick();
            let mut left = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            if let Some(watch) = self.watch.as_mut() {
                watch.poke();
                left = left.min(Duration::from_millis(2));
            }
            match self.reports.recv_timeout(left) {
                Ok(env) => {
                    self.statuses[env.worker] = env.status;
                    if env.seq == self.seq {
                        out.push((env.worker, env.report));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "client threads did not report within {timeout:?} ({} of {n})",
                        out.len()
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("client threads are gone".into())
                }
            }
        }
        Ok(out)
    }

    /// Starts a new phase.
    pub fn begin(&mut self) {
        self.seq += 1;
    }

    /// Starts a new phase and sends every client thread its command.
    pub fn broadcast(&mut self, mut cmd: impl FnMut(usize) -> Cmd) -> Result<(), String> {
        self.begin();
        for w in 0..self.len() {
            self.send(w, cmd(w))?;
        }
        Ok(())
    }

    /// A request on the control connection: (sent at, ns since epoch; response body).
    pub fn request(&self, route: &'static str, body: Value) -> Result<(u64, Vec<u8>), String> {
        let (reply, rx) = mpsc::channel();
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        self.send(0, Cmd::Request { route, body, reply })?;
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("{route}: no response within 10 s"))?;
        let body = r.result.map_err(|e| format!("{route}: {e}"))?;
        Ok((r.sent_ns, body))
    }

    /// The `stats` route's answer (code 200 checked).
    pub fn stats(&self) -> Result<Value, String> {
        let (_, body) = self.request(STATS, json!({}))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("stats: response is not JSON ({e}): {}", lossy(&body)))?;
        if v["code"] != 200 {
            return Err(format!("stats: {}", lossy(&body)));
        }
        Ok(v)
    }

    /// Starts following the server's CPU (see [`CpuWatch`]).
    pub fn watch_server(&mut self, server: &Server) {
        self.watch = CpuWatch::new(server.pid, server.tck);
    }

    /// Server CPU ns and wall time since `watch_server`.
    pub fn server_cpu(&mut self) -> Option<(u64, Duration)> {
        self.watch.take()?.finish()
    }

    /// Asks every thread for its counters.
    pub fn refresh_status(&mut self) -> Result<(), String> {
        self.broadcast(|_| Cmd::Status)?;
        self.gather(self.len(), Duration::from_secs(5)).map(|_| ())
    }

    /// Ready connections lost so far (as of the last reports).
    pub fn unexpected_closes(&self) -> u64 {
        self.statuses.iter().map(|s| s.unexpected_closes).sum()
    }

    /// HEARTBEATs the clients received so far.
    pub fn heartbeats_in(&self) -> u64 {
        self.statuses.iter().map(|s| s.heartbeats_in).sum()
    }

    /// The heartbeat interval the server announced, in seconds.
    pub fn heartbeat(&self) -> Option<u64> {
        self.statuses.iter().find_map(|s| s.heartbeat)
    }

    /// Pushes that arrived when no blast was armed.
    pub fn stray_pushes(&self) -> u64 {
        self.statuses.iter().map(|s| s.stray_pushes).sum()
    }

    /// Wakes thread `worker` at `first`, then every `interval` (at least [`MIN_PACE`]) until
    /// `end`, from a thread of its own that sleeps in between: the open loop's send times.
    ///
    /// A client thread's own poll timeout has millisecond resolution (mio rounds it up), so
    /// on its own it would send up to a millisecond late; since round trips are measured from
    /// the intended send time, that lateness would show as latency. The pacer sleeps until
    /// [`EARLY`] before each send time (`thread::sleep` overshoots by tens of microseconds)
    /// and yields the CPU until the time itself, so sends leave within microseconds of their
    /// schedule for a few % of a core. With [`Pacer::Sleep`] it sleeps to the send time itself
    /// instead: no spinning, but the sleep's overshoot is added to the lateness. The echo
    /// scenario reports the remaining lateness (`echo.send_lag_*`).
    pub fn pace(
        &self,
        worker: usize,
        first: Instant,
        interval: Duration,
        end: Instant,
        mode: Pacer,
    ) -> Result<JoinHandle<()>, String> {
        let waker = Arc::clone(&self.workers[worker].1);
        let interval = interval.max(MIN_PACE);
        std::thread::Builder::new()
            .name(format!("loadgen-pace-{worker}"))
            .spawn(move || {
                let mut next = first;
                while next < end {
                    // Spin: sleep to just before the send time (a sleep overshoots by tens of
                    // microseconds), then yield until it. Sleep: sleep to the time itself.
                    let early = match mode {
                        Pacer::Spin => EARLY,
                        Pacer::Sleep => Duration::ZERO,
                    };
                    let now = Instant::now();
                    if next > now + early {
                        std::thread::sleep(next - now - early);
                    }
                    while mode == Pacer::Spin && Instant::now() < next {
                        std::thread::yield_now();
                    }
                    if waker.wake().is_err() {
                        return;
                    }
                    // Behind (a long sleep): one wake-up covers every due send.
                    let now = Instant::now();
                    while next <= now {
                        next += interval;
                    }
                }
            })
            .map_err(|e| format!("spawning a pacer thread: {e}"))
    }

    /// Why connections failed or were lost, over all threads.
    pub fn notes(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for s in &self.statuses {
            for (k, v) in &s.notes {
                *all.entry(k.clone()).or_insert(0) += v;
            }
        }
        all
    }

    /// Stops and joins every thread.
    pub fn stop(&mut self) {
        for (tx, waker) in &self.workers {
            let _ = tx.send((0, Cmd::Stop));
            let _ = waker.wake();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}
