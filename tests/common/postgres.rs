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

/// A PostgreSQL server of this test's own (initdb + pg_ctl from the machine's PostgreSQL 15 in a
/// temporary directory, on a free loopback port), so that a test may stop it and start it again
/// without touching the server other tests share. PostgreSQL refuses to run as root: as root (CI),
/// it runs as the `postgres` user, which owns the directory.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    pub port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PrivateServer {
    /// Creates the cluster and starts the server (`pg_ctl -w`: returns once it accepts connections).
    pub fn start() -> PrivateServer {
        let dir = tempfile::tempdir().unwrap();
        if Self::as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivateServer { dir, port };
        let data = server.data();
        server.pg(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.ctl_start();
        psql(&server.url("postgres"), "CREATE DATABASE podium");
        server
    }

    fn as_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::geteuid() == 0
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a PostgreSQL program (as `postgres` when root) and asserts it succeeded.
    fn pg(&self, program: &str, args: &[&str]) {
        let path = format!("{PG_BIN}/{program}");
        let mut command = if Self::as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("PostgreSQL 15 must be installed (scripts/test installs it)");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server; returns once it accepts connections.
    pub fn ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast: sessions are ended); returns once it is down.
    pub fn ctl_stop(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let path = format!("{PG_BIN}/pg_ctl");
        let args = ["-D", &data, "-m", "immediate", "-w", "stop"];
        let _ = if Self::as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--", &path])
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}
