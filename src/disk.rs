//! The file operations of the ordering log and the files beside it (vote,
//! snapshot point, epoch, cluster id and protocol), behind [`Disk`], so
//! that the deterministic simulation can put a disk with faults under them
//! ([`crate::simulation::SimDisk`]: failed writes and syncs, a full disk,
//! writes lost or torn by a crash). A simulation mounts its disk at a
//! directory ([`mount`]); every other path is on the operating system's
//! file system ([`OsDisk`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A file system as the log uses it. Paths are whole paths.
pub(crate) trait Disk: Send + Sync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// A whole file; [`io::ErrorKind::NotFound`] when there is none.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// A reader of the file from `offset` on.
    fn reader(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>>;
    /// Creates the file, or empties it, for writing from its start.
    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Opens the file for writing at `offset`.
    fn write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn DiskFile>>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the creations, removals and renames in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing.
pub(crate) trait DiskFile: Send {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes what was written durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Extends (or cuts) the file to `len` bytes, the new ones zeros;
    /// durable with the next [`DiskFile::sync_data`]. Writing into a file
    /// already this long changes no size, so a sync flushes the data
    /// alone, not the inode's size as well.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// Disks mounted in this process, by directory: only a simulation (one
/// per process) and certusd's failpoints mount any.
static MOUNTS: RwLock<Vec<(PathBuf, Arc<dyn Disk>)>> = RwLock::new(Vec::new());

/// Puts `disk` under every path in `dir`, until [`unmount`].
pub(crate) fn mount(dir: &Path, disk: Arc<dyn Disk>) {
    let mut mounts = MOUNTS.write().unwrap_or_else(PoisonError::into_inner);
    mounts.retain(|(at, _)| at != dir);
    mounts.push((dir.to_path_buf(), disk));
}

/// Takes the disk mounted at `dir` away.
pub(crate) fn unmount(dir: &Path) {
    let mut mounts = MOUNTS.write().unwrap_or_else(PoisonError::into_inner);
    mounts.retain(|(at, _)| at != dir);
}

/// The disk `path` is on.
pub(crate) fn disk_for(path: &Path) -> Arc<dyn Disk> {
    let mounted = {
        let mounts = MOUNTS.read().unwrap_or_else(PoisonError::into_inner);
        mounts
            .iter()
            .filter(|(at, _)| path.starts_with(at))
            .max_by_key(|(at, _)| at.as_os_str().len())
            .map(|(_, disk)| disk.clone())
    };
    mounted.unwrap_or_else(|| {
        static OS: OnceLock<Arc<dyn Disk>> = OnceLock::new();
        OS.get_or_init(|| Arc::new(OsDisk)).clone()
    })
}

/// Replaces the file at `path` with `bytes` on its disk: written to
/// `<path>.tmp`, synced, renamed over the old one, and the directory
/// synced, so a crash leaves either the old or the new file.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let disk = disk_for(path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = disk.create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    disk.rename(&tmp, path)?;
    disk.sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// The operating system's file system.
pub(crate) struct OsDisk;

/// Creates or empties `path` for writing.
fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
}

/// Opens `path` for writing at `offset`.
fn open_at(path: &Path, offset: u64) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

struct OsFile(File);

impl DiskFile for OsFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Disk for OsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for item in fs::read_dir(dir)? {
            names.push(item?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        File::open(path)?.read_exact_at(buf, offset)
    }

    fn reader(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(file))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(OsFile(create(path)?)))
    }

    fn write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(OsFile(open_at(path, offset)?)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The operating system's file system, failing on command (certusd's
/// failpoints): writes fail with `ENOSPC` while `switch` says the disk is
/// full, syncs with `EIO` while it says I/O fails.
#[cfg(feature = "failpoints")]
pub(crate) struct FaultyDisk(pub(crate) crate::kv::FaultSwitch);

#[cfg(feature = "failpoints")]
struct FaultyFile(OsFile, crate::kv::FaultSwitch);

#[cfg(feature = "failpoints")]
impl DiskFile for FaultyFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.1.get() {
            crate::kv::Fault::DiskFull => Err(io::Error::from_raw_os_error(28)),
            _ => self.0.write_all(data),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        match self.1.get() {
            crate::kv::Fault::Io => Err(io::Error::from_raw_os_error(5)),
            _ => self.0.sync_data(),
        }
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

#[cfg(feature = "failpoints")]
impl Disk for FaultyDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsDisk.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        OsDisk.list(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsDisk.read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        OsDisk.read_at(path, offset, buf)
    }

    fn reader(&self, path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        OsDisk.reader(path, offset)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(FaultyFile(OsFile(create(path)?), self.0.clone())))
    }

    fn write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn DiskFile>> {
        let file = OsFile(open_at(path, offset)?);
        Ok(Box::new(FaultyFile(file, self.0.clone())))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        OsDisk.truncate(path, len)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        OsDisk.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsDisk.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsDisk.sync_dir(dir)
    }
}
