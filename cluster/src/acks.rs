//! `gh-bus-ack`: publishes acknowledgements for `gh-bus-rx`, coalesced.
//!
//! The receiver thread never waits for Redis: it hands each executed frame's replies here and
//! reads on. This thread takes everything queued, merges the replies per origin into as few
//! ack frames as fit (`max_frame`), with the highest cumulative ack, and publishes them in one
//! pipeline — at 10k single-push frames/s that is a fraction of the publishes and none of the
//! round trips on the receive path. A lost ack (queue full, Redis down) costs nothing but a
//! retransmission: the sender sends the frame again and the receiver answers the duplicate
//! from its reply cache.

use crate::frame::{self, Reply, Status};
use crate::node::Shared;
use crate::sync::Arc;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the receiver hands over.
pub(crate) enum AckOut {
    /// The replies of one executed frame, and the cumulative ack after it.
    Replies {
        origin: String,
        origin_epoch: u64,
        through: u64,
        replies: Vec<(u32, Status, Vec<u8>)>,
    },
    /// A ready-made frame (a duplicate answered again, an answer for another incarnation).
    Raw { origin: String, bytes: Vec<u8> },
}

/// Acks taken per round (one pipeline).
const ROUND: usize = 4096;

pub(crate) fn run(shared: Arc<Shared>, queue: Receiver<AckOut>) {
    let mut link: Option<Box<dyn crate::backplane::Link>> = None;
    let mut round = Vec::with_capacity(64);
    while !shared.stop.load(Ordering::Acquire) {
        match queue.recv_timeout(Duration::from_millis(100)) {
            Ok(first) => round.push(first),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while round.len() < ROUND {
            match queue.try_recv() {
                Ok(more) => round.push(more),
                Err(_) => break,
            }
        }
        let frames = coalesce(&shared, round.drain(..));
        publish(&shared, &mut link, &frames);
    }
}

/// One or more ack frames per origin: replies merged, the highest cumulative ack on each.
fn coalesce(shared: &Shared, acks: impl Iterator<Item = AckOut>) -> Vec<(String, Vec<u8>)> {
    struct Merged {
        through: u64,
        replies: Vec<(u32, Status, Vec<u8>)>,
    }
    let mut merged: HashMap<(String, u64), Merged> = HashMap::new();
    let mut out = Vec::new();
    for ack in acks {
        match ack {
            AckOut::Raw { origin, bytes } => out.push((origin, bytes)),
            AckOut::Replies {
                origin,
                origin_epoch,
                through,
                replies,
            } => {
                let m = merged.entry((origin, origin_epoch)).or_insert(Merged {
                    through,
                    replies: Vec::new(),
                });
                m.through = m.through.max(through);
                m.replies.extend(replies);
            }
        }
    }
    let me = &shared.config.node_id;
    let max = shared.config.max_frame;
    for ((origin, epoch), m) in merged {
        let replies: Vec<Reply<'_>> = m
            .replies
            .iter()
            .map(|(req, status, body)| Reply {
                req: *req,
                status: *status,
                body,
            })
            .collect();
        // Split so every frame fits; each carries the cumulative ack.
        for range in split(me, &replies, max) {
            let bytes = frame::encode_ack(
                shared.tag,
                me,
                shared.epoch,
                epoch,
                m.through,
                &replies[range],
            );
            out.push((origin.clone(), bytes));
        }
    }
    out
}

/// Consecutive ranges of `replies` whose ack frames from `me` fit in `max` bytes (sizes summed
/// in one pass; at least one range, empty for no replies). A reply too large for any frame goes
/// alone (the receiver refuses and counts it) rather than looping.
fn split(me: &str, replies: &[Reply<'_>], max: usize) -> Vec<std::ops::Range<usize>> {
    let empty = frame::ack_len(me, &[]);
    let mut ranges = Vec::new();
    let mut start = 0;
    loop {
        let (mut end, mut len) = (start, empty);
        while end < replies.len() && end - start < u16::MAX as usize {
            let add = frame::ack_len(me, &replies[end..=end]) - empty;
            if len + add > max && end > start {
                break;
            }
            len += add;
            end += 1;
        }
        ranges.push(start..end);
        start = end;
        if start >= replies.len() {
            return ranges;
        }
    }
}

fn publish(
    shared: &Shared,
    link: &mut Option<Box<dyn crate::backplane::Link>>,
    frames: &[(String, Vec<u8>)],
) {
    if frames.is_empty() {
        return;
    }
    let channels: Vec<String> = frames.iter().map(|f| shared.bus.channel(&f.0)).collect();
    let batch: Vec<(&str, &[u8])> = channels
        .iter()
        .zip(frames)
        .map(|(c, f)| (c.as_str(), f.1.as_slice()))
        .collect();
    for _attempt in 0..2 {
        if link.is_none() {
            match shared.bus.connect() {
                Ok(l) => *link = Some(l),
                // Lost acks: the senders retransmit and are answered again.
                Err(_) => return,
            }
        }
        let Some(l) = link.as_mut() else {
            return;
        };
        match l.publish(&batch) {
            Ok(_) => return,
            Err(_) => *link = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &[u8]) -> Reply<'_> {
        Reply {
            req: 1,
            status: Status::Ok,
            body,
        }
    }

    #[test]
    fn splits_replies_into_frames_that_fit() {
        let body = [7u8; 100];
        let replies: Vec<Reply<'_>> = (0..50).map(|_| reply(&body)).collect();
        let one = frame::ack_len("fe", &replies[..1]);
        let max = frame::ack_len("fe", &replies[..10]);
        let ranges = split("fe", &replies, max);
        assert_eq!(ranges.len(), 5, "{ranges:?}");
        assert!(ranges
            .iter()
            .all(|r| frame::ack_len("fe", &replies[r.clone()]) <= max));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 50);
        // Nothing to say but the cumulative ack: one empty frame.
        assert_eq!(split("fe", &[], max), vec![0..0]);
        // A reply larger than any frame goes alone instead of looping.
        assert_eq!(split("fe", &replies[..3], one - 1), vec![0..1, 1..2, 2..3]);
    }
}
