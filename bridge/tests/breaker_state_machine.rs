//! The pure breaker: every trigger, the warm-up, half-open probes, forced
//! re-enable and stale outcomes, on a manual clock.

mod common;

use std::time::Duration;

use coreml_bridge::breaker::trip::{CloseReason, FallbackReason, TripReason};
use coreml_bridge::breaker::{Admission, Breaker, BreakerConfig, BreakerState, Outcome, Ticket, Transition};
use coreml_bridge::taxonomy::FailureKind;

const MS: Duration = Duration::from_millis(1);

fn ticket(b: &mut Breaker, now: Duration) -> Ticket {
    match b.admit(now, false).0 {
        Admission::Primary { ticket } => ticket,
        other => panic!("expected the primary, got {other:?}"),
    }
}

fn ok(b: &mut Breaker, now: Duration, latency: Duration) -> Vec<Transition> {
    let t = ticket(b, now);
    b.record(t, Outcome::success(latency), now)
}

fn fail(b: &mut Breaker, now: Duration, kind: FailureKind) -> Vec<Transition> {
    let t = ticket(b, now);
    b.record(t, Outcome::failure(kind, MS), now)
}

fn opened(ts: &[Transition]) -> Option<&TripReason> {
    ts.iter().find_map(|t| match t {
        Transition::Opened { reason } => Some(reason),
        _ => None,
    })
}

