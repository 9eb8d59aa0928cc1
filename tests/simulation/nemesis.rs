//! The seeded fault schedule: one fault at a time, each held for a while,
//! then healed, with quiet time between. Everything is healed by the end
//! of the workload, so the cluster must then converge.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certus::kv::{Fault as EngineFault, FaultSwitch};
use certus::simulation::{DiskFault, SimDisk};
use turmoil::Sim;

use crate::cluster::{NodeEngine, host};

/// One fault.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Messages on these links are dropped (connections lose bytes and
    /// break, as when a switch drops a flow).
    Partition(Vec<(usize, usize)>),
    /// Messages on these links are held, then delivered all at once.
    Hold(Vec<(usize, usize)>),
    /// These nodes crash (every task and connection gone, files kept) and
    /// restart when healed.
    Crash(Vec<usize>),
    /// Every message takes up to this long.
    Slow(Duration),
    /// This node's log disk fails (full, or I/O errors); when healed, the
    /// node is restarted on what its disk kept, as its service manager
    /// would restart a daemon that exited.
    Disk(usize, DiskFault),
    /// This node's engine fails: its disk is full or fails with I/O
    /// errors; when healed, the node restarts its store by itself.
    Engine(usize, DiskFault),
}

impl Fault {
    pub(crate) fn describe(&self) -> String {
        let links = |pairs: &[(usize, usize)]| {
            pairs
                .iter()
                .map(|&(a, b)| format!("{}-{}", host(a), host(b)))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Partition(pairs) => format!("partition {}", links(pairs)),
            Fault::Hold(pairs) => format!("hold {}", links(pairs)),
            Fault::Crash(nodes) => {
                let names: Vec<_> = nodes.iter().map(|&n| host(n)).collect();
                format!("crash {}", names.join(","))
            }
            Fault::Slow(max) => format!("slow {}ms", max.as_millis()),
            Fault::Disk(node, fault) => format!("disk {fault:?} {}", host(*node)),
            Fault::Engine(node, fault) => format!("engine {fault:?} {}", host(*node)),
        }
    }
}

/// Starting or healing a fault.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Start(Fault),
    Heal(Fault),
}

/// Actions in time order.
pub(crate) struct Schedule {
    actions: VecDeque<(Duration, Action)>,
}

/// Normal message latency; [`Fault::Slow`] raises it.
pub(crate) const MAX_LATENCY: Duration = Duration::from_millis(10);

impl Schedule {
    /// Faults between `begin` and `end` of simulated time on `nodes` nodes,
    /// chosen by `seed`.
    pub(crate) fn plan(seed: u64, nodes: usize, begin: Duration, end: Duration) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x006e_656d_6573_6973);
        let mut actions = VecDeque::new();
        let mut at = begin;
        loop {
            let held = Duration::from_millis(rng.u64(500..4_000));
            if at + held >= end {
                break;
            }
            let fault = pick(&mut rng, nodes);
            actions.push_back((at, Action::Start(fault.clone())));
            actions.push_back((at + held, Action::Heal(fault)));
            at += held + Duration::from_millis(rng.u64(300..2_000));
        }
        Schedule { actions }
    }

    /// The next action due at `now`, if any.
    pub(crate) fn due(&mut self, now: Duration) -> Option<Action> {
        match self.actions.front() {
            Some((at, _)) if *at <= now => self.actions.pop_front().map(|(_, action)| action),
            _ => None,
        }
    }

    /// How many faults it starts.
    pub(crate) fn faults(&self) -> usize {
        self.actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Start(_)))
            .count()
    }
}

fn pick(rng: &mut fastrand::Rng, nodes: usize) -> Fault {
    let one = rng.usize(0..nodes);
    let others = |n: usize| (0..nodes).filter(move |&o| o != n);
    match rng.u8(0..9) {
        0 => Fault::Partition(others(one).map(|o| (one, o)).collect()),
        1 => {
            // One link cut: both ends still reach everyone else.
            let other = others(one).nth(rng.usize(0..nodes - 1)).unwrap_or(one);
            Fault::Partition(vec![(one, other)])
        }
        2 => Fault::Hold(others(one).map(|o| (one, o)).collect()),
        3 | 4 => Fault::Crash(vec![one]),
        5 => {
            let mut all: Vec<usize> = (0..nodes).collect();
            rng.shuffle(&mut all);
            all.truncate(if rng.bool() { nodes / 2 + 1 } else { nodes });
            all.sort_unstable();
            Fault::Crash(all)
        }
        6 => Fault::Slow(Duration::from_millis(rng.u64(50..400))),
        7 => Fault::Disk(one, disk_fault(rng)),
        _ => Fault::Engine(one, disk_fault(rng)),
    }
}

