//! Cluster model 2: single-session fences (`cluster/src/frontend.rs`, `Claims`). Two bridge
//! threads of one frontend apply, under one lock, the result of our claim for a local session
//! (`granted`, tx bridge) and a claim kick from another frontend (`fence`, rx bridge), in
//! either order.

use gatehouse::Sid;
use gatehouse_cluster::__loom::Claims;
use gatehouse_loom_tests::run_model_exhaustive;
use loom::sync::{Arc, Mutex};
use loom::thread;

/// One local session racing kicks: its uid, its claim's generation, the fences of the kicks
/// for that uid in their arrival order on the rx bridge.
struct Case {
    uid: &'static str,
    sid: Sid,
    gen: u64,
    fences: &'static [u64],
}

/// **Property (the highest generation survives).** For a local session whose claim returned
/// generation `g` and kicks with fences `f…`: the session survives (`granted` returned true and
/// no `fence` listed it) iff `g >= max(f…)`, whichever order the claim result and the kicks
/// reach the frontend. The session is bound locally before its claim is issued, so every kick
/// sees it among the uid's bound sessions.
///
/// Cases (one uid each, all in one execution, so their calls interleave too): a newer kick
/// (g 1, f 2), an older kick (g 2, f 1), the session's own generation (g 2, f 2), and two
/// kicks arriving out of order (g 2, f 3 then 1).
///
/// Threads: tx bridge + rx bridge (main). Exhaustive.
/// Catches `gatehouse_loom_mutant="claims_fence_ignores_gen"` (the older kick takes the newer
/// session) and `"claims_granted_ignores_fence"` (a kick that arrived before the claim
/// returned is forgotten: the older session survives).
#[test]
fn claims_highest_generation_survives() {
    run_model_exhaustive("claims_highest_generation_survives", || {
        let case = |uid, slot, gen, fences| Case {
            uid,
            sid: gatehouse::__private::loom::sid(1, 0, slot),
            gen,
            fences,
        };
        let cases = [
            case("u1", 1, 1, &[2]),
            case("u2", 2, 2, &[1]),
            case("u3", 3, 2, &[2]),
            case("u4", 4, 2, &[3, 1]),
        ];
        let claims = Arc::new(Mutex::new(Claims::default()));
        let tx = {
            let claims = claims.clone();
            let grants: Vec<_> = cases.iter().map(|c| (c.sid, c.uid, c.gen)).collect();
            thread::spawn(move || {
                grants
                    .into_iter()
                    .map(|(sid, uid, gen)| claims.lock().unwrap().granted(sid, uid, gen))
                    .collect::<Vec<bool>>()
            })
        };
        let mut kicked = Vec::new();
        for case in &cases {
            for &below in case.fences {
                kicked.extend(claims.lock().unwrap().fence(case.uid, below, &[case.sid]));
            }
        }
        let granted = tx.join().unwrap();
        for (case, granted) in cases.iter().zip(granted) {
            let fence = case.fences.iter().copied().max().unwrap_or(0);
            let survived = granted && !kicked.contains(&case.sid);
            assert_eq!(
                survived,
                case.gen >= fence,
                "session {:?} of {} (claim gen {}, kicks {:?}): granted {granted}, kicked {}; \
                 it must survive iff its generation is the highest",
                case.sid,
                case.uid,
                case.gen,
                case.fences,
                kicked.contains(&case.sid),
            );
        }
    });
}
