//! The `podium` command line: configuration from PODIUM_CONFIG, --check with the secret redacted,
//! errors that name the key and its environment variable.

use std::process::Command;

fn podium() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podium"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PODIUM_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn config_from_podium_config_is_checked_and_the_secret_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("podium.toml");
    std::fs::write(
        &file,
        "[xmpp]\nsecret = \"do-not-print-me\"\ncomponent = \"podium.meet.example\"\n",
    )
    .unwrap();
    let output = podium()
        .arg("--check")
        .env("PODIUM_CONFIG", &file)
        .env("PODIUM_XMPP__PORT", "5999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("podium.meet.example"), "{stdout}");
    assert!(stdout.contains("port: 5999"), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("do-not-print-me"), "{stdout}");
}

#[test]
fn missing_secret_names_the_key_and_variable() {
    let output = podium().arg("--check").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "configuration key `xmpp.secret` (environment variable PODIUM_XMPP__SECRET): missing"
        ),
        "{stderr}"
    );
}

#[test]
fn a_bad_value_names_the_key_and_variable() {
    let output = podium()
        .arg("--check")
        .env("PODIUM_XMPP__SECRET", "s")
        .env("PODIUM_XMPP__KEEPALIVE_SECS", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("configuration key `xmpp.keepalive_secs` (environment variable PODIUM_XMPP__KEEPALIVE_SECS)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let output = podium()
        .args(["--config", "/nonexistent/podium.toml", "--check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn an_unopenable_database_stops_podium_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // The database path is a directory: SQLite cannot open it.
    let output = podium()
        .env("PODIUM_XMPP__SECRET", "s")
        .env("PODIUM_DATABASE__PATH", dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open database"), "{stderr}");
    assert!(!stderr.contains("\"s\""), "{stderr}");
}

#[test]
fn rules_check_names_rows_and_fails_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("podium.db");
    let run = || {
        podium()
            .args(["rules", "check"])
            .env("PODIUM_XMPP__SECRET", "s")
            .env("PODIUM_DATABASE__PATH", &db)
            .output()
            .unwrap()
    };
    // A fresh database: created, no rows, nothing to say.
    let output = run();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "0 rows, 0 errors, 0 warnings\n"
    );

    // Row 4 gets past the database's own constraints (switched off here) and is caught by podium.
    let sql = "PRAGMA ignore_check_constraints = ON;
        INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'audio', 'allow', 0),
        (2, 'lecture-*', 'role', 'participant', 'video', 'allow', 5),
        (3, 'lecture-*', 'role', 'participant', 'all', 'deny', 5),
        (4, '*', 'everyone', NULL, 'audio', 'perhaps', 0)";
    let status = Command::new("sqlite3").arg(&db).arg(sql).status().unwrap();
    assert!(status.success());
    let output = run();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "rules 2 and 3: warning: contradict for video in rooms 'lecture-*' for role participant at \
         priority 5: deny (rule 3) wins the tie, so rule 2 never allows it there\n\
         rule 4: error: effect \"perhaps\" is not allow, deny or request\n\
         4 rows, 1 errors, 1 warnings\n"
    );
}
