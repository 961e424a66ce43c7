//! iox2-bench - peer engine: iceoryx2 publish-subscribe between two processes, busy-polling
//! receive (bench/peers/README.md). The same shape as the C engines of bench/peers (engine.h):
//!
//!   iox2-bench --mode rt|tput --size 64 --iters N --runs R --warmup W [--cpus A,B] [--batch B]
//!              [--depth D] [--spin N] [--id ID] [--corrupt K]
//!   iox2-bench peer --mode M --size S --count TOTAL --depth D --tag TAG --done-fd FD
//!              [--corrupt K] [--spin N]                                  (internal: the peer)
//!
//! rt: two services as in iceoryx2's benchmarks/publish-subscribe, "down" (engine -> peer) and
//! "up" (peer -> engine), [u8] slices of --size bytes, history 0, subscriber buffer 1, safe
//! overflow; this process (pinned to A) times each round trip: loan, copy the ping in, send, poll
//! for the pong, copy it out. tput: one service "up" with a subscriber buffer of --depth samples
//! and no safe overflow, the publisher's backpressure strategy RetryUntilDelivered (a full buffer
//! makes send wait); the peer (A) sends, this process (B) receives, verifies every message and
//! times each batch of --batch messages. Receive polls: bench.h's spin policy, --spin checks with
//! a pause, then sched_yield between checks (iceoryx2's own benchmark spins without yielding,
//! which on one core would cost a scheduler slice per message).
//!
//! Every iceoryx2 file of a run lives under a private root path (/tmp/iox2-bench-PID/) and has a
//! private prefix (/dev/shm/iox2bPID_*), so that a failure removes exactly them. bench/c/bench.h's
//! conventions are reimplemented: RESULT lines and statistics (nearest rank), the data pattern, a
//! watchdog (20 s without progress, the peer's death), PR_SET_PDEATHSIG, exit 0/1/2, `#` logs.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

const MECH: &str = "iceoryx2";
const TIMEOUT_S: u32 = 20;
const DEFAULT_DEPTH: usize = 256;
const SALT_PING: u64 = 0x50494e4700000000;
const SALT_PONG: u64 = 0x504f4e4700000000;
const SALT_BULK: u64 = 0x42554c4b00000000;

// ---- failure, clean-up, watchdog -----------------------------------------------------------

static PROG: OnceLock<&'static str> = OnceLock::new();
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static PEER_PID: AtomicI32 = AtomicI32::new(0);
static WATCH_PEER: AtomicBool = AtomicBool::new(false);
static FILES: OnceLock<Files> = OnceLock::new();

/// Where this run's iceoryx2 files are; the engine (owner) removes them on failure.
struct Files {
    root: String,
    prefix: String,
    owner: bool,
}

fn prog() -> &'static str {
    PROG.get().copied().unwrap_or(MECH)
}

#[inline]
fn progress() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

