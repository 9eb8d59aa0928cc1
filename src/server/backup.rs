//! Backup and restore: a consistent copy of a running node's data at one
//! position, streamed to a file, and a new cluster seeded from it.
//!
//! **Backup** (`certusd backup`, [`fetch`]): the client sends `CERTUS
//! BACKUP` on a node's Redis port (an `@admin` command). The node opens a
//! read view at its current causal position P, which holds back garbage
//! collection of what P sees but pauses nothing, and streams the live rows
//! as of P, the way a state transfer reads them: a status line `+BACKUP`,
//! then one bulk string per file record, then a null bulk. The client
//! checks every record and writes them to `FILE.tmp`, synced, then renamed
//! to `FILE`.
//!
//! **The file** is a sequence of checksummed frames ([`FrameKind::Backup`]):
//! a header (format, P, the cluster time at P), row chunks, and a trailer
//! with the row count and a crc32 over every row, so a truncated or damaged
//! file is refused whole.
//!
//! **Restore** (`certusd restore`, [`restore`]): run on every node of the
//! new cluster, each with its own configuration, before its first start.
//! Into an empty data directory it writes the rows as the state before the
//! new cluster's first position, with a fresh certification state at 0
//! whose cluster time is the backup's (so deadlines keep their meaning), so
//! all nodes start identical and the new log begins at 1.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::config::DaemonConfig;
use crate::certify::Certifier;
use crate::frame::{self, FrameError, FrameKind, HEADER_LEN};
use crate::ids::{ClusterTime, Seqno};
use crate::kv::{EngineError, KvError, KvStore, MvccStore};
use crate::node::TxnOptions;

/// The file format this build writes and reads.
const FORMAT: u32 = 1;
/// Rows and bytes per chunk record, at most (a larger row goes alone).
const CHUNK_KEYS: usize = 10_000;
const CHUNK_BYTES: usize = 1 << 20;
/// The largest record: a chunk of about 1 MiB, or one row as large as a
/// write-set allows.
const MAX_RECORD: usize = 128 << 20;

/// One record of a backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Record {
    /// First: what the file holds.
    Header {
        format: u32,
        seqno: u64,
        time: ClusterTime,
    },
    /// Live rows as of the header's position, in key order.
    Rows { entries: Vec<(Bytes, Bytes)> },
    /// Last: how many rows came and the crc32 over all of them.
    End { keys: u64, crc32: u32 },
}

