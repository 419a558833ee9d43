//! Shared-memory regions left by a dead supervisor (its pid encoded in the name)
//! are removed when a new arena starts; regions of live owners are kept; every
//! name fits macOS's 31-byte limit and slots are 16 KiB-aligned.
mod common;

use std::time::Duration;

use coreml_supervisor::arena::{Arena, ArenaConfig, SLOT_ALIGN};
use coreml_supervisor::shm::{sweep_stale, RegionName, MAX_NAME_LEN};

fn dead_pid() -> u32 {
    // A child that has exited and been reaped: its pid is free.
    let mut c = std::process::Command::new("/bin/true")
        .spawn()
        .expect("spawn true");
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[tokio::test]
async fn stale_regions_swept() {
    common::watchdog(Duration::from_secs(20), async {
        let dead = dead_pid();
        let stale = format!("/dev/shm/cmlb-{dead}-deadbeef-0");
        std::fs::write(&stale, b"left behind").unwrap();
        // Same format, live owner (pid 1): must be kept.
        let live = "/dev/shm/cmlb-1-deadbeef-0".to_string();
        std::fs::write(&live, b"live").unwrap();

        let arena = Arena::new(ArenaConfig {
            region_size: 1 << 20,
            max_total: 1 << 30,
        })
        .unwrap();
        assert!(
            !std::path::Path::new(&stale).exists(),
            "stale region not removed"
        );
        assert!(
            std::path::Path::new(&live).exists(),
            "live owner's region removed"
        );
        std::fs::remove_file(&live).unwrap();

        let name = RegionName::new(u32::MAX, u16::MAX);
        assert!(name.as_str().len() <= MAX_NAME_LEN, "{name}");
        let a = arena.alloc(1).unwrap();
        let b = arena.alloc(100_000).unwrap();
        let c = arena.alloc(3 << 20).unwrap(); // larger than a region: a new, bigger region
        for s in [&a, &b, &c] {
            assert_eq!(s.offset() % SLOT_ALIGN, 0);
        }
        assert_eq!(arena.regions().len(), 2);
        assert!(arena
            .regions()
            .iter()
            .all(|r| r.len % SLOT_ALIGN == 0 && r.name.len() <= MAX_NAME_LEN));
        assert_eq!(sweep_stale(), 0);
        drop((a, b, c, arena));
        assert!(coreml_supervisor::shm::own_regions().is_empty());
    })
    .await;
}
