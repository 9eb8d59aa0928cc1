//! Files a database writes in place (redb's one file) on a [`SimDisk`].
//!
//! A drive's cache may flush the writes since the last sync in any order,
//! and a sector is the most it writes atomically (Pillai et al., "All File
//! Systems Are Not Created Equal", OSDI 2014; Zheng et al.,
//! "Understanding the Robustness of SSDs under Power Fault", FAST 2013).
//! So a crash keeps the image of the last sync and a seeded subset of the
//! changes made since, in order, each whole, torn after a whole number of
//! 512-byte sectors, or lost. A database that commits with checksums or in
//! two phases survives that; one that trusts write order does not.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::disk::{DiskFault, SimDisk, State, eio, full, read_into, write_into};

/// The most bytes a drive writes atomically.
const SECTOR: usize = 512;

/// A change to a file written in place that is not durable yet.
enum Pending {
    Write { at: usize, bytes: Vec<u8> },
    SetLen(usize),
}

/// The durable image of a file written in place, and its changes since.
pub(super) struct InPlace {
    /// What the last successful sync made durable.
    pub(super) durable: Vec<u8>,
    pending: Vec<Pending>,
}

impl InPlace {
    /// What a crash leaves: the durable image with a seeded subset of the
    /// changes since applied, in order.
    pub(super) fn crash(mut self, state: &mut State) -> InPlace {
        for change in std::mem::take(&mut self.pending) {
            match change {
                Pending::SetLen(len) => {
                    if state.draw(2) == 0 {
                        self.durable.resize(len, 0);
                    }
                }
                Pending::Write { at, bytes } => {
                    let kept = match state.draw(4) {
                        0 => 0,
                        1 => {
                            let sectors = state.draw((bytes.len() / SECTOR) as u64 + 1) as usize;
                            (sectors * SECTOR).min(bytes.len())
                        }
                        _ => bytes.len(),
                    };
                    write_into(&mut self.durable, at, &bytes[..kept]);
                }
            }
        }
        self
    }

    /// Every change since the last sync becomes durable.
    fn sync(&mut self) {
        for change in std::mem::take(&mut self.pending) {
            match change {
                Pending::SetLen(len) => self.durable.resize(len, 0),
                Pending::Write { at, bytes } => write_into(&mut self.durable, at, &bytes),
            }
        }
    }
}

/// A file of a [`SimDisk`] written in place: a database's file, whose
/// crashes keep any subset of its unsynced writes (see the module
/// documentation). With the feature `redb` it is a redb storage backend
/// that locks the whole file, as redb's own file backend does, so a second
/// opener is refused. One opened before a crash fails every operation
/// after it: the process that held it is gone.
#[derive(Debug)]
pub struct InPlaceFile {
    disk: Arc<SimDisk>,
    id: u64,
    /// This opening, for the file's lock.
    instance: u64,
    /// The disk's crash count when it was opened.
    boot: u64,
}

impl SimDisk {
    /// Opens the file at `path` to write in place, creating it empty when
    /// missing. A created file's name is durable at once, as when a
    /// database syncs its directory after creating its file.
    ///
    /// # Errors
    /// When the host is down, or the disk is full and the file is new.
    pub fn open_in_place(self: &Arc<Self>, path: &Path) -> io::Result<InPlaceFile> {
        let mut state = self.lock();
        state.up()?;
        let id = match state.names.get(path) {
            Some(id) => *id,
            None if state.fault == DiskFault::Full => return Err(full()),
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.names.insert(path.to_path_buf(), id);
                state.durable_names.insert(path.to_path_buf(), id);
                id
            }
        };
        let file = state.file(id);
        if file.in_place.is_none() {
            file.in_place = Some(InPlace {
                durable: file.data.clone(),
                pending: Vec::new(),
            });
        }
        let instance = state.next_instance;
        state.next_instance += 1;
        Ok(InPlaceFile {
            disk: self.clone(),
            id,
            instance,
            boot: state.boot,
        })
    }
}

