//! A simulated disk for the ordering log: files in memory, faults on
//! command, and crashes that lose what was not synced.
//!
//! The model is the one POSIX promises and fsyncgate taught (Rebello et
//! al., "Can Applications Recover from fsync Failures?", USENIX ATC 2020;
//! Pillai et al., "All File Systems Are Not Created Equal", OSDI 2014):
//! - a write is durable only once its file is synced; a crash keeps a
//!   seeded prefix of each file's unsynced bytes (a torn append) and drops
//!   the rest, back to the length a synced extension gave the file (its
//!   bytes then zeros, as a preallocated file reads);
//! - a file written in place (a database's, opened with
//!   [`SimDisk::open_in_place`]) keeps any subset of its writes since its
//!   last sync instead, each whole, torn at a 512-byte sector, or lost, as
//!   a drive that reorders its cache flushes does;
//! - creating, removing and renaming a file is durable only once its
//!   directory is synced; a crash undoes the others;
//! - a full disk fails writes with `ENOSPC` after a seeded prefix of the
//!   bytes (a short write), and syncs of unsynced bytes with it too;
//! - an I/O error fails syncs and reads with `EIO`, and the bytes a failed
//!   sync covered are not durable.
//!
//! Everything random is drawn from the disk's seed, so a simulation
//! replays. Between [`SimDisk::crash`] and [`SimDisk::revive`] the host is
//! down and every operation fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::in_place::InPlace;
use crate::disk::{Disk, DiskFile};

/// A fault a [`SimDisk`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskFault {
    /// No fault.
    None,
    /// The disk is full: writes fail with `ENOSPC` after part of their
    /// bytes, syncs of unsynced bytes fail with it, creating files fails.
    Full,
    /// The device fails: syncs and reads fail with `EIO`.
    Io,
}

#[derive(Default)]
pub(super) struct SimFile {
    pub(super) data: Vec<u8>,
    /// The prefix of `data` that survives a crash (an appended file).
    pub(super) synced: usize,
    /// The length the file was last extended (or cut) to, and that length
    /// once a sync made it durable: a crash leaves the file at least that
    /// long, zeros where nothing durable was written.
    pub(super) extent: usize,
    pub(super) durable_extent: usize,
    /// What survives a crash of a file written in place, instead.
    pub(super) in_place: Option<InPlace>,
}

pub(super) struct State {
    pub(super) files: BTreeMap<u64, SimFile>,
    /// The names every operation sees.
    pub(super) names: BTreeMap<PathBuf, u64>,
    /// The names a crash leaves.
    pub(super) durable_names: BTreeMap<PathBuf, u64>,
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) next_id: u64,
    pub(super) fault: DiskFault,
    crashed: bool,
    /// Crashes so far: a file opened before the last one is dead.
    pub(super) boot: u64,
    /// Files written in place locked whole, by the instance that holds
    /// each ([`super::InPlaceFile`]).
    pub(super) locks: BTreeMap<u64, u64>,
    pub(super) next_instance: u64,
    /// splitmix64 state.
    rng: u64,
}

impl State {
    pub(super) fn draw(&mut self, below: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if below == 0 { 0 } else { z % below }
    }

    /// What of a write reaches the disk: all of it, or, when the disk is
    /// full, a seeded prefix, and `true` for the `ENOSPC` the write fails
    /// with.
    pub(super) fn accept<'a>(&mut self, data: &'a [u8]) -> (&'a [u8], bool) {
        if self.fault == DiskFault::Full {
            let kept = self.draw(data.len() as u64) as usize;
            (&data[..kept], true)
        } else {
            (data, false)
        }
    }

    pub(super) fn up(&self) -> io::Result<()> {
        if self.crashed {
            Err(io::Error::other("the simulated host crashed"))
        } else {
            Ok(())
        }
    }

    pub(super) fn id(&self, path: &Path) -> io::Result<u64> {
        self.up()?;
        self.names.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }

    pub(super) fn file(&mut self, id: u64) -> &mut SimFile {
        self.files.entry(id).or_default()
    }

    pub(super) fn check_dir(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", path.display()),
            )),
        }
    }
}