/// What a backup file holds, once checked whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSummary {
    /// The position the copy is at.
    pub seqno: Seqno,
    /// The cluster time at that position.
    pub time: ClusterTime,
    /// Rows (live keys).
    pub keys: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading or writing a file or a connection failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The node refused (an error reply: NOAUTH, NOPERM, LOADING...).
    #[error("the node refused: {0}")]
    Refused(String),
    /// What arrived or what the file holds is not a whole, intact backup.
    #[error("not an intact backup: {0}")]
    Corrupt(String),
    /// A record did not decode.
    #[error("a backup record does not decode: {0}")]
    Frame(#[from] FrameError),
    /// The data directory to restore into already holds a node.
    #[error("{0} is not empty: restore seeds a new node, into an empty data directory")]
    NotEmpty(PathBuf),
    /// The engine failed.
    #[error("the engine failed: {0}")]
    Engine(#[from] EngineError),
    /// The node's data could not be read.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The engine or the settings could not be opened.
    #[error(transparent)]
    Daemon(#[from] Box<super::DaemonError>),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

fn encode(record: &Record) -> Result<Bytes, FrameError> {
    frame::encode(FrameKind::Backup, record, MAX_RECORD)
}

fn decode(bytes: &[u8]) -> Result<Record, BackupError> {
    let (header, body) = frame::decode(bytes, MAX_RECORD)?;
    if header.kind != FrameKind::Backup {
        return Err(BackupError::Corrupt(format!(
            "a {:?} frame where a backup record belongs",
            header.kind
        )));
    }
    Ok(frame::decode_body(FrameKind::Backup, body)?)
}

/// Streams a backup of `store` as of its current causal position to
/// `out`, as `CERTUS BACKUP` answers: `+BACKUP`, one bulk per record, a
/// null bulk.
///
/// # Errors
/// The store's or the connection's; the client then holds no file.
pub(crate) async fn serve<W: AsyncWrite + Unpin>(
    store: KvStore,
    out: &mut W,
) -> Result<(), BackupError> {
    let view = match store.begin_with(TxnOptions::default()).await {
        Ok(view) => view,
        Err(err) => {
            // The client hears why, as any command's error.
            let mut reply = BytesMut::new();
            super::session::error_reply(&err).encode(&mut reply);
            out.write_all(&reply).await.map_err(io_error("sending"))?;
            return Err(err.into());
        }
    };
    let seqno = view.read_view();
    let time = view.time();
    tracing::info!(%seqno, "streaming a backup");
    out.write_all(b"+BACKUP\r\n")
        .await
        .map_err(io_error("sending"))?;
    send(
        out,
        &Record::Header {
            format: FORMAT,
            seqno: seqno.get(),
            time,
        },
    )
    .await?;
    let mut digest = crate::transfer::RowDigest::default();
    let mut after: Option<Bytes> = None;
    loop {
        let (reader, from) = (store.clone(), after.take());
        let read = move || reader.export_chunk(seqno, from.as_deref(), CHUNK_KEYS, CHUNK_BYTES);
        let chunk = crate::task::blocking(read)
            .await
            .ok_or(BackupError::Engine(EngineError::ShutDown))??;
        digest.add(&chunk.entries);
        send(
            out,
            &Record::Rows {
                entries: chunk.entries,
            },
        )
        .await?;
        match chunk.next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let (keys, crc32) = digest.finish();
    send(out, &Record::End { keys, crc32 }).await?;
    out.write_all(b"$-1\r\n")
        .await
        .map_err(io_error("sending"))?;
    out.flush().await.map_err(io_error("sending"))?;
    drop(view);
    tracing::info!(%seqno, keys, "backup streamed");
    Ok(())
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, record: &Record) -> Result<(), BackupError> {
    let bytes = encode(record)?;
    let head = format!("${}\r\n", bytes.len());
    out.write_all(head.as_bytes())
        .await
        .map_err(io_error("sending"))?;
    out.write_all(&bytes).await.map_err(io_error("sending"))?;
    out.write_all(b"\r\n").await.map_err(io_error("sending"))
}

/// Checks a backup's records in order, as they arrive or are read.
#[derive(Debug, Default)]
struct Checker {
    seqno: Option<Seqno>,
    time: ClusterTime,
    digest: crate::transfer::RowDigest,
    ended: bool,
}

impl Checker {
    /// Checks `record`, the next one.
    fn next(&mut self, record: &Record) -> Result<(), BackupError> {
        let corrupt = |what: &str| Err(BackupError::Corrupt(what.to_string()));
        if self.ended {
            return corrupt("records after the trailer");
        }
        match (record, self.seqno) {
            (
                Record::Header {
                    format,
                    seqno,
                    time,
                },
                None,
            ) => {
                if *format != FORMAT {
                    return Err(BackupError::Corrupt(format!(
                        "format {format}, this build reads {FORMAT}"
                    )));
                }
                self.seqno = Some(Seqno::new(*seqno));
                self.time = *time;
                Ok(())
            }
            (Record::Header { .. }, Some(_)) => corrupt("a second header"),
            (_, None) => corrupt("no header first"),
            (Record::Rows { entries }, Some(_)) => {
                self.digest.add(entries);
                Ok(())
            }
            (Record::End { keys, crc32 }, Some(_)) => {
                if self.digest.finish() != (*keys, *crc32) {
                    return Err(BackupError::Corrupt(format!(
                        "rows (count, crc32) {:?}, the trailer says {:?}",
                        self.digest.finish(),
                        (keys, crc32)
                    )));
                }
                self.ended = true;
                Ok(())
            }
        }
    }

    /// The summary of a whole backup of `bytes` bytes.
    fn finish(&self, bytes: u64) -> Result<BackupSummary, BackupError> {
        match (self.seqno, self.ended) {
            (Some(seqno), true) => Ok(BackupSummary {
                seqno,
                time: self.time,
                keys: self.digest.finish().0,
                bytes,
            }),
            _ => Err(BackupError::Corrupt("it ends before its trailer".into())),
        }
    }
}

/// Takes a backup from the node whose Redis port is `addr` (plain TCP),
/// authenticating as `auth` (user, password) if given, into `path`.
///
/// # Errors
/// [`BackupError`]; no file is left at `path` then.
pub async fn fetch(
    addr: &str,
    auth: Option<(&str, &str)>,
    path: &Path,
) -> Result<BackupSummary, BackupError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(io_error(format!("connecting to {addr}")))?;
    let mut stream = BufReader::new(stream);
    if let Some((user, password)) = auth {
        command(&mut stream, &["AUTH", user, password]).await?;
        expect_status(&mut stream, "OK").await?;
    }
    command(&mut stream, &["CERTUS", "BACKUP"]).await?;
    expect_status(&mut stream, "BACKUP").await?;
    let tmp = path.with_extension("tmp");
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(io_error(format!("creating {}", tmp.display())))?;
    let received = receive(&mut stream, &mut file).await;
    let finished = match received {
        Ok(summary) => finish_file(file, &tmp, path).await.map(|()| summary),
        Err(err) => Err(err),
    };
    if finished.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    finished
}

/// Reads the records until the null bulk, checking and writing each.
async fn receive<R, W>(input: &mut R, file: &mut W) -> Result<BackupSummary, BackupError>
where
    R: AsyncBufReadExt + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut checker = Checker::default();
    let mut bytes = 0u64;
    while let Some(record) = read_bulk(input).await? {
        checker.next(&decode(&record)?)?;
        file.write_all(&record)
            .await
            .map_err(io_error("writing the file"))?;
        bytes += record.len() as u64;
    }
    checker.finish(bytes)
}

async fn finish_file(
    mut file: tokio::fs::File,
    tmp: &Path,
    path: &Path,
) -> Result<(), BackupError> {
    file.flush().await.map_err(io_error("writing the file"))?;
    file.sync_all()
        .await
        .map_err(io_error("syncing the file"))?;
    drop(file);
    tokio::fs::rename(tmp, path)
        .await
        .map_err(io_error(format!("renaming to {}", path.display())))
}

async fn command<W: AsyncWrite + Unpin>(out: &mut W, args: &[&str]) -> Result<(), BackupError> {
    let mut bytes = format!("*{}\r\n", args.len());
    for arg in args {
        bytes.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out.write_all(bytes.as_bytes())
        .await
        .map_err(io_error("sending"))?;
    out.flush().await.map_err(io_error("sending"))
}

/// One reply line, without its CRLF (at most 64 KiB).
async fn read_line<R: AsyncBufReadExt + Unpin>(input: &mut R) -> Result<String, BackupError> {
    let mut line = Vec::new();
    let mut limited = input.take(64 << 10);
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_error("receiving"))?;
    if !line.ends_with(b"\r\n") {
        return Err(BackupError::Corrupt(
            "the connection ended mid-reply".into(),
        ));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| BackupError::Corrupt("a reply line is not UTF-8".into()))
}

async fn expect_status<R: AsyncBufReadExt + Unpin>(
    input: &mut R,
    want: &str,
) -> Result<(), BackupError> {
    let line = read_line(input).await?;
    match line.strip_prefix('+') {
        Some(status) if status == want => Ok(()),
        _ => Err(BackupError::Refused(
            line.trim_start_matches('-').to_string(),
        )),
    }
}

/// The next bulk string; `None` at the null bulk that ends the stream.
async fn read_bulk<R: AsyncBufReadExt + Unpin>(
    input: &mut R,
) -> Result<Option<Bytes>, BackupError> {
    let line = read_line(input).await?;
    if line == "$-1" {
        return Ok(None);
    }
    let len = line
        .strip_prefix('$')
        .and_then(|len| len.parse::<usize>().ok())
        .filter(|&len| len <= MAX_RECORD + HEADER_LEN)
        .ok_or_else(|| BackupError::Refused(line.trim_start_matches('-').to_string()))?;
    let mut body = BytesMut::zeroed(len + 2);
    input
        .read_exact(&mut body)
        .await
        .map_err(io_error("receiving"))?;
    if !body.ends_with(b"\r\n") {
        return Err(BackupError::Corrupt(
            "a bulk string without its CRLF".into(),
        ));
    }
    body.truncate(len);
    Ok(Some(body.freeze()))
}

/// Seeds the node `config` describes from the backup at `path`: checks the
/// whole file first, then writes its rows into the node's engine as the
/// state before its first position. The data directory must hold no node
/// yet.
///
/// # Errors
/// [`BackupError`]; a restore that fails part-way leaves the engine marked
/// incomplete, which the node wipes when it next opens.
pub fn restore(config: &DaemonConfig, path: &Path) -> Result<BackupSummary, BackupError> {
    let summary = read_file(path, |_| Ok(()))?;
    if config.data_dir.exists()
        && std::fs::read_dir(&config.data_dir)
            .map_err(io_error(format!("reading {}", config.data_dir.display())))?
            .next()
            .is_some()
    {
        return Err(BackupError::NotEmpty(config.data_dir.clone()));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io_error(format!("creating {}", config.data_dir.display())))?;
    let engine = super::daemon::open_engine(config).map_err(Box::new)?;
    let mvcc = Arc::new(MvccStore::new(engine, 1));
    mvcc.begin_import()?;
    read_file(path, |entries| Ok(mvcc.import(Seqno::ZERO, entries)?))?;
    // The new cluster's time goes on from the backup's, so a row's
    // deadline means what it meant when the backup was taken.
    let fresh =
        Certifier::starting_at(config.store_config().node.cert, summary.time).checkpoint()?;
    mvcc.finish_import(&fresh)?;
    tracing::info!(seqno = %summary.seqno, keys = summary.keys, "restored");
    Ok(summary)
}

/// Reads and checks the backup at `path`, handing each chunk's rows to
/// `rows`.
fn read_file(
    path: &Path,
    mut rows: impl FnMut(&[(Bytes, Bytes)]) -> Result<(), BackupError>,
) -> Result<BackupSummary, BackupError> {
    use std::io::Read;
    let what = format!("reading {}", path.display());
    let file = std::fs::File::open(path).map_err(io_error(what.clone()))?;
    let mut input = io::BufReader::new(file);
    let mut checker = Checker::default();
    let mut bytes = 0u64;
    loop {
        let mut header = [0u8; HEADER_LEN];
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(io_error(what)(err)),
        }
        let parsed = frame::peek_header(&header, MAX_RECORD)?
            .ok_or_else(|| BackupError::Corrupt("a short record header".into()))?;
        let mut record = vec![0u8; parsed.frame_len()];
        record[..HEADER_LEN].copy_from_slice(&header);
        input
            .read_exact(&mut record[HEADER_LEN..])
            .map_err(io_error(what.clone()))?;
        let decoded = decode(&record)?;
        checker.next(&decoded)?;
        if let Record::Rows { entries } = &decoded {
            rows(entries)?;
        }
        bytes += record.len() as u64;
    }
    checker.finish(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u8) -> Record {
        Record::Rows {
            entries: vec![(Bytes::from(vec![n]), Bytes::from_static(b"v"))],
        }
    }

    #[test]
    fn the_checker_wants_a_header_first_and_a_matching_trailer_last() {
        let header = Record::Header {
            format: FORMAT,
            seqno: 9,
            time: ClusterTime::ZERO,
        };
        let mut digest = crate::transfer::RowDigest::default();
        for n in 0..2 {
            if let Record::Rows { entries } = rows(n) {
                digest.add(&entries);
            }
        }
        let (keys, crc32) = digest.finish();
        let mut good = Checker::default();
        for record in [
            header.clone(),
            rows(0),
            rows(1),
            Record::End { keys, crc32 },
        ] {
            good.next(&record).unwrap();
        }
        assert_eq!(good.finish(10).unwrap().keys, 2);

        let mut headless = Checker::default();
        assert!(headless.next(&rows(0)).is_err());
        let mut cut = Checker::default();
        cut.next(&header).unwrap();
        cut.next(&rows(0)).unwrap();
        assert!(cut.finish(10).is_err(), "a file without its trailer");
        let mut altered = Checker::default();
        altered.next(&header).unwrap();
        altered.next(&rows(0)).unwrap();
        altered.next(&rows(7)).unwrap();
        assert!(altered.next(&Record::End { keys, crc32 }).is_err());
    }
}
