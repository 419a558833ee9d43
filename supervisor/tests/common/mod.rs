//! Harness of the crash-isolation suite: which helpers to test, a test-friendly
//! configuration, resource snapshots (fds, zombies, shared memory) and a watchdog.
//!
//! Helpers under test: the Rust test helper (always), plus every entry of
//! `COREML_TEST_HELPERS`, separated by `;`, each `name=[launcher words...] program`
//! (the last word is the program, the words before it the launcher prefix), e.g.
//! `swift=/opt/swift-root/lib64/ld-linux-x86-64.so.2 --library-path /opt/swift-root/lib /opt/out/coreml-helper-faults`.
//! The Rust helper is `target/<profile>/coreml-test-helper` next to the test binary
//! (`cargo build -p coreml-test-helper` first), or `COREML_TEST_HELPER_BIN`.
#![allow(dead_code)]

pub mod sys;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coreml_supervisor::restart::RestartPolicy;
use coreml_supervisor::{Error, HelperCommand, Supervisor, SupervisorConfig};

/// One helper the suite runs against.
#[derive(Debug, Clone)]
pub struct HelperUnderTest {
    pub name: String,
    pub command: HelperCommand,
}

pub fn rust_helper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("COREML_TEST_HELPER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/coreml-test-helper
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("coreml-test-helper");
    assert!(p.exists(), "{} is missing: run `cargo build -p coreml-test-helper` first (or set COREML_TEST_HELPER_BIN)", p.display());
    p
}

pub fn helpers() -> Vec<HelperUnderTest> {
    let mut v = vec![HelperUnderTest {
        name: "rust".into(),
        command: HelperCommand::new(rust_helper_path()),
    }];
    if let Ok(list) = std::env::var("COREML_TEST_HELPERS") {
        for entry in list.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, words) = entry
                .split_once('=')
                .unwrap_or_else(|| panic!("COREML_TEST_HELPERS entry {entry:?} lacks name="));
            let mut words: Vec<&str> = words.split_whitespace().collect();
            let program = words
                .pop()
                .unwrap_or_else(|| panic!("COREML_TEST_HELPERS entry {entry:?} names no program"));
            v.push(HelperUnderTest {
                name: name.into(),
                command: HelperCommand::new(program).launcher(words),
            });
        }
    }
    v
}

/// The two ways a reply reaches its caller: read by the caller itself while it
/// spins (the fast lane), or by the reader task. Fault scenarios run under both.
pub fn lanes() -> [(&'static str, Duration); 2] {
    [
        ("fast lane", coreml_supervisor::DEFAULT_REPLY_SPIN),
        ("reader task", Duration::ZERO),
    ]
}

/// Short deadlines and a generous restart budget.
pub fn config(h: &HelperUnderTest) -> SupervisorConfig {
    let mut cfg = SupervisorConfig::new(h.command.clone());
    cfg.deadlines.handshake = Duration::from_secs(5);
    cfg.deadlines.load = Duration::from_secs(10);
    cfg.deadlines.predict = Duration::from_secs(3);
    cfg.deadlines.control = Duration::from_secs(3);
    cfg.deadlines.shutdown = Duration::from_secs(2);
    cfg.restart = RestartPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(100),
        max_restarts: 50,
        window: Duration::from_secs(60),
    };
    cfg.arena.region_size = 4 << 20;
    cfg.arena.max_total = 256 << 20;
    cfg.sandbox = cfg.sandbox.read_write(std::env::temp_dir());
    cfg
}

/// Open fds, zombie children and this process's shared-memory regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub fds: usize,
    pub zombies: Vec<u32>,
    pub shm: Vec<String>,
}