pub(super) fn full() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}

/// Copies `data`'s bytes at `offset` into `buf`: `UnexpectedEof` when the
/// file ends first.
pub(super) fn read_into(data: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let bytes = start
        .checked_add(buf.len())
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    buf.copy_from_slice(bytes);
    Ok(())
}

/// Writes `bytes` into `image` at `at`, growing it with zeros as needed.
pub(super) fn write_into(image: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if image.len() < at + bytes.len() {
        image.resize(at + bytes.len(), 0);
    }
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

pub(super) fn eio() -> io::Error {
    io::Error::from_raw_os_error(5) // EIO
}

/// A simulated disk (see the module documentation). Mount it under a
/// node's data directory with [`SimDisk::mount`].
pub struct SimDisk {
    state: Mutex<State>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDisk")
            .field("files", &state.names.len())
            .field("fault", &state.fault)
            .field("crashed", &state.crashed)
            .finish()
    }
}

impl SimDisk {
    /// An empty disk whose random choices come from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Arc<SimDisk> {
        Arc::new(SimDisk {
            state: Mutex::new(State {
                files: BTreeMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs: BTreeSet::new(),
                next_id: 1,
                fault: DiskFault::None,
                crashed: false,
                boot: 0,
                locks: BTreeMap::new(),
                next_instance: 1,
                rng: seed,
            }),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the ordering log of every node whose log directory is under
    /// `dir` (and the files beside it) on this disk.
    pub fn mount(self: &Arc<Self>, dir: &Path) {
        crate::disk::mount(dir, Arc::new(self.clone()));
    }

    /// Takes this disk away from `dir` again.
    pub fn unmount(dir: &Path) {
        crate::disk::unmount(dir);
    }

    /// Injects `fault` from now on (or stops injecting).
    pub fn set_fault(&self, fault: DiskFault) {
        self.lock().fault = fault;
    }

    /// The host lost power: each file keeps what was synced and a seeded
    /// prefix of the rest, names revert to what their directory sync made
    /// durable, and every operation fails until [`SimDisk::revive`].
    pub fn crash(&self) {
        let mut state = self.lock();
        state.crashed = true;
        state.boot += 1;
        state.locks.clear();
        state.names = state.durable_names.clone();
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.files.retain(|id, _| live.contains(id));
        let ids: Vec<u64> = state.files.keys().copied().collect();
        for id in ids {
            if let Some(in_place) = state.file(id).in_place.take() {
                let survived = in_place.crash(&mut state);
                state.file(id).data.clone_from(&survived.durable);
                state.file(id).in_place = Some(survived);
                continue;
            }
            let (synced, len) = {
                let file = state.file(id);
                (file.synced, file.data.len())
            };
            let torn = state.draw((len - synced) as u64 + 1) as usize;
            let file = state.file(id);
            file.data.truncate(synced + torn);
            if file.data.len() < file.durable_extent {
                file.data.resize(file.durable_extent, 0);
            }
            file.extent = file.durable_extent;
            file.synced = file.data.len();
        }
    }

    /// The host is up again (its software restarts on what survived).
    pub fn revive(&self) {
        self.lock().crashed = false;
    }
}

/// A file of a [`SimDisk`] open for writing.
struct SimHandle {
    disk: Arc<SimDisk>,
    id: u64,
    at: usize,
}

impl DiskFile for SimHandle {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut state = self.disk.lock();
        state.up()?;
        let (data, failed) = state.accept(data);
        let at = self.at;
        let file = state.file(self.id);
        write_into(&mut file.data, at, data);
        // Overwritten synced bytes are no longer known durable.
        file.synced = file.synced.min(at);
        self.at += data.len();
        if failed { Err(full()) } else { Ok(()) }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.disk.lock();
        state.up()?;
        let fault = state.fault;
        let file = state.file(self.id);
        let unsynced = file.data.len() > file.synced;
        match fault {
            DiskFault::Io if unsynced => Err(eio()),
            DiskFault::Full if unsynced => Err(full()),
            _ => {
                file.synced = file.data.len();
                file.durable_extent = file.extent;
                Ok(())
            }
        }
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.disk.lock();
        state.up()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let file = state.file(self.id);
        file.data.resize(len, 0);
        file.synced = file.synced.min(len);
        file.extent = len;
        Ok(())
    }
}

impl Disk for Arc<SimDisk> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.up()?;
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.up()?;
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.lock();
        let id = state.id(path)?;
        if state.fault == DiskFault::Io {
            return Err(eio());
        }
        Ok(state.file(id).data.clone())
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.id(path)?;
        if state.fault == DiskFault::Io {
            return Err(eio());
        }
        read_into(&state.file(id).data, offset, buf)
    }

    fn reader(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let mut state = self.lock();
        let id = state.id(path)?;
        if state.fault == DiskFault::Io {
            return Err(eio());
        }
        let data = &state.file(id).data;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        Ok(Box::new(Cursor::new(data[start..].to_vec())))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.lock();
        state.up()?;
        state.check_dir(path)?;
        if state.fault == DiskFault::Full {
            return Err(full());
        }
        let id = match state.names.get(path) {
            Some(id) => *id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        let file = state.file(id);
        file.data.clear();
        file.synced = 0;
        Ok(Box::new(SimHandle {
            disk: self.clone(),
            id,
            at: 0,
        }))
    }

    fn write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn DiskFile>> {
        let state = self.lock();
        let id = state.id(path)?;
        Ok(Box::new(SimHandle {
            disk: self.clone(),
            id,
            at: usize::try_from(offset).unwrap_or(usize::MAX),
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.id(path)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let file = state.file(id);
        file.data.resize(len, 0);
        file.synced = len;
        file.extent = len;
        file.durable_extent = len;
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.id(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.id(from)?;
        state.check_dir(to)?;
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.up()?;
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        let now: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        state.durable_names.retain(|path, _| !in_dir(path));
        state.durable_names.extend(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(disk: &Arc<SimDisk>, path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
        let mut file = disk.create(path)?;
        file.write_all(data)?;
        if sync { file.sync_data() } else { Ok(()) }
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_a_prefix_of_the_rest() {
        let disk = SimDisk::new(7);
        let dir = Path::new("/sim/log");
        disk.create_dir_all(dir).unwrap();
        let path = dir.join("a.seg");
        write(&disk, &path, b"synced", true).unwrap();
        disk.sync_dir(dir).unwrap();
        let mut tail = disk.write_at(&path, 6).unwrap();
        tail.write_all(b"-unsynced").unwrap();
        let unnamed = dir.join("b.seg");
        write(&disk, &unnamed, b"never named durably", true).unwrap();
        disk.crash();
        assert!(disk.read(&path).is_err(), "a crashed host read");
        disk.revive();
        let after = disk.read(&path).unwrap();
        assert!(after.starts_with(b"synced"), "{after:?}");
        assert!(b"synced-unsynced".starts_with(&after), "{after:?}");
        assert_eq!(disk.list(dir).unwrap(), ["a.seg"]);
    }

    #[test]
    fn faults_fail_writes_syncs_and_reads_with_the_errors_of_a_real_disk() {
        let disk = SimDisk::new(1);
        let dir = Path::new("/sim");
        disk.create_dir_all(dir).unwrap();
        let path = dir.join("f");
        write(&disk, &path, b"kept", true).unwrap();
        disk.set_fault(DiskFault::Full);
        let mut file = disk.write_at(&path, 4).unwrap();
        let err = file.write_all(b"more bytes").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(28));
        disk.set_fault(DiskFault::Io);
        assert_eq!(disk.read(&path).unwrap_err().raw_os_error(), Some(5));
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(5));
        let id = disk.lock().id(&path).unwrap();
        assert_eq!(
            disk.lock().file(id).synced,
            4,
            "a failed sync made bytes durable"
        );
    }
}
