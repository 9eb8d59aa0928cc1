//! `CONFIG GET` and `CONFIG SET`: the Redis configuration parameters
//! clients and tools probe, answered from how this node actually runs.
//! None can change at run time (certusd reads its settings at start), so
//! `CONFIG SET` of a known parameter says so.

use super::glob;
use super::resp::Reply;

/// What the parameters report about this server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerFacts {
    pub(crate) bind: String,
    pub(crate) port: u16,
    pub(crate) dir: String,
    pub(crate) max_clients: usize,
    /// Whether each commit is fsynced before it is acknowledged.
    pub(crate) fsync_always: bool,
    pub(crate) max_bulk: usize,
}

impl ServerFacts {
    /// Every parameter and its value, sorted by name.
    fn parameters(&self) -> Vec<(&'static str, String)> {
        let fsync = if self.fsync_always {
            "always"
        } else {
            "everysec"
        };
        let mut all = vec![
            ("activedefrag", "no".into()),
            // The ordering log is an append-only file, fsynced as `appendfsync`
            // says, and there are no RDB snapshots.
            ("appendfsync", fsync.into()),
            ("appendonly", "yes".into()),
            ("bind", self.bind.clone()),
            (
                "client-output-buffer-limit",
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".into(),
            ),
            ("cluster-enabled", "no".into()),
            ("daemonize", "no".into()),
            ("databases", "1".into()),
            ("dir", self.dir.clone()),
            ("hz", "10".into()),
            ("io-threads", "1".into()),
            ("lazyfree-lazy-user-flush", "no".into()),
            ("logfile", String::new()),
            ("loglevel", "notice".into()),
            ("busy-reply-threshold", "5000".into()),
            ("lua-time-limit", "5000".into()),
            ("maxclients", self.max_clients.to_string()),
            ("maxmemory", "0".into()),
            ("maxmemory-policy", "noeviction".into()),
            ("notify-keyspace-events", String::new()),
            ("port", self.port.to_string()),
            ("protected-mode", "no".into()),
            ("proto-max-bulk-len", self.max_bulk.to_string()),
            ("replica-read-only", "yes".into()),
            ("requirepass", String::new()),
            ("save", String::new()),
            ("supervised", "no".into()),
            ("tcp-keepalive", "0".into()),
            ("timeout", "0".into()),
        ];
        all.sort_by_key(|(name, _)| *name);
        all
    }

    /// `CONFIG GET pattern [pattern ...]`: every parameter a pattern
    /// matches (case ignored), once.
    pub(crate) fn get(&self, patterns: &[bytes::Bytes]) -> Reply {
        let pairs = self
            .parameters()
            .into_iter()
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|p| glob::matches_nocase(p, name.as_bytes()))
            })
            .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
            .collect();
        Reply::Map(pairs)
    }

    /// `CONFIG SET name value [name value ...]`.
    pub(crate) fn set(&self, args: &[bytes::Bytes]) -> Reply {
        if args.is_empty() || !args.len().is_multiple_of(2) {
            return Reply::err("wrong number of arguments for 'config|set' command");
        }
        let known = self.parameters();
        for pair in args.chunks_exact(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            if !known.iter().any(|(known, _)| *known == name) {
                return Reply::err(format_args!(
                    "Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            }
        }
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        Reply::err(format_args!(
            "CONFIG SET failed (possibly related to argument '{name}') - can't set immutable \
             config: certusd reads its settings from its configuration file at start"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ServerFacts {
        ServerFacts {
            bind: "127.0.0.1".into(),
            port: 6380,
            dir: "/data".into(),
            max_clients: 10_000,
            fsync_always: true,
            max_bulk: 32 << 20,
        }
    }

    #[test]
    fn config_get_matches_patterns_and_reports_the_truth() {
        let Reply::Map(pairs) = facts().get(&["SAVE".into(), "append*".into()]) else {
            panic!("a map");
        };
        let names: Vec<_> = pairs.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            names,
            [
                Reply::bulk("appendfsync"),
                Reply::bulk("appendonly"),
                Reply::bulk("save")
            ]
        );
        assert_eq!(pairs[1].1, Reply::bulk("yes"));
        let Reply::Map(none) = facts().get(&["nothing*".into()]) else {
            panic!("a map");
        };
        assert!(none.is_empty());
    }

    #[test]
    fn config_set_refuses_clearly() {
        let err = |args: &[&str]| match facts().set(
            &args
                .iter()
                .map(|a| a.to_string().into())
                .collect::<Vec<_>>(),
        ) {
            Reply::Error(text) => text,
            other => panic!("{other:?}"),
        };
        assert!(err(&["maxmemory", "1gb"]).contains("can't set immutable config"));
        assert!(err(&["nosuch", "1"]).starts_with("ERR Unknown option"));
        assert!(err(&["maxmemory"]).contains("wrong number of arguments"));
    }
}
