//! CPU time from /proc, to say where a scenario's CPU went: the server, its PostgreSQL, and
//! the load generator itself. All three share the machine's cores, so a rate alone cannot
//! tell a slow server from a busy database.

use std::time::Instant;

/// Clock ticks per second of /proc's utime and stime (USER_HZ): 100 on every Linux ABI
/// this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Whether a process's CPU seconds include those of its children that have exited.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Children {
    Left,
    Counted,
}

/// utime + stime of one process, in seconds (0 once it is gone).
fn process_seconds(pid: u32, children: Children) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| ticks(&stat, children))
        .map(|t| t as f64 / TICKS_PER_SECOND)
        .unwrap_or(0.0)
}

/// utime + stime from a /proc/PID/stat line, with cutime + cstime for `Children::Counted`.
/// The command name (field 2) is in parentheses and may hold spaces, so fields are counted
/// after its closing one.
fn ticks(stat: &str, children: Children) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime 15, cutime 16, cstime 17.
    let mut total: u64 = fields.nth(11)?.parse().ok()?;
    total += fields.next()?.parse::<u64>().ok()?;
    if children == Children::Counted {
        total += fields.next()?.parse::<u64>().ok()?;
        total += fields.next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU seconds of every process named `postgres` (the server and its backends). A backend
/// or autovacuum worker that exits between two samples would take its seconds with it and
/// make the difference negative; its parent, the postmaster, then holds them as children's
/// time, so that is counted too (backends have no children of their own).
fn postgres_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| process_seconds(pid, Children::Counted))
        .sum()
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    server: f64,
    postgres: f64,
    generator: f64,
}

impl Sample {
    pub fn take(server: u32, postgres: bool) -> Self {
        Self {
            at: Instant::now(),
            server: process_seconds(server, Children::Left),
            postgres: if postgres { postgres_seconds() } else { 0.0 },
            // The server is the generator's child: its seconds are counted as its own.
            generator: process_seconds(std::process::id(), Children::Left),
        }
    }

    /// CPU milliseconds per operation since `self`, for `ops` operations:
    /// (server, PostgreSQL, load generator), and the cores busy in all over the wall time.
    pub fn per_op_since(&self, later: &Sample, ops: usize) -> (f64, f64, f64, f64) {
        let n = ops.max(1) as f64;
        let server = later.server - self.server;
        let postgres = later.postgres - self.postgres;
        let generator = later.generator - self.generator;
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        (
            server * 1000.0 / n,
            postgres * 1000.0 / n,
            generator * 1000.0 / n,
            (server + postgres + generator) / wall,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Children, ticks};

    #[test]
    fn ticks_count_after_the_name() {
        let line = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 0 0";
        assert_eq!(ticks(line, Children::Left), Some(325));
    }

    #[test]
    fn children_that_exited_count_when_asked() {
        let line = "7 (postgres) S 1 7 7 0 -1 4194560 100 0 0 0 250 75 1000 25 20 0 9 0 1 0 0";
        assert_eq!(ticks(line, Children::Left), Some(325));
        assert_eq!(ticks(line, Children::Counted), Some(1350));
    }
}