pub fn snapshot() -> Resources {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let me = std::process::id().to_string();
    let mut zombies = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next());
        if state == Some("Z") && ppid == Some(me.as_str()) {
            zombies.push(e.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    let shm = mapped_regions(std::process::id());
    Resources { fds, zombies, shm }
}

/// Shared-memory regions process `pid` maps: the inodes of its anonymous regions
/// (`/memfd:coreml-bridge-region`), plus any `/dev/shm` path (named shared
/// memory, which must never appear), sorted.
pub fn mapped_regions(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut v: Vec<String> = maps
        .lines()
        .filter(|l| l.contains("/memfd:coreml-bridge-region") || l.contains("/dev/shm/"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f.get(4).unwrap_or(&"?"), f[5..].join(" "))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Waits until fds, zombies and shared memory are back to `before`.
pub async fn assert_clean(before: &Resources, what: &str) {
    let t = Instant::now();
    loop {
        let now = snapshot();
        if now.fds <= before.fds && now.zombies.is_empty() && now.shm == before.shm {
            return;
        }
        if t.elapsed() > Duration::from_secs(5) {
            panic!("{what}: resources not released: before {before:?}, after {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `f` under a watchdog.
pub async fn watchdog<F: Future<Output = ()>>(limit: Duration, f: F) {
    tokio::time::timeout(limit, f)
        .await
        .expect("watchdog: test hung");
}

/// f32 test data as bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub async fn start(h: &HelperUnderTest, cfg: SupervisorConfig) -> Supervisor {
    match Supervisor::start(cfg).await {
        Ok(s) => s,
        Err(e) => panic!("[{}] helper failed to start: {e}", h.name),
    }
}

/// Waits until the supervisor runs helper generation `gen` (or later).
pub async fn wait_generation(sup: &Supervisor, gen: u64, limit: Duration) {
    let t = Instant::now();
    while sup.stats().generation < gen || sup.stats().state != coreml_supervisor::HelperState::Ready
    {
        assert!(
            t.elapsed() < limit,
            "helper generation {gen} not ready within {limit:?}: {:?}",
            sup.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The common fault scenario: a healthy echo model and a faulty one are loaded; a
/// predict on the faulty one must end with an error accepted by `expect` within its
/// budget plus a margin; the helper must be restarted and serve the healthy model;
/// afterwards no fd, zombie or shared-memory segment may be left. Returns each
/// helper's stats taken just before shutdown.
pub async fn predict_fault_scenario(
    fault: &str,
    cfg_edit: impl FnMut(&mut SupervisorConfig),
    expect: fn(&Error) -> bool,
) -> Vec<coreml_supervisor::SupervisorStats> {
    predict_fault_scenario_on(helpers(), fault, cfg_edit, expect).await
}

/// [`predict_fault_scenario`] on the given helpers only (for a fault only some
/// helpers have).
pub async fn predict_fault_scenario_on(
    hs: Vec<HelperUnderTest>,
    fault: &str,
    mut cfg_edit: impl FnMut(&mut SupervisorConfig),
    expect: fn(&Error) -> bool,
) -> Vec<coreml_supervisor::SupervisorStats> {
    let mut all = Vec::new();
    for (lane, spin) in lanes() {
        for h in hs.iter().cloned() {
            let h = HelperUnderTest {
                name: format!("{} via {lane}", h.name),
                ..h
            };
            let mut cfg = config(&h);
            cfg.reply_spin = spin;
            cfg_edit(&mut cfg);
            all.push(predict_fault_once(&h, cfg, fault, expect).await);
        }
    }
    all
}

async fn predict_fault_once(
    h: &HelperUnderTest,
    cfg: SupervisorConfig,
    fault: &str,
    expect: fn(&Error) -> bool,
) -> coreml_supervisor::SupervisorStats {
    {
        let before = snapshot();
        let budget = cfg.deadlines.predict;
        let sup = start(h, cfg).await;
        let healthy = sup
            .load("diag:echo?shape=256", None)
            .await
            .expect("load echo");
        let faulty = sup
            .load(&format!("diag:echo?shape=256&fault={fault}"), None)
            .await
            .expect("load faulty");
        let x = f32_bytes(&(0..256).map(|i| i as f32).collect::<Vec<_>>());
        let ok = sup
            .predict(healthy.id, &[("x", &x)])
            .await
            .expect("healthy predict");
        assert_eq!(ok.output("y").unwrap().to_vec(), x);
        drop(ok);

        let t = Instant::now();
        let r = sup
            .predict_with_deadline(faulty.id, &[("x", &x)], budget)
            .await;
        let took = t.elapsed();
        assert!(
            took <= budget + Duration::from_millis(1500),
            "[{}] {fault}: took {took:?}, budget {budget:?}",
            h.name
        );
        match r {
            Ok(_) => panic!("[{}] {fault}: predict succeeded", h.name),
            Err(e) => assert!(expect(&e), "[{}] {fault}: unexpected error {e:?}", h.name),
        }
        // Restarted, models reloaded, healthy model serves correct results.
        wait_generation(&sup, 2, Duration::from_secs(10)).await;
        let again = sup
            .predict(healthy.id, &[("x", &x)])
            .await
            .unwrap_or_else(|e| panic!("[{}] after {fault}: {e}", h.name));
        assert_eq!(again.output("y").unwrap().to_vec(), x);
        drop(again);
        assert!(sup.stats().restarts >= 1);
        let stats = sup.stats();
        sup.shutdown().await;
        drop(sup);
        assert_clean(&before, &format!("[{}] {fault}", h.name)).await;
        stats
    }
}

/// [`predict_fault_scenario`] for a fault that is a lie on the wire: the predict
/// fails with `ProtocolViolation{Predict}`, under a 60 s watchdog.
pub async fn protocol_violation_scenario(fault: &str) {
    let is_violation = |e: &Error| {
        matches!(
            e,
            Error::ProtocolViolation {
                stage: coreml_supervisor::Stage::Predict,
                ..
            }
        )
    };
    watchdog(Duration::from_secs(60), async {
        predict_fault_scenario(fault, |_| {}, is_violation).await;
    })
    .await;
}

/// A handshake fault (`COREML_DIAG_FAULT=<fault>`) against every helper under test:
/// `Supervisor::start` fails within the 500 ms handshake deadline plus a margin,
/// with an error `expect` accepts, and nothing leaks.
pub async fn handshake_fault_scenario(fault: &str, expect: fn(&Error) -> bool) {
    for h in helpers() {
        let before = snapshot();
        let mut cfg = config(&h);
        cfg.helper = cfg.helper.env("COREML_DIAG_FAULT", fault);
        cfg.deadlines.handshake = Duration::from_millis(500);
        let t = Instant::now();
        let r = Supervisor::start(cfg).await;
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(500 + 1500),
            "[{}] took {took:?}",
            h.name
        );
        match r {
            Ok(_) => panic!("[{}] start succeeded despite {fault}", h.name),
            Err(e) => assert!(expect(&e), "[{}] unexpected error {e:?}", h.name),
        }
        assert_clean(&before, &h.name).await;
    }
}

/// Whether the test runs with effective uid 0 (then an unsandboxed helper holds
/// root's capabilities after exec).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}
