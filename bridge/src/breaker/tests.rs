//! Unit tests of the plan's rules that live inside the breaker: the latency
//! trigger at 3× the SLA, the doubling probe interval and given-back tickets.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn cfg_with_sla(sla: Duration) -> BreakerConfig {
    BreakerConfig { sla_p99: Some(sla), window: 20, ..BreakerConfig::default() }
}

fn ticket(b: &mut Breaker, now: Duration) -> Ticket {
    match b.admit(now, false).0 {
        Admission::Primary { ticket } => ticket,
        other => panic!("expected the primary, got {other:?}"),
    }
}

fn ok(b: &mut Breaker, latency: Duration) -> Vec<Transition> {
    let t = ticket(b, Duration::ZERO);
    b.record(t, Outcome::success(latency), Duration::ZERO)
}

fn warm(b: &mut Breaker, latency: Duration) {
    for _ in 0..b.config().warmup {
        assert!(ok(b, latency).is_empty(), "the warm-up never trips");
    }
}

#[test]
fn p99_at_exactly_three_times_the_sla_never_trips() {
    let mut b = Breaker::new(cfg_with_sla(50 * MS));
    warm(&mut b, 10 * MS);
    for _ in 0..40 {
        assert!(ok(&mut b, 150 * MS).is_empty(), "150 ms is 3× the SLA, not over it");
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn p99_between_one_and_three_times_the_sla_never_trips() {
    // The rule before the plan's: p99 over 1× the SLA. 2× must stay closed.
    let mut b = Breaker::new(cfg_with_sla(50 * MS));
    warm(&mut b, 10 * MS);
    for _ in 0..40 {
        assert!(ok(&mut b, 100 * MS).is_empty());
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn p99_over_three_times_the_sla_trips_on_the_third_check_in_a_row() {
    let mut b = Breaker::new(cfg_with_sla(50 * MS));
    warm(&mut b, 10 * MS);
    assert!(ok(&mut b, 151 * MS).is_empty(), "1st check over 3×");
    assert!(ok(&mut b, 10 * MS).is_empty(), "2nd check: the slow one is still the p99");
    let ts = ok(&mut b, 10 * MS);
    match ts.as_slice() {
        [Transition::Opened { reason: TripReason::SlaViolations { p99, sla, factor, times } }] => {
            assert_eq!((*p99, *sla, *factor, *times), (151 * MS, 50 * MS, 3.0, 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ts[0].to_string(), "breaker opened: p99 151.0ms over 3× the SLA of 50.0ms on 3 checks in a row");
}

#[test]
fn the_factor_is_configurable() {
    let mut b = Breaker::new(BreakerConfig { sla_factor: 1.0, ..cfg_with_sla(50 * MS) });
    warm(&mut b, 10 * MS);
    ok(&mut b, 60 * MS);
    ok(&mut b, 10 * MS);
    assert!(matches!(
        ok(&mut b, 10 * MS).as_slice(),
        [Transition::Opened { reason: TripReason::SlaViolations { .. } }]
    ));
}

fn open_now(b: &mut Breaker, now: Duration) {
    for _ in 0..=b.config().warmup {
        let t = ticket(b, now);
        b.record(t, Outcome::failure(FailureKind::Other, MS), now);
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn failed_probes_double_the_wait_up_to_ten_minutes_and_closing_resets_it() {
    let mut b = Breaker::new(BreakerConfig::default());
    assert_eq!(b.probe_wait(), Some(Duration::from_secs(30)), "timed half-open is on by default");
    let mut now = Duration::ZERO;
    open_now(&mut b, now);
    let mut waits = Vec::new();
    for _ in 0..7 {
        let wait = b.probe_wait().unwrap();
        waits.push(wait.as_secs());
        assert!(matches!(b.admit(now + wait - MS, false).0, Admission::Fallback { .. }), "too early");
        now += wait;
        let probe = ticket(&mut b, now);
        assert!(probe.probe);
        b.record(probe, Outcome::failure(FailureKind::Timeout, MS), now);
    }
    assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
    now += b.probe_wait().unwrap();
    let probe = ticket(&mut b, now);
    b.record(probe, Outcome::success(MS), now);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.probe_wait(), Some(Duration::from_secs(30)), "closing resets the wait");
}

#[test]
fn a_released_probe_ticket_lets_the_next_request_probe() {
    let mut b = Breaker::new(BreakerConfig::default());
    open_now(&mut b, Duration::ZERO);
    let at = Duration::from_secs(30);
    let probe = ticket(&mut b, at);
    assert!(matches!(b.admit(at, false).0, Admission::Fallback { reason: FallbackReason::ProbeInFlight }));
    let recorded = b.recorded();
    b.release(probe);
    let next = ticket(&mut b, at);
    assert!(next.probe, "the next request is the probe");
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.recorded(), recorded, "nothing was recorded");
}

#[test]
fn a_released_ticket_records_nothing_and_a_stale_one_is_ignored() {
    let mut b = Breaker::new(BreakerConfig::default());
    for _ in 0..30 {
        let t = ticket(&mut b, Duration::ZERO);
        b.release(t);
    }
    assert_eq!((b.recorded(), b.state()), (0, BreakerState::Closed));
    open_now(&mut b, Duration::ZERO);
    let probe = ticket(&mut b, Duration::from_secs(30));
    b.force_close(Duration::from_secs(30));
    open_now(&mut b, Duration::from_secs(30));
    let fresh = ticket(&mut b, Duration::from_secs(60));
    b.release(probe); // from an older generation: must not free the fresh probe's place
    assert!(fresh.probe);
    assert!(matches!(
        b.admit(Duration::from_secs(60), false).0,
        Admission::Fallback { reason: FallbackReason::ProbeInFlight }
    ));
}

#[test]
fn memory_is_checked_against_the_budget_of_the_models_domain() {
    let mut b = Breaker::new(BreakerConfig { memory_limit: Some(4 << 30), ..BreakerConfig::default() });
    warm(&mut b, MS);
    assert!(b.record_memory_within(2 << 30, None, Duration::ZERO).is_empty(), "under the default limit");
    let ts = b.record_memory_within(2 << 30, Some(1 << 30), Duration::ZERO);
    assert!(matches!(
        ts.as_slice(),
        [Transition::Opened { reason: TripReason::MemoryOverLimit { bytes, limit } }] if *bytes == 2 << 30 && *limit == 1 << 30
    ));
}
