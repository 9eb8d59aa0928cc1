//! The nemesis: a seeded schedule of faults against the cluster, one at a
//! time, each held for a few seconds and then undone.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::proxy::grudge;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// SIGKILL one node, restart it at the heal.
    Kill,
    /// SIGKILL a majority.
    KillMajority,
    /// SIGKILL every node.
    KillAll,
    /// SIGSTOP one node, SIGCONT at the heal.
    Pause,
    /// A network partition: one node isolated, majority/minority halves,
    /// or a ring (one node bridging the others).
    Partition,
    /// A node leaves the cluster; a new node joins at the heal.
    Member,
    /// One node's disk is full under its engine (ENOSPC); room again at
    /// the heal. The node fails, restarts in-process, and comes back.
    DiskFull,
    /// One node's engine fails every write (EIO) until the heal.
    EngineIo,
    /// One node is killed and a record of its log damaged: it must refuse
    /// to start while the others go on; repaired and restarted at the heal.
    CorruptLog,
    /// One node's log fails its fsyncs (EIO): its ordering core stops and
    /// certusd exits with status 3; restarted at the heal, as a service
    /// manager would.
    LogIo,
}

impl Fault {
    pub(crate) const ALL: [Fault; 10] = [
        Fault::Kill,
        Fault::KillMajority,
        Fault::KillAll,
        Fault::Pause,
        Fault::Partition,
        Fault::Member,
        Fault::DiskFull,
        Fault::EngineIo,
        Fault::CorruptLog,
        Fault::LogIo,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::KillMajority => "kill-majority",
            Fault::KillAll => "kill-all",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Member => "member",
            Fault::DiskFull => "disk-full",
            Fault::EngineIo => "engine-io",
            Fault::CorruptLog => "corrupt-log",
            Fault::LogIo => "log-io",
        }
    }

    /// "none", "all", or a comma-separated list of names.
    pub(crate) fn parse_list(text: &str) -> Result<Vec<Fault>, String> {
        match text {
            "none" | "" => return Ok(Vec::new()),
            "all" => return Ok(Fault::ALL.to_vec()),
            _ => {}
        }
        text.split(',')
            .map(|name| {
                Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == name.trim())
                    .ok_or_else(|| format!("unknown nemesis {name:?}"))
            })
            .collect()
    }
}

/// Runs faults until `until`, logging each step. `nodes` is the clients'
/// address book, updated on membership changes.
pub(crate) struct Nemesis {
    faults: Vec<Fault>,
    rng: fastrand::Rng,
    start: Instant,
    pub(crate) log: Vec<String>,
}

impl Nemesis {
    pub(crate) fn new(faults: Vec<Fault>, seed: u64) -> Nemesis {
        Nemesis {
            faults,
            rng: fastrand::Rng::with_seed(seed),
            start: Instant::now(),
            log: Vec::new(),
        }
    }

    fn note(&mut self, what: String) {
        let line = format!("{:>7.2}s {what}", self.start.elapsed().as_secs_f64());
        eprintln!("nemesis {line}");
        self.log.push(line);
    }

    fn sleep_until(until: Instant, span: Duration) {
        let wake = (Instant::now() + span).min(until);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }

    /// Alternates quiet spells and faults until `until`.
    pub(crate) fn run(
        &mut self,
        cluster: &mut Cluster,
        nodes: &Arc<Mutex<Vec<SocketAddr>>>,
        until: Instant,
    ) -> Result<(), String> {
        if self.faults.is_empty() {
            Self::sleep_until(until, until.saturating_duration_since(Instant::now()));
            return Ok(());
        }
        while Instant::now() < until {
            let quiet = Duration::from_millis(self.rng.u64(1000..3000));
            Self::sleep_until(until, quiet);
            if Instant::now() >= until {
                break;
            }
            let fault = self.faults[self.rng.usize(..self.faults.len())];
            let undo = self.start_fault(fault, cluster)?;
            *nodes.lock().unwrap_or_else(PoisonError::into_inner) = cluster.clients();
            let held = Duration::from_millis(self.rng.u64(2000..5000));
            Self::sleep_until(until, held);
            self.undo(undo, cluster, nodes)?;
        }
        Ok(())
    }

    fn pick(&mut self, ids: &[u64], count: usize) -> Vec<u64> {
        let mut ids = ids.to_vec();
        self.rng.shuffle(&mut ids);
        ids.truncate(count);
        ids
    }

