//! The deployment files in `contrib/`: the systemd unit passes `systemd-analyze verify` with
//! no warning (an unknown or misspelt key is only a warning there), and keeps its hardening.

use std::process::Command;

const UNIT: &str = include_str!("../../../contrib/systemd/twofold.service");

#[test]
fn the_systemd_unit_verifies_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and systemd-analyze is missing"
        );
        eprintln!("not run: systemd-analyze is not installed");
        return;
    }
    for key in [
        "DynamicUser=yes",
        "StateDirectory=twofold",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(UNIT.contains(key), "the unit lacks {key}");
    }
    // systemd checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("twofold.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/twofold", env!("CARGO_BIN_EXE_twofold")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("twofold.service"))
        .collect();
    assert!(out.status.success(), "{err}");
    assert!(about_unit.is_empty(), "{err}");
}
