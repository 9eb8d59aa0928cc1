//! One seeded run: build the simulation, drive the fault schedule, then
//! judge what the clients saw and what the nodes hold.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use certus::check::{EventType, History, Mop, check_list_append};

use crate::cluster;
use crate::nemesis::{self, Action, MAX_LATENCY, Machines, Schedule};
use crate::workload::{self, FinalState, Shared};

/// What every seed runs.
pub(crate) struct Settings {
    pub(crate) nodes: usize,
    pub(crate) clients: usize,
    /// Simulated time of workload (and faults).
    pub(crate) duration: Duration,
}

/// What one run found.
pub(crate) struct Report {
    pub(crate) seed: u64,
    serializable: bool,
    counts: [usize; 3],
    faults: usize,
    wall: Duration,
    /// A hash of the history and the final states: equal for two runs of
    /// one seed, or the simulation is not deterministic.
    pub(crate) fingerprint: u64,
    pub(crate) problems: Vec<String>,
}

impl Report {
    pub(crate) fn summary(&self) -> String {
        let [ok, fail, info] = self.counts;
        format!(
            "sim seed={} {} ok={ok} fail={fail} info={info} faults={} wall={:.1}s fingerprint={:016x} {}",
            self.seed,
            if self.serializable {
                "serializable"
            } else {
                "snapshot"
            },
            self.faults,
            self.wall.as_secs_f64(),
            self.fingerprint,
            if self.problems.is_empty() {
                "valid".to_string()
            } else {
                format!("INVALID: {}", self.problems.join("; "))
            }
        )
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

thread_local! {
    /// Panics on this thread since the last run began: any panic in a node
    /// is a violated invariant, even in a task nobody joins.
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records every panic for the run on the panicking thread, then reports
/// it as usual.
pub(crate) fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.with(|p| p.borrow_mut().push(info.to_string()));
        default(info);
    }));
}

/// Runs seed `seed`: its isolation level, fault schedule, client choices
/// and network delays all come from it.
pub(crate) fn run(seed: u64, settings: &Settings, verbose: bool) -> Report {
    let started = Instant::now();
    PANICS.with(|p| p.borrow_mut().clear());
    let _simulation = certus::simulation::enter(seed);
    skew_clocks(seed, settings.nodes);
    let serializable = seed.is_multiple_of(2);
    let dir = data_dir();
    let begin = Duration::from_secs(3);
    let stop_at = begin + settings.duration;
    let shared = Rc::new(Shared::new(seed, settings.nodes, settings.clients, stop_at));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(stop_at + shared.settle + Duration::from_secs(30))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(MAX_LATENCY)
        .build();
    let machines = Machines::new(seed, settings.nodes, dir.path());
    for index in 0..settings.nodes {
        let config = cluster::config(index, settings.nodes, dir.path(), serializable);
        let engine = machines.engines[index].clone();
        sim.host(cluster::host(index), move || {
            cluster::node(config.clone(), engine.clone())
        });
    }
    for id in 0..settings.clients {
        sim.client(format!("c{id}"), workload::client(id, shared.clone()));
    }
    sim.client("expiry", workload::expiry_client(shared.clone()));
    sim.client("final", workload::final_reads(shared.clone()));
    let mut schedule = Schedule::plan(seed, settings.nodes, begin, stop_at);
    let faults = schedule.faults();
    let mut problems = drive(&mut sim, &mut schedule, &machines, verbose);
    drop(sim);
    machines.unmount();
    problems.extend(PANICS.with(|p| p.borrow_mut().drain(..).collect::<Vec<_>>()));
    let (counts, found, fingerprint) = judge(&shared, serializable);
    problems.extend(found);
    Report {
        seed,
        serializable,
        counts,
        faults,
        wall: started.elapsed(),
        fingerprint,
        problems,
    }
}

/// Gives every node its own wall clock: the simulated time from an epoch
/// in 2025, skewed by up to two seconds either way per node (drawn from
/// the seed), so a leader change moves the stamps' clock forwards or
/// backwards and only the cluster time keeps expiry the same everywhere.
fn skew_clocks(seed: u64, nodes: usize) {
    certus::simulation::set_clock(|| {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        1_750_000_000_000 + u64::try_from(elapsed.as_millis()).unwrap_or(0)
    });
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xc10c);
    for node in 1..=nodes as u64 {
        certus::simulation::set_clock_skew(certus::NodeId::new(node), rng.i64(-2000..=2000));
    }
}

/// A temporary directory for what the nodes keep outside their log (their
/// logs are on simulated disks), in memory when the machine has a tmpfs.
fn data_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    dir.expect("a temporary directory")
}