fn disk_fault(rng: &mut fastrand::Rng) -> DiskFault {
    if rng.bool() {
        DiskFault::Full
    } else {
        DiskFault::Io
    }
}

/// The simulated machines under the nodes: each node's log disk and its
/// engine (on a disk of its own, or in memory), kept across its crashes.
pub(crate) struct Machines {
    disks: Vec<Arc<SimDisk>>,
    pub(crate) engines: Vec<NodeEngine>,
    dirs: Vec<PathBuf>,
}

impl Machines {
    /// A disk for each of `nodes` nodes, mounted under its data directory
    /// in `dir`, with random choices drawn from `seed`.
    pub(crate) fn new(seed: u64, nodes: usize, dir: &Path) -> Machines {
        let dirs: Vec<PathBuf> = (0..nodes).map(|n| dir.join(host(n))).collect();
        let disks: Vec<Arc<SimDisk>> = (0..nodes)
            .map(|n| SimDisk::new(seed ^ 0xd15c ^ (n as u64) << 32))
            .collect();
        for (disk, dir) in disks.iter().zip(&dirs) {
            disk.mount(dir);
        }
        // Most nodes keep their data across crashes; one in three (by the
        // seed) has the in-memory engine and comes back by state transfer.
        let engines = (0..nodes)
            .map(|n| {
                if (seed + n as u64).is_multiple_of(3) {
                    NodeEngine::Memory(FaultSwitch::new())
                } else {
                    NodeEngine::Redb(SimDisk::new(seed ^ 0xe6 ^ (n as u64) << 40))
                }
            })
            .collect();
        Machines {
            disks,
            engines,
            dirs,
        }
    }

    pub(crate) fn unmount(&self) {
        for dir in &self.dirs {
            SimDisk::unmount(dir);
        }
    }

    /// Node `n` loses power: its disk keeps only what was synced (and a
    /// torn part of the rest), and its software stops.
    fn crash(&self, sim: &mut Sim<'_>, n: usize) {
        self.disks[n].crash();
        if let NodeEngine::Redb(disk) = &self.engines[n] {
            disk.crash();
        }
        sim.crash(host(n));
    }

    fn restart(&self, sim: &mut Sim<'_>, n: usize) {
        self.disks[n].revive();
        if let NodeEngine::Redb(disk) = &self.engines[n] {
            disk.revive();
        }
        sim.bounce(host(n));
    }

    /// Node `n`'s engine fails as `fault` says, or works again.
    fn engine_fault(&self, n: usize, fault: DiskFault) {
        match &self.engines[n] {
            NodeEngine::Redb(disk) => disk.set_fault(fault),
            NodeEngine::Memory(switch) => switch.set(match fault {
                DiskFault::Full => EngineFault::DiskFull,
                DiskFault::Io => EngineFault::Io,
                _ => EngineFault::None,
            }),
        }
    }
}

/// Carries out `action` on the simulation.
pub(crate) fn apply(sim: &mut Sim<'_>, action: &Action, machines: &Machines) {
    match action {
        Action::Start(Fault::Partition(pairs)) => {
            for &(a, b) in pairs {
                sim.partition(host(a), host(b));
            }
        }
        Action::Heal(Fault::Partition(pairs)) => {
            for &(a, b) in pairs {
                sim.repair(host(a), host(b));
            }
        }
        Action::Start(Fault::Hold(pairs)) => {
            for &(a, b) in pairs {
                sim.hold(host(a), host(b));
            }
        }
        Action::Heal(Fault::Hold(pairs)) => {
            for &(a, b) in pairs {
                sim.release(host(a), host(b));
            }
        }
        Action::Start(Fault::Crash(nodes)) => {
            for &n in nodes {
                machines.crash(sim, n);
            }
        }
        Action::Heal(Fault::Crash(nodes)) => {
            for &n in nodes {
                machines.restart(sim, n);
            }
        }
        Action::Start(Fault::Slow(max)) => sim.set_max_message_latency(*max),
        Action::Heal(Fault::Slow(_)) => sim.set_max_message_latency(MAX_LATENCY),
        Action::Start(Fault::Disk(n, fault)) => machines.disks[*n].set_fault(*fault),
        Action::Heal(Fault::Disk(n, _)) => {
            machines.disks[*n].set_fault(DiskFault::None);
            machines.crash(sim, *n);
            machines.restart(sim, *n);
        }
        Action::Start(Fault::Engine(n, fault)) => machines.engine_fault(*n, *fault),
        Action::Heal(Fault::Engine(n, _)) => machines.engine_fault(*n, DiskFault::None),
    }
}
