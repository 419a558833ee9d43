//! An app that is SIGKILLed runs no destructor, yet its helper must not outlive it:
//! on Linux the helper gets SIGKILL from its parent-death signal, even a helper that
//! never reads its socket again (here: one stuck before `Hello`). And because the
//! signal follows the *thread* that forked, helpers are forked from one long-lived
//! thread: a helper started from a thread that has since ended keeps serving.
//!
//! `harness = false`: the binary re-executes itself to play the app, so `main`
//! picks the role.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the re-executed test binary: it then plays the app, with this helper index.
const APP_ENV: &str = "COREML_TEST_PLAY_APP";

/// Alive and not a zombie (an orphan's zombie may wait for a busy init to reap it).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Children of `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            v.push(pid);
        }
    }
    v
}

fn main() {
    if !cfg!(target_os = "linux") {
        println!("helper_dies_with_app: parent-death signal is Linux-only, nothing to test");
        return;
    }
    if let Ok(index) = std::env::var(APP_ENV) {
        return play_the_app(index.parse().expect("helper index"));
    }
    let t = Instant::now();
    helper_dies_with_the_app();
    println!("test helper_dies_with_the_app ... ok");
    helper_survives_the_thread_that_started_it();
    println!("test helper_survives_the_thread_that_started_it ... ok");
    // A whole-file watchdog would need a thread; each wait above is bounded instead.
    println!("helper_dies_with_app: 2 passed in {:?}", t.elapsed());
}

/// The app's role, run only in the re-executed binary: start a supervisor whose
/// helper hangs before `Hello` (a minute of handshake budget) and wait.
fn play_the_app(index: usize) {
    let h = common::helpers().swap_remove(index);
    let mut cfg = common::config(&h);
    cfg.helper = cfg.helper.env("COREML_DIAG_FAULT", "hang-handshake");
    cfg.deadlines.handshake = Duration::from_secs(60);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ = rt.block_on(coreml_supervisor::Supervisor::start(cfg));
    panic!("the handshake should still be pending when the app is killed");
}

fn helper_dies_with_the_app() {
    for (index, h) in common::helpers().iter().enumerate() {
        let mut app = Command::new(std::env::current_exe().expect("test binary"))
            .env(APP_ENV, index.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the app");
        let t = Instant::now();
        let helper = loop {
            if let Some(&pid) = children_of(app.id()).first() {
                break pid;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = app.kill();
                panic!("[{}] the app started no helper", h.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the helper get past exec (the signal is armed before it).
        std::thread::sleep(Duration::from_millis(300));
        assert!(running(helper), "[{}] helper {helper} not running", h.name);
        app.kill().expect("SIGKILL the app");
        app.wait().expect("reap the app");
        let t = Instant::now();
        while running(helper) {
            if t.elapsed() > Duration::from_secs(3) {
                // Do not leave the orphan behind.
                let _ = Command::new("kill")
                    .args(["-9", &helper.to_string()])
                    .status();
                panic!("[{}] helper {helper} outlived its app", h.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn helper_survives_the_thread_that_started_it() {
    for h in common::helpers() {
        let cfg = common::config(&h);
        // The supervisor (and its runtime) are created on a thread that then ends.
        let (rt, sup) = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let sup = rt
                .block_on(coreml_supervisor::Supervisor::start(cfg))
                .expect("start");
            (rt, sup)
        })
        .join()
        .expect("starter thread");
        std::thread::sleep(Duration::from_millis(200));
        rt.block_on(async {
            let m = sup.load("diag:echo?shape=4", None).await.expect("load");
            let p = sup.predict(m.id, &[("x", &[5u8; 16])]).await;
            let p = p.unwrap_or_else(|e| panic!("[{}] helper lost with its thread: {e}", h.name));
            assert_eq!(p.output("y").unwrap().to_vec(), vec![5u8; 16]);
            assert_eq!(sup.stats().restarts, 0, "[{}] {:?}", h.name, sup.stats());
            drop(p);
            sup.shutdown().await;
        });
    }
}