impl InPlaceFile {
    /// Runs `f` on the disk's state and this file's durable image, once
    /// the host is up.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut State, &mut Vec<u8>, &mut InPlace) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.disk.lock();
        self.alive(&state)?;
        let file = state.file(self.id);
        let mut data = std::mem::take(&mut file.data);
        let mut in_place = file.in_place.take().unwrap_or(InPlace {
            durable: data.clone(),
            pending: Vec::new(),
        });
        let result = f(&mut state, &mut data, &mut in_place);
        let file = state.file(self.id);
        file.data = data;
        file.in_place = Some(in_place);
        result
    }

    fn alive(&self, state: &State) -> io::Result<()> {
        state.up()?;
        if state.boot == self.boot {
            Ok(())
        } else {
            Err(io::Error::other("opened before the simulated host crashed"))
        }
    }

    /// Takes the lock on the whole file: false while another opening
    /// holds it.
    ///
    /// # Errors
    /// When the host is down or crashed since this file was opened.
    pub fn try_lock(&self) -> io::Result<bool> {
        let mut state = self.disk.lock();
        self.alive(&state)?;
        let holder = *state.locks.entry(self.id).or_insert(self.instance);
        Ok(holder == self.instance)
    }

    /// Releases the lock, if this opening holds it.
    pub fn unlock(&self) {
        let mut state = self.disk.lock();
        if state.locks.get(&self.id) == Some(&self.instance) {
            state.locks.remove(&self.id);
        }
    }

    /// The file's length.
    ///
    /// # Errors
    /// When the host is down.
    pub fn size(&self) -> io::Result<u64> {
        self.with(|_, data, _| Ok(data.len() as u64))
    }

    /// Reads `out.len()` bytes at `offset`.
    ///
    /// # Errors
    /// `EIO` under [`DiskFault::Io`]; `UnexpectedEof` past the end.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.with(|state, data, _| {
            if state.fault == DiskFault::Io {
                return Err(eio());
            }
            read_into(data, offset, out)
        })
    }

    /// Sets the length, new bytes zero.
    ///
    /// # Errors
    /// `ENOSPC` when the disk is full and the file grows.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|state, data, in_place| {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if state.fault == DiskFault::Full && len > data.len() {
                return Err(full());
            }
            data.resize(len, 0);
            in_place.pending.push(Pending::SetLen(len));
            Ok(())
        })
    }

    /// Writes `bytes` at `offset`, growing the file if needed.
    ///
    /// # Errors
    /// `ENOSPC` when the disk is full, after a seeded part of the bytes.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.with(|state, data, in_place| {
            let (bytes, failed) = state.accept(bytes);
            let at = usize::try_from(offset).unwrap_or(usize::MAX);
            write_into(data, at, bytes);
            in_place.pending.push(Pending::Write {
                at,
                bytes: bytes.to_vec(),
            });
            if failed { Err(full()) } else { Ok(()) }
        })
    }

    /// Makes every change so far durable.
    ///
    /// # Errors
    /// `EIO` or `ENOSPC` under a fault while changes are pending; then
    /// none of them is durable.
    pub fn sync(&self) -> io::Result<()> {
        self.with(|state, _, in_place| {
            if !in_place.pending.is_empty() {
                match state.fault {
                    DiskFault::Io => return Err(eio()),
                    DiskFault::Full => return Err(full()),
                    DiskFault::None => {}
                }
            }
            in_place.sync();
            Ok(())
        })
    }
}

#[cfg(feature = "redb")]
impl ::redb::StorageBackend for InPlaceFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.size()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        InPlaceFile::read(self, offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        InPlaceFile::set_len(self, len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.sync()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        InPlaceFile::write(self, offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.unlock();
        Ok(())
    }

    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, ::redb::BackendError> {
        whole(start, end)?;
        Ok(self.try_lock()?)
    }

    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<(), ::redb::BackendError> {
        whole(start, end)?;
        self.unlock();
        Ok(())
    }
}

/// Only whole-file locks are supported (redb's second level of locking
/// support: its exclusive-writer mode works).
#[cfg(feature = "redb")]
fn whole(
    start: std::ops::Bound<u64>,
    end: std::ops::Bound<u64>,
) -> Result<(), ::redb::BackendError> {
    use std::ops::Bound;
    match (start, end) {
        (Bound::Unbounded | Bound::Included(0), Bound::Unbounded) => Ok(()),
        _ => Err(::redb::BackendError::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_the_synced_image_and_some_of_the_rest() {
        let mut kept_some = false;
        let mut lost_some = false;
        for seed in 0..64 {
            let disk = SimDisk::new(seed);
            let file = disk.open_in_place(Path::new("/sim/db")).unwrap();
            file.write(0, &[1; 4096]).unwrap();
            file.sync().unwrap();
            file.write(0, &[2; 1024]).unwrap();
            file.write(8192, &[3; 1024]).unwrap();
            disk.crash();
            assert!(file.size().is_err(), "a crashed host answered");
            disk.revive();
            let file = disk.open_in_place(Path::new("/sim/db")).unwrap();
            let len = file.size().unwrap() as usize;
            let mut image = vec![0; len];
            file.read(0, &mut image).unwrap();
            // The synced bytes are there unless a later write covered them.
            assert!(image[1024..4096].iter().all(|&b| b == 1), "seed {seed}");
            assert!(
                image[..1024].iter().all(|&b| b == 1 || b == 2),
                "seed {seed}"
            );
            let rewritten = image[..1024].iter().filter(|&&b| b == 2).count();
            assert_eq!(rewritten % SECTOR, 0, "seed {seed}: torn inside a sector");
            kept_some |= rewritten > 0 || len > 4096;
            lost_some |= rewritten < 1024;
        }
        assert!(kept_some && lost_some, "crashes never varied what survived");
    }

    #[test]
    fn a_failed_sync_makes_nothing_durable() {
        let disk = SimDisk::new(3);
        let file = disk.open_in_place(Path::new("/sim/db")).unwrap();
        file.write(0, b"durable").unwrap();
        file.sync().unwrap();
        file.write(0, b"pending").unwrap();
        disk.set_fault(DiskFault::Io);
        assert_eq!(file.sync().unwrap_err().raw_os_error(), Some(5));
        let mut out = [0; 7];
        assert_eq!(file.read(0, &mut out).unwrap_err().raw_os_error(), Some(5));
        disk.set_fault(DiskFault::Full);
        assert_eq!(file.set_len(1 << 20).unwrap_err().raw_os_error(), Some(28));
        assert_eq!(file.write(7, b"more").unwrap_err().raw_os_error(), Some(28));
        disk.set_fault(DiskFault::None);
        let state = disk.lock();
        let id = state.names[Path::new("/sim/db")];
        let durable = &state.files[&id].in_place.as_ref().unwrap().durable;
        assert_eq!(durable.as_slice(), b"durable");
    }
}
