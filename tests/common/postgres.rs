//! A throwaway PostgreSQL database per test on the machine's server (scripts/test makes sure one is
//! installed and running), created and dropped with the `psql` CLI, which is also how the tests edit
//! rules: from another process, as an admin would.
//!
//! The server is found at `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`, the
//! trust-auth setup scripts/test checks for). The variable is not `PODIUM_*`, which podium itself reads.

use std::process::Command;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Runs SQL with `psql` (unaligned, tuples only) and returns what it printed.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql must be installed (scripts/test installs postgresql-client)");
    assert!(
        output.status.success(),
        "psql failed on {sql:?}: {}\n(PostgreSQL must be running at {}; scripts/test starts it)",
        String::from_utf8_lossy(&output.stderr),
        admin_url()
    );
    String::from_utf8(output.stdout).unwrap()
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub fn create() -> TestDatabase {
        let admin = admin_url();
        let name = format!("podium_test_{}_{}", std::process::id(), super::unique());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin
            .rsplit_once('/')
            .expect("TEST_POSTGRES_URL ends with /<database>");
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // WITH (FORCE) ends the sessions of a podium that is still running (PostgreSQL 13+).
        let _ = Command::new("psql")
            .args(["-X", "-q", &admin_url(), "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}