    fn start_fault(&mut self, fault: Fault, cluster: &mut Cluster) -> Result<Undo, String> {
        let ids = cluster.ids();
        let majority = ids.len() / 2 + 1;
        let undo = match fault {
            Fault::Kill | Fault::KillMajority | Fault::KillAll => {
                let count = match fault {
                    Fault::Kill => 1,
                    Fault::KillMajority => majority,
                    _ => ids.len(),
                };
                let victims = self.pick(&ids, count);
                for &id in &victims {
                    cluster.kill(id);
                }
                self.note(format!("kill -9 {victims:?}"));
                Undo::Restart(victims)
            }
            Fault::Pause => {
                let victim = self.pick(&ids, 1);
                cluster.pause(victim[0]);
                self.note(format!("SIGSTOP {victim:?}"));
                Undo::Resume(victim)
            }
            Fault::Partition => self.partition(cluster, &ids),
            Fault::DiskFull | Fault::EngineIo => {
                let victim = self.pick(&ids, 1)[0];
                let what = if fault == Fault::DiskFull {
                    "disk-full"
                } else {
                    "io"
                };
                cluster.set_engine_fault(victim, what)?;
                self.note(format!("engine of node {victim}: {what}"));
                Undo::ClearFault(victim)
            }
            Fault::LogIo => {
                let victim = self.pick(&ids, 1)[0];
                cluster.set_engine_fault(victim, "log-io")?;
                self.note(format!("log of node {victim}: fsync fails (EIO)"));
                Undo::Revive(victim)
            }
            Fault::CorruptLog => self.corrupt_log(cluster, &ids)?,
            Fault::Member => {
                if ids.len() < 3 {
                    return Ok(Undo::Nothing);
                }
                let leaving = self.pick(&ids, 1)[0];
                self.note(format!("node {leaving} leaves"));
                if let Err(err) = cluster.leave(leaving) {
                    // Not a verdict: a cluster without a primary cannot
                    // change its membership. Recovery checks the node.
                    self.note(format!("leave failed: {err}"));
                    return Ok(Undo::Nothing);
                }
                Undo::Join
            }
        };
        Ok(undo)
    }

    /// Kills a node and damages its log; it must refuse to start.
    fn corrupt_log(&mut self, cluster: &mut Cluster, ids: &[u64]) -> Result<Undo, String> {
        let victim = self.pick(ids, 1)[0];
        let Some(corruption) = cluster.corrupt_log(victim)? else {
            self.note(format!(
                "node {victim}'s log has no record to damage; restart"
            ));
            return Ok(Undo::Restart(vec![victim]));
        };
        self.note(format!(
            "kill -9 [{victim}], flip a byte at {} of {}",
            corruption.offset,
            corruption.path.display()
        ));
        let refused = cluster.expect_refusal(victim, Duration::from_secs(20))?;
        self.note(refused);
        Ok(Undo::Repair(victim, corruption))
    }

    fn partition(&mut self, cluster: &Cluster, ids: &[u64]) -> Undo {
        let mut shuffled = ids.to_vec();
        self.rng.shuffle(&mut shuffled);
        let minority = ids.len().div_ceil(2) - 1;
        let cut = match self.rng.u8(..3) {
            0 => grudge::isolate(ids, shuffled[0]),
            1 => grudge::halves(&shuffled[..minority.max(1)], &shuffled[minority.max(1)..]),
            _ => grudge::ring(&shuffled),
        };
        for &(a, b) in &cut {
            cluster.net.cut(a, b);
        }
        self.note(format!("partition {}", cluster.net.describe()));
        Undo::Heal
    }

    fn undo(
        &mut self,
        undo: Undo,
        cluster: &mut Cluster,
        nodes: &Arc<Mutex<Vec<SocketAddr>>>,
    ) -> Result<(), String> {
        match undo {
            Undo::Nothing => {}
            Undo::Restart(victims) => {
                for &id in &victims {
                    cluster.restart(id)?;
                }
                self.note(format!("restart {victims:?}"));
            }
            Undo::Resume(victims) => {
                for &id in &victims {
                    cluster.resume(id);
                }
                self.note(format!("SIGCONT {victims:?}"));
            }
            Undo::Heal => {
                cluster.net.heal();
                self.note("heal".into());
            }
            Undo::Join => {
                let id = cluster.join()?;
                self.note(format!("node {id} joins"));
            }
            Undo::ClearFault(id) => {
                cluster.set_engine_fault(id, "none")?;
                self.note(format!("engine of node {id}: works again"));
            }
            Undo::Revive(id) => {
                cluster.set_engine_fault(id, "none")?;
                match cluster.revive(id)? {
                    Some(status) => {
                        self.note(format!("node {id} had exited ({status}); restart"));
                    }
                    None => self.note(format!("log of node {id}: works again")),
                }
            }
            Undo::Repair(id, corruption) => {
                cluster.repair(&corruption)?;
                cluster.restart(id)?;
                self.note(format!("repair and restart [{id}]"));
            }
        }
        *nodes.lock().unwrap_or_else(PoisonError::into_inner) = cluster.clients();
        Ok(())
    }
}

/// How to end a fault.
enum Undo {
    Nothing,
    Restart(Vec<u64>),
    Resume(Vec<u64>),
    Heal,
    Join,
    ClearFault(u64),
    /// Clear the fault, and restart the node if it exited.
    Revive(u64),
    Repair(u64, crate::cluster::Corruption),
}