fn remove_files() {
    if let Some(f) = FILES.get() {
        if !f.owner {
            return;
        }
        let _ = std::fs::remove_dir_all(&f.root);
        if let Ok(rd) = std::fs::read_dir("/dev/shm") {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&f.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Removes the files of earlier runs whose engine is gone (SIGKILLed: no clean-up ran). A pid that
/// is alive, whoever it is now, keeps its files.
fn remove_stale() {
    let Ok(rd) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("iox2-bench-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if !gone {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
        let prefix = format!("iox2b{}_", pid);
        if let Ok(shm) = std::fs::read_dir("/dev/shm") {
            for f in shm.flatten() {
                if f.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        println!(
            "# removed the files of an earlier run (engine pid {}, gone)",
            pid
        );
    }
}

/// Kills and reaps the peer (up to a second), removes the files.
fn cleanup_now() {
    let peer = PEER_PID.swap(0, Ordering::SeqCst);
    if peer > 0 {
        unsafe { libc::kill(peer, libc::SIGKILL) };
        for _ in 0..100 {
            if unsafe { libc::waitpid(peer, std::ptr::null_mut(), libc::WNOHANG) } != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    remove_files();
}

/// Reports a failure and exits 1 at once, from any thread.
fn fail(msg: impl AsRef<str>) -> ! {
    eprintln!("{}: FAIL: {}", prog(), msg.as_ref());
    cleanup_now();
    unsafe { libc::_exit(1) }
}

fn usage(msg: impl AsRef<str>) -> ! {
    eprintln!("{}: usage: {}", prog(), msg.as_ref());
    cleanup_now();
    unsafe { libc::_exit(2) }
}

fn term_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT/SIGTERM/SIGHUP in every thread (call before any thread starts) and starts the
/// watchdog, which takes them with sigtimedwait (clean-up in a plain thread, not a handler),
/// and fails the engine after TIMEOUT_S seconds without progress or when the peer died badly.
fn start_watchdog() {
    let set = term_signals();
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    std::thread::spawn(move || {
        let mut last = PROGRESS.load(Ordering::Relaxed);
        let mut idle = 0;
        loop {
            let ts = libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
            if sig > 0 {
                eprintln!("{}: FAIL: killed by signal {}; cleaned up", prog(), sig);
                cleanup_now();
                unsafe {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                    libc::raise(sig);
                    libc::_exit(1);
                }
            }
            let peer = PEER_PID.load(Ordering::SeqCst);
            if peer > 0 && WATCH_PEER.load(Ordering::SeqCst) {
                // WNOWAIT: look without reaping; the main thread collects the status.
                let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        peer as libc::id_t,
                        &mut si,
                        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                    )
                };
                if r == 0 && unsafe { si.si_pid() } == peer {
                    let status = unsafe { si.si_status() };
                    if !(si.si_code == libc::CLD_EXITED && status == 0) {
                        fail(format!(
                            "the peer process {} died ({} {}) before the end: see its message above",
                            peer,
                            if si.si_code == libc::CLD_EXITED { "exit status" } else { "signal" },
                            status
                        ));
                    }
                }
            }
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != last {
                last = now;
                idle = 0;
            } else {
                idle += 1;
                if idle >= TIMEOUT_S {
                    fail(format!(
                        "no progress for {} s (a stuck peer or a lost message); giving up",
                        TIMEOUT_S
                    ));
                }
            }
        }
    });
}

// ---- time, statistics, RESULT ----------------------------------------------------------------

struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    min: f64,
    max: f64,
}

/// Nearest rank: the smallest sample with at least q of the samples at or below it.
fn rank(v: &[f64], q: f64) -> f64 {
    let n = v.len();
    let k = ((q * n as f64) + 0.999999) as usize;
    v[k.clamp(1, n) - 1]
}

fn stats_of(v: &mut [f64]) -> Stats {
    if v.is_empty() {
        fail("no samples");
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let sum: f64 = v.iter().sum();
    Stats {
        n: v.len(),
        p50: rank(v, 0.50),
        p99: rank(v, 0.99),
        mean: sum / v.len() as f64,
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                o.push('\\');
                o.push(c)
            }
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn result_line(id: &str, param: &str, placement: &str, s: &Stats, bytes: u64) {
    if !(s.p50 > 0.0 && s.p99 > 0.0 && s.mean > 0.0 && s.max > 0.0 && s.min >= 0.0) {
        fail(format!(
            "{}: non-positive statistics (p50 {} p99 {} min {})",
            id, s.p50, s.p99, s.min
        ));
    }
    let line = format!(
        "RESULT {{\"id\":{},\"group\":\"ring\",\"mechanism\":{},\"param\":{},\"placement\":{},\"unit\":\"ns\",\"n\":{},\"p50\":{:.3},\"p99\":{:.3},\"mean\":{:.3},\"min\":{:.3},\"max\":{:.3},\"bytes\":{}}}",
        json_str(id), json_str(MECH), json_str(param), json_str(placement), s.n, s.p50, s.p99, s.mean, s.min, s.max, bytes
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line);
    let _ = out.flush();
}

fn clock_overhead_ns() -> f64 {
    let mut d: Vec<f64> = (0..10001)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as f64
        })
        .collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    d[d.len() / 2]
}

// ---- the data pattern (bench.h's) --------------------------------------------------------------

#[inline]
fn base(i: u64, salt: u64) -> u64 {
    (i.wrapping_add(1)).wrapping_mul(0x9E3779B97F4A7C15) ^ salt
}

/// Message seq: the native-endian u64 seq, then the pattern of base(seq, salt) (word k = base + k,
/// a short tail holds the first bytes of the next word).
fn msg_fill(buf: &mut [u8], seq: u64, salt: u64) {
    buf[..8].copy_from_slice(&seq.to_ne_bytes());
    let b = base(seq, salt);
    for (k, chunk) in buf[8..].chunks_mut(8).enumerate() {
        let w = b.wrapping_add(k as u64).to_ne_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

fn msg_verify(what: &str, buf: &[u8], seq: u64, salt: u64) {
    let got = u64::from_ne_bytes(buf[..8].try_into().unwrap());
    if got != seq {
        fail(format!(
            "{}: sequence number {}, want {} ({})",
            what,
            got,
            seq,
            if got < seq {
                "a duplicate or stale message"
            } else {
                "a lost or reordered message"
            }
        ));
    }
    let b = base(seq, salt);
    let mut diff = 0u64;
    let body = &buf[8..];
    let words = body.len() / 8;
    for k in 0..words {
        diff |= u64::from_ne_bytes(body[8 * k..8 * k + 8].try_into().unwrap())
            ^ b.wrapping_add(k as u64);
    }
    let tail = &body[8 * words..];
    if !tail.is_empty() {
        let w = b.wrapping_add(words as u64).to_ne_bytes();
        if tail != &w[..tail.len()] {
            diff |= 1;
        }
    }
    if diff != 0 {
        for (i, &c) in body.iter().enumerate() {
            let want = b.wrapping_add((i / 8) as u64).to_ne_bytes()[i % 8];
            if c != want {
                fail(format!(
                    "{} of round {}: wrong data at byte {} of {}: 0x{:02x}, want 0x{:02x} (byte offsets after the 8-byte sequence number)",
                    what,
                    seq,
                    i,
                    body.len(),
                    c,
                    want
                ));
            }
        }
    }
}

// ---- command line -------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Rt,
    Tput,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Rt => "rt",
            Mode::Tput => "tput",
        }
    }
}

struct Opts {
    mode: Mode,
    size: usize,
    iters: u64,
    runs: u64,
    warmup: u64,
    batch: u64,
    depth: usize,
    corrupt: u64,
    count: u64,
    cpu_a: i32,
    cpu_b: i32,
    placement: &'static str,
    id: Option<String>,
    spin: u32,
    spin_given: bool,
    tag: String,
    done_fd: i32,
}

fn parse_u64(flag: &str, v: Option<&String>, lo: u64, hi: u64) -> u64 {
    let s = v.unwrap_or_else(|| usage(format!("{} wants a number", flag)));
    match s.parse::<u64>() {
        Ok(x) if x >= lo && x <= hi && s.bytes().all(|c| c.is_ascii_digit()) => x,
        _ => usage(format!(
            "{} {}: want an integer in [{}, {}]",
            flag, s, lo, hi
        )),
    }
}

fn parse_mode(v: Option<&String>) -> Mode {
    match v.map(|s| s.as_str()) {
        Some("rt") => Mode::Rt,
        Some("tput") => Mode::Tput,
        other => usage(format!(
            "--mode {}: want rt or tput",
            other.unwrap_or("(none)")
        )),
    }
}

fn parse_cpus(s: &str) -> (i32, i32) {
    let bad = || usage(format!("--cpus {}: want A,B (CPU numbers)", s));
    let mut it = s.split(',');
    let a: i32 = it.next().and_then(|x| x.parse().ok()).unwrap_or_else(bad);
    let b: i32 = match it.next() {
        Some(x) => x.parse().unwrap_or_else(|_| bad()),
        None => a,
    };
    if it.next().is_some() || !(0..1024).contains(&a) || !(0..1024).contains(&b) {
        bad();
    }
    (a, b)
}

fn parse(args: &[String], peer: bool) -> Opts {
    let mut o = Opts {
        mode: Mode::Rt,
        size: 0,
        iters: 0,
        runs: 1,
        warmup: 0,
        batch: 10000,
        depth: DEFAULT_DEPTH,
        corrupt: 0,
        count: 0,
        cpu_a: -1,
        cpu_b: -1,
        placement: "unpinned",
        id: None,
        spin: 100,
        spin_given: false,
        tag: String::new(),
        done_fd: -1,
    };
    let mut mode = None;
    let mut i = if peer { 2 } else { 1 };
    while i < args.len() {
        let a = args[i].as_str();
        let v = args.get(i + 1);
        match a {
            "--mode" => mode = Some(parse_mode(v)),
            "--size" => o.size = parse_u64(a, v, 16, 1 << 20) as usize,
            "--depth" => o.depth = parse_u64(a, v, 1, 1 << 20) as usize,
            "--corrupt" => o.corrupt = parse_u64(a, v, 1, u64::MAX / 2),
            "--spin" => {
                o.spin = parse_u64(a, v, 0, 1000000) as u32;
                o.spin_given = true
            }
            "--count" if peer => o.count = parse_u64(a, v, 1, u64::MAX / 2),
            "--tag" if peer => o.tag = v.cloned().unwrap_or_default(),
            "--done-fd" if peer => o.done_fd = parse_u64(a, v, 0, i32::MAX as u64) as i32,
            "--iters" if !peer => o.iters = parse_u64(a, v, 1, 1000000000),
            "--runs" if !peer => o.runs = parse_u64(a, v, 1, 1000),
            "--warmup" if !peer => o.warmup = parse_u64(a, v, 1, 1000000000),
            "--batch" if !peer => o.batch = parse_u64(a, v, 1, 1000000000),
            "--cpus" if !peer => {
                let (x, y) = parse_cpus(v.map(|s| s.as_str()).unwrap_or(""));
                o.cpu_a = x;
                o.cpu_b = y
            }
            "--id" if !peer => o.id = v.cloned(),
            _ => usage(format!(
                "iox2-bench --mode rt|tput --size BYTES --iters N --runs R --warmup W [--cpus A,B] [--batch B] [--depth D] [--spin N] [--id ID] [--corrupt K] (unknown argument {})",
                a
            )),
        }
        i += 2;
    }
    o.mode = mode.unwrap_or_else(|| usage("--mode is required"));
    if o.size == 0 {
        usage("--size is required");
    }
    if peer {
        if o.count == 0 || o.tag.is_empty() || o.done_fd < 0 {
            usage("peer: --count, --tag and --done-fd are required");
        }
        return o;
    }
    if o.iters == 0 {
        o.iters = if o.mode == Mode::Rt { 2000 } else { 100000 };
    }
    if o.warmup == 0 {
        o.warmup = if o.mode == Mode::Rt { 200 } else { 10000 };
    }
    if o.mode == Mode::Tput && !o.iters.is_multiple_of(o.batch) {
        usage(format!(
            "--iters {} must be a multiple of --batch {} (one sample per batch)",
            o.iters, o.batch
        ));
    }
    if o.mode == Mode::Rt {
        o.depth = 1; // strict alternation, as iceoryx2's benchmark (subscriber buffer 1)
    }
    o.count = o.warmup + o.iters * o.runs;
    o.placement = if o.cpu_a < 0 {
        "unpinned"
    } else if o.cpu_a == o.cpu_b {
        "1core"
    } else {
        "2cores"
    };
    o
}

// ---- the transport --------------------------------------------------------------------------------

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;
type Factory =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

fn node_for(tag: &str) -> Node<ipc::Service> {
    let mut config = Config::default();
    let root = format!("/tmp/iox2-bench-{}/", tag);
    let prefix = format!("iox2b{}_", tag);
    let p =
        Path::new(root.as_bytes()).unwrap_or_else(|e| fail(format!("root path {}: {:?}", root, e)));
    config.global.set_root_path(&p);
    config.global.prefix = FileName::new(prefix.as_bytes())
        .unwrap_or_else(|e| fail(format!("prefix {}: {:?}", prefix, e)));
    NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .unwrap_or_else(|e| fail(format!("iceoryx2 node: {:?}", e)))
}

/// Creates (engine) or opens (peer) the service of one direction.
fn service(node: &Node<ipc::Service>, name: &str, o: &Opts, create: bool) -> Factory {
    let sn =
        ServiceName::new(name).unwrap_or_else(|e| fail(format!("service name {}: {:?}", name, e)));
    let b = node
        .service_builder(&sn)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(o.depth)
        .enable_safe_overflow(o.mode == Mode::Rt);
    let r = if create {
        b.create().map_err(|e| format!("{:?}", e))
    } else {
        b.open().map_err(|e| format!("{:?}", e))
    };
    r.unwrap_or_else(|e| fail(format!("service {}: {}", name, e)))
}

fn publisher(f: &Factory, o: &Opts) -> Pub {
    f.publisher_builder()
        .initial_max_slice_len(o.size)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .unwrap_or_else(|e| fail(format!("publisher: {:?}", e)))
}

fn subscriber(f: &Factory, o: &Opts) -> Sub {
    f.subscriber_builder()
        .buffer_size(o.depth)
        .create()
        .unwrap_or_else(|e| fail(format!("subscriber: {:?}", e)))
}

#[inline]
fn send(p: &Pub, buf: &[u8]) {
    let s = p
        .loan_slice_uninit(buf.len())
        .unwrap_or_else(|e| fail(format!("loan: {:?}", e)));
    let s = s.write_from_slice(buf);
    if let Err(e) = s.send() {
        fail(format!("send: {:?}", e));
    }
}

/// Polls for the next sample: spin checks with a pause, then sched_yield between checks.
#[inline]
fn recv(s: &Sub, buf: &mut [u8], spin: u32) {
    let mut spins = 0u32;
    loop {
        match s.receive() {
            Ok(Some(sample)) => {
                let p = sample.payload();
                if p.len() != buf.len() {
                    fail(format!("a sample of {} bytes, want {}", p.len(), buf.len()));
                }
                buf.copy_from_slice(p);
                return;
            }
            Ok(None) => {
                if spins < spin {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            Err(e) => fail(format!("receive: {:?}", e)),
        }
    }
}

/// Waits (at most 10 s) until cond holds: the publisher must see its subscriber before the first
/// sample (history 0: a sample sent earlier would reach nobody).
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > Duration::from_secs(10) {
            fail(format!("{}: not connected within 10 s", what));
        }
        progress();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn pin(cpu: i32) -> std::io::Result<()> {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---- the peer -----------------------------------------------------------------------------------

fn peer_main(args: &[String]) -> i32 {
    let _ = PROG.set("iceoryx2 peer");
    start_watchdog();
    let o = parse(args, true);
    let _ = FILES.set(Files {
        root: String::new(),
        prefix: String::new(),
        owner: false,
    });
    let node = node_for(&o.tag);
    let mut input = vec![0u8; o.size];
    let mut out = vec![0u8; o.size];
    if o.mode == Mode::Rt {
        let down = service(&node, "bench-down", &o, false);
        let up = service(&node, "bench-up", &o, false);
        let sub = subscriber(&down, &o);
        let publ = publisher(&up, &o);
        wait_until("peer", || up.dynamic_config().number_of_subscribers() >= 1);
        for round in 1..=o.count {
            // The reply is ready before the ping arrives, as a server's would be.
            msg_fill(&mut out, round, SALT_PONG);
            if round == o.corrupt {
                out[o.size / 2] ^= 1;
            }
            recv(&sub, &mut input, o.spin);
            send(&publ, &out);
            progress();
            msg_verify("ping", &input, round, SALT_PING);
        }
        wait_done(o.done_fd);
        drop(publ);
        drop(sub);
    } else {
        let up = service(&node, "bench-up", &o, false);
        let publ = publisher(&up, &o);
        wait_until("peer", || up.dynamic_config().number_of_subscribers() >= 1);
        for m in 1..=o.count {
            msg_fill(&mut out, m, SALT_BULK);
            if m == o.corrupt {
                out[o.size / 2] ^= 1;
            }
            send(&publ, &out);
            progress();
            if m == 1 {
                // Until the subscriber has received once, its end of the connection is not
                // established, and a publisher that fills the buffer then DROPS samples even with
                // RetryUntilDelivered (iceoryx2 0.10: NoConnectedReceiverAndBufferIsFull, ignored by
                // send). So the stream starts only when the engine has message 1.
                wait_start(o.done_fd);
            }
        }
        wait_done(o.done_fd);
        drop(publ);
    }
    0
}

/// Blocks until the engine writes the start byte on the done pipe (tput).
fn wait_start(fd: i32) {
    let mut c = 0u8;
    loop {
        let r = unsafe { libc::read(fd, &mut c as *mut u8 as *mut libc::c_void, 1) };
        if r == 1 {
            return;
        }
        if r == 0 {
            fail("the engine closed the done pipe before the start");
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            fail(format!(
                "read the done pipe: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// Blocks until the engine closes the done pipe: it has every message, the samples may go.
fn wait_done(fd: i32) {
    let mut c = 0u8;
    loop {
        let r = unsafe { libc::read(fd, &mut c as *mut u8 as *mut libc::c_void, 1) };
        if r == 0 {
            return;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            fail(format!(
                "read the done pipe: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

// ---- the engine ---------------------------------------------------------------------------------

fn spawn_peer(o: &Opts, done_r: i32, cpu: i32) -> Child {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("peer")
        .args([
            "--mode",
            o.mode.name(),
            "--size",
            &o.size.to_string(),
            "--count",
            &o.count.to_string(),
        ])
        .args([
            "--depth",
            &o.depth.to_string(),
            "--tag",
            &o.tag,
            "--done-fd",
            &done_r.to_string(),
        ]);
    if o.corrupt > 0 {
        cmd.args(["--corrupt", &o.corrupt.to_string()]);
    }
    if o.spin_given {
        cmd.args(["--spin", &o.spin.to_string()]);
    }
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            // Only system calls here (between fork and exec).
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if cpu >= 0 {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1); // the engine died before prctl
            }
            let fl = libc::fcntl(done_r, libc::F_GETFD);
            if fl < 0 || libc::fcntl(done_r, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(format!("start the peer: {}", e)));
    PEER_PID.store(child.id() as i32, Ordering::SeqCst);
    WATCH_PEER.store(true, Ordering::SeqCst);
    child
}

/// Waits (at most TIMEOUT_S) for the peer to exit 0.
fn wait_peer(mut child: Child) {
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                WATCH_PEER.store(false, Ordering::SeqCst);
                PEER_PID.store(0, Ordering::SeqCst);
                if !st.success() {
                    fail(format!("the peer {}", st));
                }
                return;
            }
            Ok(None) => {}
            Err(e) => fail(format!("wait for the peer: {}", e)),
        }
        if t0.elapsed() > Duration::from_secs(TIMEOUT_S as u64) {
            fail(format!(
                "the peer did not exit within {} s after the last message",
                TIMEOUT_S
            ));
        }
        progress();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn engine_main(args: &[String]) -> i32 {
    let _ = PROG.set(MECH);
    let mut o = parse(args, false);
    let (self_cpu, peer_cpu) = if o.mode == Mode::Rt {
        (o.cpu_a, o.cpu_b)
    } else {
        (o.cpu_b, o.cpu_a)
    };
    // Pinned before the watchdog thread starts: every thread of this process stays on its CPU.
    if self_cpu >= 0 {
        if let Err(e) = pin(self_cpu) {
            fail(format!("pin to CPU {}: {}", self_cpu, e));
        }
    }
    start_watchdog();
    remove_stale();
    o.tag = std::process::id().to_string();
    let _ = FILES.set(Files {
        root: format!("/tmp/iox2-bench-{}", o.tag),
        prefix: format!("iox2b{}_", o.tag),
        owner: true,
    });
    let node = node_for(&o.tag);
    let param = o.size.to_string();
    let id = o
        .id
        .clone()
        .unwrap_or_else(|| format!("ring-{}/{}/{}/{}", o.mode.name(), MECH, param, o.placement));
    let bytes = if o.mode == Mode::Rt {
        2 * o.size as u64
    } else {
        o.size as u64
    };

    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (done_r, done_w) = (fds[0], fds[1]);
    let overhead = clock_overhead_ns();
    if o.mode == Mode::Rt {
        println!(
            "# ring-rt {} size={} placement={} (initiator cpu {}, responder cpu {}) iters={} warmup={} runs={} spin={} clock_overhead_ns={:.0}",
            MECH, o.size, o.placement, o.cpu_a, o.cpu_b, o.iters, o.warmup, o.runs, o.spin, overhead
        );
    } else {
        println!(
            "# ring-tput {} size={} placement={} (sender cpu {}, receiver cpu {}) iters={} batch={} warmup={} runs={} depth={} spin={} clock_overhead_ns={:.0}",
            MECH, o.size, o.placement, o.cpu_a, o.cpu_b, o.iters, o.batch, o.warmup, o.runs, o.depth, o.spin, overhead
        );
    }
    println!(
        "# iceoryx2 0.10.0 ipc::Service publish-subscribe [u8] slices, root /tmp/iox2-bench-{}/, shm prefix iox2b{}_, subscriber buffer {}, {}",
        o.tag,
        o.tag,
        o.depth,
        if o.mode == Mode::Rt { "history 0, safe overflow" } else { "no safe overflow, RetryUntilDelivered" }
    );

    let mut input = vec![0u8; o.size];
    let mut out = vec![0u8; o.size];
    let per_run = if o.mode == Mode::Rt {
        o.iters
    } else {
        o.iters / o.batch
    } as usize;
    let mut samples = vec![0f64; per_run];
    let child;
    if o.mode == Mode::Rt {
        let down = service(&node, "bench-down", &o, true);
        let up = service(&node, "bench-up", &o, true);
        let publ = publisher(&down, &o);
        let sub = subscriber(&up, &o);
        child = spawn_peer(&o, done_r, peer_cpu);
        unsafe { libc::close(done_r) };
        wait_until("engine", || {
            down.dynamic_config().number_of_subscribers() >= 1
                && up.dynamic_config().number_of_publishers() >= 1
        });
        for round in 1..=o.count {
            msg_fill(&mut out, round, SALT_PING);
            let t0 = Instant::now();
            send(&publ, &out);
            recv(&sub, &mut input, o.spin);
            let t1 = Instant::now();
            progress();
            msg_verify("pong", &input, round, SALT_PONG);
            if round <= o.warmup {
                continue;
            }
            let k = ((round - o.warmup - 1) % o.iters) as usize;
            samples[k] = (t1 - t0).as_nanos() as f64;
            if k == per_run - 1 {
                let s = stats_of(&mut samples);
                result_line(&id, &param, o.placement, &s, bytes);
            }
        }
        unsafe { libc::close(done_w) };
        wait_peer(child);
        drop(publ);
        drop(sub);
    } else {
        let up = service(&node, "bench-up", &o, true);
        let sub = subscriber(&up, &o);
        child = spawn_peer(&o, done_r, peer_cpu);
        unsafe { libc::close(done_r) };
        let mut prev = Instant::now();
        for m in 1..=o.count {
            recv(&sub, &mut input, o.spin);
            msg_verify("message", &input, m, SALT_BULK);
            progress();
            if m == 1
                && unsafe { libc::write(done_w, b"s".as_ptr() as *const libc::c_void, 1) } != 1
            {
                fail(format!(
                    "write the start byte: {}",
                    std::io::Error::last_os_error()
                ));
            }
            if m < o.warmup {
                continue;
            }
            if m == o.warmup {
                prev = Instant::now();
                continue;
            }
            if !(m - o.warmup).is_multiple_of(o.batch) {
                continue;
            }
            let now = Instant::now();
            let k = (((m - o.warmup) / o.batch - 1) % per_run as u64) as usize;
            samples[k] = (now - prev).as_nanos() as f64 / o.batch as f64;
            prev = now;
            if k == per_run - 1 {
                let s = stats_of(&mut samples);
                result_line(&id, &param, o.placement, &s, bytes);
            }
        }
        unsafe { libc::close(done_w) };
        wait_peer(child);
        drop(sub);
    }
    drop(node);
    // The nodes removed their files; the root directory is ours.
    remove_files();
    0
}

fn main() {
    // Errors only: iceoryx2 would otherwise log its stale-node clean-up and the like to stderr.
    set_log_level(LogLevel::Error);
    // A panic in the library or here is a failure like any other: clean up, exit 1.
    std::panic::set_hook(Box::new(|info| fail(format!("panic: {}", info))));
    let args: Vec<String> = std::env::args().collect();
    let rc = if args.len() > 1 && args[1] == "peer" {
        peer_main(&args)
    } else {
        engine_main(&args)
    };
    std::process::exit(rc);
}
