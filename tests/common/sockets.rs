//! TCP socket options of a child process's connections, read from outside (Linux): the socket is
//! found by its ports in `/proc/<pid>/net/tcp` and the process's `/proc/<pid>/fd`, duplicated with
//! pidfd_getfd(2) (the test starts the process, so it may) and asked with getsockopt(2).

use std::collections::HashMap;

/// TCP_NODELAY on every established TCP connection of process `pid` whose (local port, remote
/// port) satisfy `wanted`.
pub fn nodelay_of(pid: u32, wanted: impl Fn(u16, u16) -> bool) -> Vec<bool> {
    let established = established_sockets(pid);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            continue;
        };
        let Some(&(local, remote)) = established.get(inode) else {
            continue;
        };
        if wanted(local, remote) {
            let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            found.push(nodelay_of_fd(pid, fd));
        }
    }
    found
}

/// inode -> (local port, remote port) of the established IPv4 and IPv6 TCP sockets in the
/// process's network namespace.
fn established_sockets(pid: u32) -> HashMap<String, (u16, u16)> {
    let mut sockets = HashMap::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "01" {
                continue;
            }
            let port = |address: &str| {
                u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap()
            };
            sockets.insert(fields[9].to_owned(), (port(fields[1]), port(fields[2])));
        }
    }
    sockets
}

#[allow(unsafe_code)]
fn nodelay_of_fd(pid: u32, fd: i32) -> bool {
    // SAFETY: plain syscalls on descriptors this function owns and closes; `value` and `len` outlive
    // the getsockopt call that writes them.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) as libc::c_int;
        assert!(
            pidfd >= 0,
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as libc::c_int;
        let error = std::io::Error::last_os_error();
        libc::close(pidfd);
        assert!(copy >= 0, "pidfd_getfd({pid}, {fd}): {error}");
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let read = libc::getsockopt(
            copy,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        );
        let error = std::io::Error::last_os_error();
        libc::close(copy);
        assert_eq!(read, 0, "getsockopt(TCP_NODELAY): {error}");
        value != 0
    }
}