#[test]
fn warmup_of_ten_failures_never_trips_the_eleventh_does() {
    let _watchdog =
        common::Watchdog::new("warmup_of_ten_failures_never_trips_the_eleventh_does", Duration::from_secs(10));
    let mut b = Breaker::new(BreakerConfig::default());
    for i in 0..10 {
        assert!(fail(&mut b, Duration::ZERO, FailureKind::Other).is_empty(), "tripped at inference {}", i + 1);
        assert_eq!(b.state(), BreakerState::Closed);
    }
    let ts = fail(&mut b, Duration::ZERO, FailureKind::Other);
    assert!(matches!(opened(&ts), Some(TripReason::SuccessRate { rate, .. }) if *rate == 0.0), "{ts:?}");
    assert_eq!(b.state(), BreakerState::Open);
    match b.admit(Duration::ZERO, false).0 {
        Admission::Fallback { reason: FallbackReason::BreakerOpen { since } } => {
            assert!(matches!(since, TripReason::SuccessRate { .. }))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn success_rate_just_below_95_percent_over_the_window_trips() {
    let _watchdog =
        common::Watchdog::new("success_rate_just_below_95_percent_over_the_window_trips", Duration::from_secs(10));
    let cfg = BreakerConfig { window: 20, ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    for _ in 0..30 {
        assert!(ok(&mut b, Duration::ZERO, MS).is_empty());
    }
    // 1 failure in 20 = 95 %: not below the threshold.
    assert!(fail(&mut b, Duration::ZERO, FailureKind::Timeout).is_empty());
    for _ in 0..5 {
        assert!(ok(&mut b, Duration::ZERO, MS).is_empty());
    }
    // 2 in 20 = 90 %.
    let ts = fail(&mut b, Duration::ZERO, FailureKind::Timeout);
    match opened(&ts) {
        Some(TripReason::SuccessRate { rate, window, .. }) => {
            assert_eq!(*window, 20);
            assert!((rate - 0.9).abs() < 1e-9);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn p99_over_three_times_the_sla_three_checks_in_a_row_trips() {
    let _watchdog =
        common::Watchdog::new("p99_over_three_times_the_sla_three_checks_in_a_row_trips", Duration::from_secs(10));
    let cfg = BreakerConfig { sla_p99: Some(50 * MS), window: 20, ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    for _ in 0..12 {
        assert!(ok(&mut b, Duration::ZERO, 10 * MS).is_empty());
    }
    // Slow but successful: the window's p99 goes over 3× the SLA.
    assert!(ok(&mut b, Duration::ZERO, 160 * MS).is_empty(), "1st violation");
    assert!(ok(&mut b, Duration::ZERO, 10 * MS).is_empty(), "2nd violation");
    let ts = ok(&mut b, Duration::ZERO, 10 * MS);
    match opened(&ts) {
        Some(TripReason::SlaViolations { p99, sla, factor, times }) => {
            assert_eq!((*p99, *sla, *factor, *times), (160 * MS, 50 * MS, 3.0, 3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sla_violations_during_warmup_do_not_count_and_a_recovered_p99_resets_the_count() {
    let _watchdog = common::Watchdog::new(
        "sla_violations_during_warmup_do_not_count_and_a_recovered_p99_resets_the_count",
        Duration::from_secs(10),
    );
    let cfg = BreakerConfig { sla_p99: Some(50 * MS), window: 2, ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    for _ in 0..10 {
        assert!(ok(&mut b, Duration::ZERO, 190 * MS).is_empty(), "slow during warm-up");
    }
    // [slow, fast]: 1st violation; [fast, fast]: recovered, count reset.
    for _ in 0..5 {
        assert!(ok(&mut b, Duration::ZERO, MS).is_empty());
        assert!(ok(&mut b, Duration::ZERO, MS).is_empty());
        assert!(ok(&mut b, Duration::ZERO, 190 * MS).is_empty());
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn helper_memory_over_its_limit_trips_after_warmup_only() {
    let _watchdog =
        common::Watchdog::new("helper_memory_over_its_limit_trips_after_warmup_only", Duration::from_secs(10));
    let cfg = BreakerConfig { memory_limit: Some(1 << 30), ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    assert!(b.record_memory(2 << 30, Duration::ZERO).is_empty(), "during warm-up");
    for _ in 0..10 {
        ok(&mut b, Duration::ZERO, MS);
    }
    assert!(b.record_memory(512 << 20, Duration::ZERO).is_empty(), "under the limit");
    let ts = b.record_memory(3 << 30, Duration::ZERO);
    assert!(
        matches!(opened(&ts), Some(TripReason::MemoryOverLimit { bytes, limit }) if *bytes == 3 << 30 && *limit == 1 << 30)
    );
}

#[test]
fn repeated_helper_crashes_within_the_window_trip_spread_out_ones_do_not() {
    let _watchdog = common::Watchdog::new(
        "repeated_helper_crashes_within_the_window_trip_spread_out_ones_do_not",
        Duration::from_secs(10),
    );
    let cfg = BreakerConfig { crash_limit: 3, crash_window: Duration::from_secs(60), ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    let mut now = Duration::ZERO;
    for _ in 0..40 {
        ok(&mut b, now, MS);
    }
    // Three crashes, 61 s apart: never three in one window.
    for _ in 0..3 {
        now += Duration::from_secs(61);
        assert!(b.record_crash(now).is_empty());
        for _ in 0..40 {
            ok(&mut b, now, MS);
        }
    }
    // A request that crashed the helper counts as a crash, too.
    now += Duration::from_secs(61);
    assert!(b.record_crash(now).is_empty());
    for _ in 0..30 {
        ok(&mut b, now, MS);
    }
    let t = ticket(&mut b, now);
    let ts = b.record(t, Outcome::failure(FailureKind::HelperCrash, MS), now + Duration::from_secs(1));
    assert!(ts.is_empty(), "2 crashes, success rate still >= 95%: {ts:?}");
    let ts = b.record_crash(now + Duration::from_secs(2));
    assert!(matches!(opened(&ts), Some(TripReason::HelperCrashes { count: 3, .. })), "{ts:?}");
}

#[test]
fn timed_half_open_probe_closes_on_success_and_reopens_on_failure() {
    let _watchdog = common::Watchdog::new(
        "timed_half_open_probe_closes_on_success_and_reopens_on_failure",
        Duration::from_secs(10),
    );
    let cfg = BreakerConfig { half_open_after: Some(Duration::from_secs(30)), ..BreakerConfig::default() };
    let mut b = Breaker::new(cfg);
    for _ in 0..11 {
        fail(&mut b, Duration::ZERO, FailureKind::HelperCrash);
    }
    assert_eq!(b.state(), BreakerState::Open);
    assert!(matches!(b.admit(Duration::from_secs(29), false).0, Admission::Fallback { .. }));

    // At 30 s one probe goes through; a concurrent request does not.
    let (a, ts) = b.admit(Duration::from_secs(30), false);
    assert!(matches!(ts.as_slice(), [Transition::HalfOpened { .. }]));
    let Admission::Primary { ticket: probe } = a else { panic!("{a:?}") };
    assert!(matches!(
        b.admit(Duration::from_secs(30), false).0,
        Admission::Fallback { reason: FallbackReason::ProbeInFlight }
    ));
    let ts = b.record(probe, Outcome::failure(FailureKind::Timeout, MS), Duration::from_secs(31));
    assert!(matches!(opened(&ts), Some(TripReason::ProbeFailed { kind: FailureKind::Timeout })));

    // Open again from 31 s, and the failed probe doubled the wait: the next
    // probe at 91 s succeeds and closes it.
    assert!(matches!(b.admit(Duration::from_secs(90), false).0, Admission::Fallback { .. }));
    let (a, _) = b.admit(Duration::from_secs(91), false);
    let Admission::Primary { ticket: probe } = a else { panic!("{a:?}") };
    let ts = b.record(probe, Outcome::success(MS), Duration::from_secs(91));
    assert!(matches!(ts.as_slice(), [Transition::Closed { reason: CloseReason::ProbeSucceeded { probes: 1 } }]));
    assert_eq!(b.state(), BreakerState::Closed);
    // A fresh warm-up follows.
    for _ in 0..10 {
        assert!(fail(&mut b, Duration::from_secs(92), FailureKind::Other).is_empty());
    }
}

#[test]
fn without_a_probe_interval_it_stays_open_until_forced() {
    let _watchdog =
        common::Watchdog::new("without_a_probe_interval_it_stays_open_until_forced", Duration::from_secs(10));
    let mut b = Breaker::new(BreakerConfig { half_open_after: None, ..BreakerConfig::default() });
    for _ in 0..11 {
        fail(&mut b, Duration::ZERO, FailureKind::Other);
    }
    assert!(matches!(b.admit(Duration::from_secs(86_400), false).0, Admission::Fallback { .. }));
    let t = b.force_close(Duration::from_secs(86_400));
    assert!(matches!(t, Some(Transition::Closed { reason: CloseReason::ForcedByApi })));
    assert!(b.force_close(Duration::from_secs(86_400)).is_none(), "already closed");
    assert!(matches!(b.admit(Duration::from_secs(86_400), false).0, Admission::Primary { .. }));
}

#[test]
fn forced_admission_closes_an_open_breaker_and_pins_it_suppressing_trips_once() {
    let _watchdog = common::Watchdog::new(
        "forced_admission_closes_an_open_breaker_and_pins_it_suppressing_trips_once",
        Duration::from_secs(10),
    );
    let mut b = Breaker::new(BreakerConfig::default());
    for _ in 0..11 {
        fail(&mut b, Duration::ZERO, FailureKind::Other);
    }
    let (a, ts) = b.admit(Duration::ZERO, true);
    assert!(matches!(ts.as_slice(), [Transition::Closed { reason: CloseReason::ForcedByEnv }]));
    let Admission::Primary { ticket: mut t } = a else { panic!() };
    let mut suppressed = 0;
    for _ in 0..30 {
        for tr in b.record(t, Outcome::failure(FailureKind::Other, MS), Duration::ZERO) {
            assert!(matches!(tr, Transition::Suppressed { reason: TripReason::SuccessRate { .. } }), "{tr:?}");
            suppressed += 1;
        }
        let (a, ts) = b.admit(Duration::ZERO, true);
        assert!(ts.is_empty());
        let Admission::Primary { ticket } = a else { panic!("pinned closed") };
        t = ticket;
    }
    assert_eq!(suppressed, 1, "one suppression event, not one per request");
    // Unlisted again: the next failure opens it.
    let t = ticket(&mut b, Duration::ZERO);
    let ts = b.record(t, Outcome::failure(FailureKind::Other, MS), Duration::ZERO);
    assert!(opened(&ts).is_some(), "{ts:?}");
}

#[test]
fn outcomes_admitted_before_a_transition_are_ignored() {
    let _watchdog = common::Watchdog::new("outcomes_admitted_before_a_transition_are_ignored", Duration::from_secs(10));
    let mut b = Breaker::new(BreakerConfig::default());
    let stale = ticket(&mut b, Duration::ZERO);
    for _ in 0..11 {
        fail(&mut b, Duration::ZERO, FailureKind::Other);
    }
    b.force_close(Duration::ZERO);
    assert!(b.record(stale, Outcome::failure(FailureKind::Other, MS), Duration::ZERO).is_empty());
    assert_eq!(b.recorded(), 0, "the stale outcome did not count toward the fresh warm-up");
}
