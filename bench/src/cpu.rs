//! CPU time from /proc, to say where a scenario's CPU went: the server, its PostgreSQL, and
//! the load generator itself. All three share the machine's cores, so a rate alone cannot
//! tell a slow server from a busy database.

use std::time::Instant;

/// Clock ticks per second of /proc's utime and stime (USER_HZ): 100 on every Linux ABI
/// this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of one process, in seconds (0 once it is gone).
fn process_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| ticks(&stat))
        .map(|t| t as f64 / TICKS_PER_SECOND)
        .unwrap_or(0.0)
}

/// utime + stime from a /proc/PID/stat line. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after its closing one.
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of every process named `postgres` (the server and its backends).
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
        .map(process_seconds)
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
            server: process_seconds(server),
            postgres: if postgres { postgres_seconds() } else { 0.0 },
            generator: process_seconds(std::process::id()),
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
    #[test]
    fn ticks_count_after_the_name() {
        let line = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 0 0";
        assert_eq!(super::ticks(line), Some(325));
    }
}
