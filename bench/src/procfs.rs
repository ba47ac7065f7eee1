//! CPU time and resident memory of a process, read from /proc.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Linux reports /proc times in USER_HZ, which is 100 on every ABI.
const TICKS_PER_SEC: u64 = 100;

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time of all threads.
    pub cpu: Duration,
    /// `cpu` plus that of reaped children (sshd's per-connection processes).
    pub cpu_with_children: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
}

pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // What follows `) ` starts at field 3 (state), so utime and stime
    // (fields 14 and 15, see proc(5)) are at indexes 11 and 12, and cutime
    // and cstime right after them.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = field(11)? + field(12)?;
    let child_ticks = field(13)? + field(14)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Usage {
        cpu: Duration::from_millis(ticks * 1000 / TICKS_PER_SEC),
        cpu_with_children: Duration::from_millis((ticks + child_ticks) * 1000 / TICKS_PER_SEC),
        rss: rss_kib * 1024,
    })
}

/// Proportional set size (shared pages split among their users) of `root`
/// and all its descendants, in bytes: what a forking server like sshd
/// really costs, without counting shared pages once per process.
pub fn tree_pss(root: u32) -> Option<u64> {
    let mut total = 0;
    for pid in tree(root)? {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total += s
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
    }
    Some(total)
}

/// `root` and every process below it.
pub fn tree(root: u32) -> Option<Vec<u32>> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    Some(tree)
}

/// CPU time of a process tree, sampled every 20 ms. A forking server's
/// per-connection processes do not always reach its `cutime`: sshd's
/// unprivileged session child is not waited for by its monitor, so its
/// (crypto) time is lost to the listener. Sampling each live process and
/// keeping the largest figure seen misses only what a process spends after
/// its last sample, so it suits long sessions, not sub-second ones.
pub struct TreeSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Duration>,
}

impl TreeSampler {
    pub fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut start: HashMap<u32, Duration> = HashMap::new();
            sample(root, &mut start);
            let mut seen = start.clone();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                sample(root, &mut seen);
            }
            sample(root, &mut seen);
            seen.iter()
                .map(|(pid, cpu)| cpu.saturating_sub(start.get(pid).copied().unwrap_or_default()))
                .sum()
        });
        Self { stop, thread }
    }

    /// Stops sampling; the CPU time the tree used since `start`.
    pub fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok()
    }
}

/// Own CPU time (not reaped children's: those are sampled themselves).
fn sample(root: u32, seen: &mut HashMap<u32, Duration>) {
    for pid in tree(root).unwrap_or_default() {
        if let Some(u) = usage(pid) {
            let e = seen.entry(pid).or_default();
            *e = (*e).max(u.cpu);
        }
    }
}
