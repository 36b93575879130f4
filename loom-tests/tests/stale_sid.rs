//! Model 2: a session closes and its slot is reused while another thread still uses the old sid.

use gatehouse::{CloseReason, Frame, MemoryDriver, SendErrorKind};
use gatehouse_loom_tests::{
    assert_consistent, run_model_exhaustive, small_config, Event, Recorder,
};
use loom::thread;

/// **Property (a stale sid never reaches the session that reused its slot).** The transport
/// thread closes session `s1` (peer gone), at once accepts a new connection whose session `s2`
/// reuses `s1`'s slot, and drains its inbox; meanwhile an application thread sends a frame to
/// `s1` and then kicks `s1`. Whatever the interleaving:
///
/// * `s2` never receives the frame; the sender gets an error, or the frame is delivered to
///   `s1`'s own connection before it closes, or the transport drops it as stale and counts it
///   (in `MemoryDriver::stale` and `Inbox::stale`): exactly one of these;
/// * the stale kick never touches `s2`: `s2` stays live and unclosed, and `s1`'s `closed`
///   fires exactly once (from whichever close won), its connection closed exactly once;
/// * index and registry agree afterwards.
///
/// Threads: transport + application + main (final drain and checks). Ops: close, create,
/// drain | send, kick.
/// Catches `gatehouse_loom_mutant="conn_table_skip_generation_check"` (the transport's table
/// trusts the slot: the frame reaches `s2`) and `"skip_generation_check"` (the registry trusts
/// the slot: the stale kick closes `s2`).
#[test]
fn stale_sid_after_slot_reuse() {
    run_model_exhaustive("stale_sid_after_slot_reuse", || {
        let (service, recorder) = Recorder::service(small_config(), true);
        let mut driver = MemoryDriver::new(service.clone());
        let s1 = driver.connect(None).unwrap();
        let late = Frame::from_static(b"late");

        let transport = thread::spawn(move || {
            driver.disconnect(s1);
            let s2 = driver.connect(None).unwrap();
            driver.poll();
            (driver, s2)
        });
        let app = {
            let service = service.clone();
            let late = late.clone();
            thread::spawn(move || {
                let sent = match service.send_message(s1, late) {
                    Ok(()) => true,
                    Err(e) => {
                        assert_eq!(e.kind, SendErrorKind::UnknownSession);
                        false
                    }
                };
                let kicked = service.kick_by_session_id(s1, Some("stale"));
                (sent, kicked)
            })
        };
        let (mut driver, s2) = transport.join().unwrap();
        let (sent, kicked) = app.join().unwrap();
        driver.poll();

        assert_eq!(
            s2.into_raw() & 0xff_ffff,
            s1.into_raw() & 0xff_ffff,
            "slot not reused"
        );
        assert!(
            driver.received(s2).is_empty(),
            "a frame for {s1:?} reached {s2:?}"
        );
        assert!(
            service.get(s2).is_some(),
            "a stale close of {s1:?} removed {s2:?}"
        );
        assert!(service.get(s1).is_none());
        assert!(
            driver.close_reason(s2).is_none(),
            "{s2:?}'s connection closed"
        );

        let delivered = driver.received(s1).iter().filter(|f| **f == late).count() as u64;
        let stale = driver.stale();
        assert_eq!(stale, service.inbox(0).unwrap().stale());
        if sent {
            assert_eq!(
                delivered + stale,
                1,
                "accepted frame: delivered {delivered}, stale {stale}"
            );
        } else {
            assert_eq!((delivered, stale), (0, 0), "refused frame was queued");
        }

        let closed = recorder.closed_counts();
        assert_eq!(closed.get(&s1), Some(&1), "{s1:?} closed {closed:?} times");
        assert_eq!(closed.get(&s2), None, "{s2:?} closed");
        let expected = if kicked {
            CloseReason::kick(Some("stale"))
        } else {
            CloseReason::PeerClosed
        };
        assert!(recorder
            .events()
            .contains(&Event::Closed(s1, None, expected.clone())));
        assert_eq!(driver.close_reason(s1), Some(&expected));
        assert_consistent(&service);
    });
}
