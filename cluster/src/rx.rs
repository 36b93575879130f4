//! `gh-bus-rx`: the bridge thread that owns the subscriber connection (`<prefix>:to:<node>`) and
//! the receiver-side dedup state, executes incoming requests (frontends) and answers them.
//!
//! Frames are checked before anything is trusted: a frame that fails to decode (truncated,
//! wrong version, huge lengths, unknown kinds) is counted, logged (rate-limited) and dropped;
//! a frame of another cluster (prefix) is dropped; a frame for another incarnation of this node
//! is answered without being executed. Nothing here panics on input.

use crate::acks::AckOut;
use crate::exec;
use crate::frame::{self, Body, Reply, Status};
use crate::node::{AckIn, Shared};
use crate::reliable::{Inbound, Verdict};
use crate::stats::bump;
use crate::sync::Arc;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Pause between reconnection attempts of the subscriber (it must be back fast: senders wait
/// `listener_grace` before calling a silent channel down).
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

pub(crate) struct Rx {
    shared: Arc<Shared>,
    acks: Sender<AckIn>,
    /// Per origin node: its epoch and our dedup state for it.
    inbound: HashMap<String, (u64, Inbound)>,
    /// To gh-bus-ack, which publishes the acknowledgements.
    acks_out: Sender<AckOut>,
    bad_log: LogLimit,
}

impl Rx {
    pub(crate) fn new(shared: Arc<Shared>, acks: Sender<AckIn>, acks_out: Sender<AckOut>) -> Rx {
        Rx {
            shared,
            acks,
            inbound: HashMap::new(),
            acks_out,
            bad_log: LogLimit::default(),
        }
    }

    /// Subscribes and reads until the node stops, reconnecting as needed. `ready` is told once
    /// the first subscription is in place (or why it failed).
    pub(crate) fn run(mut self, ready: Sender<Result<(), String>>) {
        let mut ready = Some(ready);
        let mut first = true;
        let shared = self.shared.clone();
        while !shared.stop.load(Ordering::Acquire) {
            let result = shared.bus.subscribe(&shared.channel).and_then(|mut sub| {
                let mut subscribed = || {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    if !first {
                        bump(&shared.stats.reconnects);
                        log::info!("cluster: subscriber back on {}", shared.channel);
                    }
                    first = false;
                };
                sub.run(&shared.stop, &mut subscribed, &mut |payload| {
                    self.on_payload(payload)
                })
            });
            match result {
                Ok(()) => return,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        // The first subscription failed: the node does not start.
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                    shared.check_link.store(true, Ordering::Release);
                    log::warn!("cluster: subscriber lost ({e}); subscribing again");
                    std::thread::sleep(RECONNECT_PAUSE);
                }
            }
        }
    }

    pub(crate) fn on_payload(&mut self, payload: &[u8]) {
        let decoded = match frame::decode(payload, self.shared.config.max_frame) {
            Ok(d) => d,
            Err(e) => {
                bump(&self.shared.stats.bad_frames);
                if self.bad_log.allow() {
                    log::warn!(
                        "cluster: dropped a bad frame on {} ({} bytes): {e}",
                        self.shared.channel,
                        payload.len()
                    );
                }
                return;
            }
        };
        let h = &decoded.header;
        if h.cluster != self.shared.tag {
            bump(&self.shared.stats.foreign_frames);
            return;
        }
        match decoded.body {
            Body::Ack(replies) => {
                let ack = AckIn {
                    from: h.origin.to_string(),
                    from_epoch: h.origin_epoch,
                    through: h.seq,
                    replies: replies
                        .iter()
                        .map(|r| (r.req, r.status as u8, r.body.to_vec()))
                        .collect(),
                };
                // A full queue drops the ack: the sender retransmits and is answered again.
                let _ = self.acks.try_send(ack);
            }
            Body::Data(requests) => {
                if h.dest_epoch != self.shared.epoch {
                    self.answer_stale(h, &requests);
                    return;
                }
                let origin = h.origin;
                let (epoch, _) = self
                    .inbound
                    .entry(origin.to_string())
                    .or_insert_with(|| (h.origin_epoch, Inbound::new()));
                if *epoch != h.origin_epoch {
                    // The sender restarted: a new stream from seq 1.
                    self.inbound
                        .insert(origin.to_string(), (h.origin_epoch, Inbound::new()));
                }
                let Some((_, inbound)) = self.inbound.get_mut(origin) else {
                    return;
                };
                match inbound.accept(h.seq, h.floor) {
                    Verdict::Execute => {
                        bump(&self.shared.stats.frames_executed);
                        let results: Vec<(u32, Status, Vec<u8>)> = requests
                            .iter()
                            .map(|r| {
                                let (status, body) = match &self.shared.frontend {
                                    Some(front) => exec::execute(front, &r.op),
                                    None => (Status::Refused, b"not a frontend".to_vec()),
                                };
                                (r.req, status, body)
                            })
                            .collect();
                        let replies: Vec<Reply<'_>> = results
                            .iter()
                            .map(|(req, status, body)| Reply {
                                req: *req,
                                status: *status,
                                body,
                            })
                            .collect();
                        let through = inbound.acked_through();
                        // Kept for a duplicate of this frame (the sender missed our ack).
                        let ack = frame::encode_ack(
                            self.shared.tag,
                            &self.shared.config.node_id,
                            self.shared.epoch,
                            h.origin_epoch,
                            through,
                            &replies,
                        );
                        inbound.remember(h.seq, ack);
                        self.send(AckOut::Replies {
                            origin: origin.to_string(),
                            origin_epoch: h.origin_epoch,
                            through,
                            replies: results,
                        });
                    }
                    Verdict::Duplicate => {
                        bump(&self.shared.stats.duplicates);
                        let ack = match inbound.remembered(h.seq) {
                            Some(ack) => ack.to_vec(),
                            None => {
                                plain_ack(&self.shared, h.origin_epoch, inbound.acked_through())
                            }
                        };
                        self.raw(origin, ack);
                    }
                    Verdict::Gap => {
                        bump(&self.shared.stats.gaps);
                        let ack = plain_ack(&self.shared, h.origin_epoch, inbound.acked_through());
                        self.raw(origin, ack);
                    }
                }
            }
        }
    }

    /// A frame for another incarnation of this node id: that incarnation's sessions do not
    /// exist here. Never executed. Answered "no session" if this is the frame's first
    /// transmission (so the old incarnation never saw it), "unconfirmed" otherwise.
    fn answer_stale(&mut self, h: &frame::Header<'_>, requests: &[frame::Request<'_>]) {
        bump(&self.shared.stats.stale_frames);
        let retransmit = h.flags & frame::FLAG_RETRANSMIT != 0;
        let replies: Vec<Reply<'_>> = requests
            .iter()
            .map(|r| {
                if retransmit {
                    Reply {
                        req: r.req,
                        status: Status::Refused,
                        body: frame::RESTARTED_RETRANSMIT,
                    }
                } else {
                    Reply {
                        req: r.req,
                        status: Status::NoSession,
                        body: &[],
                    }
                }
            })
            .collect();
        let ack = frame::encode_ack(
            self.shared.tag,
            &self.shared.config.node_id,
            self.shared.epoch,
            h.origin_epoch,
            0,
            &replies,
        );
        self.raw(h.origin, ack);
    }

    /// Hands an ack to gh-bus-ack; a full queue drops it (the sender retransmits).
    fn send(&self, ack: AckOut) {
        let _ = self.acks_out.try_send(ack);
    }

    fn raw(&self, origin: &str, bytes: Vec<u8>) {
        self.send(AckOut::Raw {
            origin: origin.to_string(),
            bytes,
        });
    }
}

/// An acknowledgement with no replies.
fn plain_ack(shared: &Shared, dest_epoch: u64, through: u64) -> Vec<u8> {
    frame::encode_ack(
        shared.tag,
        &shared.config.node_id,
        shared.epoch,
        dest_epoch,
        through,
        &[],
    )
}

/// At most a few log lines per second for input a peer controls.
#[derive(Default)]
struct LogLimit {
    window: Option<Instant>,
    lines: u32,
}

impl LogLimit {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        match self.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                self.lines += 1;
                self.lines <= 5
            }
            _ => {
                self.window = Some(now);
                self.lines = 1;
                true
            }
        }
    }
}