/// Steps the simulation to its end, carrying out the schedule.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    schedule: &mut Schedule,
    machines: &Machines,
    verbose: bool,
) -> Vec<String> {
    loop {
        let now = sim.elapsed();
        while let Some(action) = schedule.due(now) {
            if verbose {
                let (verb, fault) = match &action {
                    Action::Start(f) => ("start", f),
                    Action::Heal(f) => ("heal", f),
                };
                println!("{:>8.3}s {verb} {}", now.as_secs_f64(), fault.describe());
            }
            nemesis::apply(sim, &action, machines);
        }
        match sim.step() {
            Ok(true) => return Vec::new(),
            Ok(false) => {}
            Err(err) => return vec![format!("simulation failed: {err}")],
        }
    }
}

/// Counts, problems and the fingerprint of a finished run.
fn judge(shared: &Shared, serializable: bool) -> ([usize; 3], Vec<String>, u64) {
    let mut events = shared.events.borrow().clone();
    let finals = shared.finals.borrow().clone();
    let mut problems = Vec::new();
    let mut counts = [0; 3];
    for event in &events {
        match event.kind {
            EventType::Ok => counts[0] += 1,
            EventType::Fail => counts[1] += 1,
            EventType::Info => counts[2] += 1,
            _ => {}
        }
    }
    problems.extend(compare_finals(&finals));
    if let Some(Some(state)) = finals.first() {
        problems.extend(lost_appends(&events, state));
        // The final read joins the history as one more transaction.
        let process = 1_000_000;
        let time = events.last().map_or(0, |e| e.time) + 1;
        let reads: Vec<Mop> = state
            .lists
            .iter()
            .map(|(key, list)| Mop::Read {
                key: key.clone(),
                elements: Some(list.clone()),
            })
            .collect();
        events.push(certus::check::Event::new(
            process,
            EventType::Invoke,
            time,
            reads.clone(),
        ));
        events.push(certus::check::Event::new(
            process,
            EventType::Ok,
            time + 1,
            reads,
        ));
    }
    if let Some(dump) = std::env::var_os("CERTUS_SIM_DUMP") {
        let text: String = events.iter().map(|e| format!("{e:?}\n")).collect();
        let _ = std::fs::write(dump, text);
    }
    let mut hasher = DefaultHasher::new();
    format!("{events:?}").hash(&mut hasher);
    finals.hash(&mut hasher);
    let fingerprint = hasher.finish();
    problems.extend(check(events, serializable));
    (counts, problems, fingerprint)
}

/// Every node read, and all read the same.
fn compare_finals(finals: &[Option<FinalState>]) -> Vec<String> {
    let missing: Vec<String> = finals
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| cluster::host(i))
        .collect();
    if !missing.is_empty() {
        return vec![format!(
            "no convergence: {} not synced at one committed seqno (or unreadable) after every fault healed",
            missing.join(",")
        )];
    }
    let states: Vec<&FinalState> = finals.iter().flatten().collect();
    states
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[0] != pair[1])
        .map(|(i, pair)| {
            format!(
                "{} and {} differ: committed {} vs {}, certification digests {} vs {}, lists {:?} vs {:?}, expiring {:?} vs {:?}",
                cluster::host(i),
                cluster::host(i + 1),
                pair[0].last_certified,
                pair[1].last_certified,
                pair[0].digest,
                pair[1].digest,
                pair[0].lists,
                pair[1].lists,
                pair[0].expiring,
                pair[1].expiring
            )
        })
        .collect()
}

/// Appends acknowledged to a client but missing from the final state.
fn lost_appends(events: &[certus::check::Event], state: &FinalState) -> Vec<String> {
    let held: BTreeSet<(&str, i64)> = state
        .lists
        .iter()
        .flat_map(|(key, list)| list.iter().map(move |&e| (key.as_str(), e)))
        .collect();
    let lost: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventType::Ok)
        .flat_map(|e| &e.value)
        .filter_map(|mop| match mop {
            Mop::Append { key, element } if !held.contains(&(key.as_str(), *element)) => {
                Some(format!("{key}:{element}"))
            }
            _ => None,
        })
        .collect();
    if lost.is_empty() {
        Vec::new()
    } else {
        vec![format!("acknowledged appends lost: {}", lost.join(" "))]
    }
}

/// The checker's verdict: snapshot isolation allows write skew only.
fn check(events: Vec<certus::check::Event>, serializable: bool) -> Vec<String> {
    let allowed: &[&str] = if serializable {
        &[]
    } else {
        &["G2-item", "G2-item-process", "G2-item-realtime"]
    };
    let history = match History::new(events) {
        Ok(history) => history,
        Err(err) => return vec![format!("malformed history: {err}")],
    };
    match check_list_append(&history) {
        Ok(report) if report.is_valid_except(allowed) => Vec::new(),
        Ok(report) => report
            .anomalies
            .iter()
            .filter(|a| !allowed.contains(&a.name().as_str()))
            .map(|a| format!("{}: {}", a.name(), a.explanation))
            .collect(),
        Err(err) => vec![format!("history not checkable: {err}")],
    }
}
