//! Client users and what each may run: Redis's ACL model at the
//! granularity of commands and categories, with users defined in the
//! configuration file in Redis's ACL file syntax.
//!
//! ```toml
//! requirepass = "s3cret"            # the default user's password
//! users = [
//!   "user admin on #<sha256 of the password, hex> ~* &* +@all",
//!   "user app on >plain-password ~* &* +@all -@admin -@dangerous",
//! ]
//! ```
//!
//! Rules apply left to right, the last that names a command deciding:
//! `+@all`/`allcommands`, `-@all`/`nocommands`, `+@<category>`,
//! `-@<category>`, `+<command>`, `-<command>` (a container such as
//! `config` covers its subcommands; `config|set` names one). A password is
//! kept only as its SHA-256 (`>password` is hashed when the file is read;
//! `#hash` gives the hash itself), and compared in constant time. Every
//! user may touch every key: key patterns other than `~*` are refused
//! rather than silently ignored. Without `requirepass` or a `default` user
//! the default user needs no password and may run everything, as in Redis.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Redis's command categories (`ACL CAT`).
pub(crate) const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A user definition that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    /// A `users` entry is malformed.
    #[error("users: {line:?}: {reason}")]
    Rule {
        /// The entry.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `requirepass` and a `default` user in `users` both.
    #[error("requirepass cannot be combined with a \"user default ...\" entry in users")]
    DefaultTwice,
}

/// What a rule grants or takes away.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    All,
    Category(String),
    Command(String),
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    enabled: bool,
    nopass: bool,
    /// SHA-256 of each password.
    passwords: Vec<[u8; 32]>,
    /// In order; `true` grants.
    rules: Vec<(bool, Target)>,
}

/// Every user of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acl {
    users: BTreeMap<String, Arc<User>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl User {
    fn new(name: &str) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Redis's default user when nothing is configured: on, no password,
    /// every command.
    fn open_default() -> Self {
        User {
            enabled: true,
            nopass: true,
            rules: vec![(true, Target::All)],
            ..User::new("default")
        }
    }

    /// Applies one rule of Redis's ACL syntax.
    fn apply(&mut self, rule: &str) -> Result<(), String> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allcommands" | "+@all" => self.rules = vec![(true, Target::All)],
            "nocommands" | "-@all" => self.rules.clear(),
            "~*" | "allkeys" | "%r~*" | "%w~*" | "%rw~*" | "&*" | "allchannels"
            | "resetchannels" => {}
            "reset" => *self = User::new(&self.name),
            _ => return self.apply_valued(rule, &lower),
        }
        Ok(())
    }

    fn apply_valued(&mut self, rule: &str, lower: &str) -> Result<(), String> {
        let (first, rest) = rule.split_at(1);
        match first {
            ">" => {
                self.nopass = false;
                self.passwords.push(sha256(rest.as_bytes()));
            }
            "<" => {
                let hash = sha256(rest.as_bytes());
                self.passwords.retain(|p| *p != hash);
            }
            "#" => {
                let hash = parse_hash(rest)
                    .ok_or("a #hash must be 64 hex digits: the SHA-256 of the password")?;
                self.nopass = false;
                self.passwords.push(hash);
            }
            "!" => {
                let hash = parse_hash(rest).ok_or("a !hash must be 64 hex digits")?;
                self.passwords.retain(|p| *p != hash);
            }
            "+" | "-" => {
                let allow = first == "+";
                let target = match lower[1..].strip_prefix('@') {
                    Some(category) if CATEGORIES.contains(&category) => {
                        Target::Category(category.to_string())
                    }
                    Some(category) => return Err(format!("unknown category '{category}'")),
                    None if lower.len() > 1 => Target::Command(lower[1..].to_string()),
                    None => return Err("a command name must follow + or -".into()),
                };
                self.rules.push((allow, target));
            }
            "~" | "%" => {
                return Err(
                    "key patterns other than ~* are not supported: every user may access every key"
                        .into(),
                );
            }
            "&" => return Err("channel patterns other than &* are not supported".into()),
            _ => return Err(format!("unknown rule '{rule}'")),
        }
        Ok(())
    }

    /// Whether this user may run the command named `fullname` (a
    /// subcommand as `container|sub`) in `categories` (`@read`, ...).
    pub(crate) fn may_run(&self, fullname: &str, categories: &[&str]) -> bool {
        let container = fullname.split('|').next().unwrap_or(fullname);
        let mut allowed = false;
        for (allow, target) in &self.rules {
            let applies = match target {
                Target::All => true,
                Target::Category(c) => categories
                    .iter()
                    .any(|have| have.strip_prefix('@') == Some(c.as_str())),
                Target::Command(name) => name == fullname || name == container,
            };
            if applies {
                allowed = *allow;
            }
        }
        allowed
    }

    /// Whether this user may run every command (`+@all` and nothing
    /// after it), so no command needs looking up to be allowed.
    pub(crate) fn unrestricted(&self) -> bool {
        matches!(self.rules.as_slice(), [(true, Target::All)])
    }

    /// Whether `password` opens this user.
    fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = sha256(password);
        let mut found = false;
        for stored in &self.passwords {
            found |= aws_lc_rs::constant_time::verify_slices_are_equal(stored, &hash).is_ok();
        }
        found
    }

    /// The user as `ACL LIST` shows it.
    pub(crate) fn describe(&self) -> String {
        let mut line = format!(
            "user {} {}",
            self.name,
            if self.enabled { "on" } else { "off" }
        );
        if self.nopass {
            line.push_str(" nopass");
        }
        for password in &self.passwords {
            let _ = write!(line, " #{}", hex(password));
        }
        line.push_str(" ~* &* ");
        line.push_str(&self.command_rules());
        line
    }

    /// The command rules as Redis writes them (`-@all` when none).
    pub(crate) fn command_rules(&self) -> String {
        let mut text = String::new();
        if !matches!(self.rules.first(), Some((true, Target::All))) {
            text.push_str("-@all");
        }
        for (allow, target) in &self.rules {
            let sign = if *allow { '+' } else { '-' };
            let name = match target {
                Target::All => "@all".to_string(),
                Target::Category(c) => format!("@{c}"),
                Target::Command(c) => c.clone(),
            };
            if !text.is_empty() {
                text.push(' ');
            }
            let _ = write!(text, "{sign}{name}");
        }
        text
    }

    /// `ACL GETUSER`'s flags.
    pub(crate) fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        flags
    }

    /// `ACL GETUSER`'s password hashes, in hex.
    pub(crate) fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(|p| hex(p)).collect()
    }
}

impl Default for Acl {
    /// Only the default user, open to everyone.
    fn default() -> Self {
        let default = User::open_default();
        Acl {
            users: BTreeMap::from([(default.name.clone(), Arc::new(default))]),
        }
    }
}

impl Acl {
    /// The users of a configuration: `requirepass` for the default user,
    /// and `lines` in Redis's ACL file syntax (`user <name> <rules>...`).
    ///
    /// # Errors
    /// [`AclError`] naming the entry and what is wrong with it.
    pub(crate) fn from_config(
        requirepass: Option<&str>,
        lines: &[String],
    ) -> Result<Self, AclError> {
        let mut acl = Acl::default();
        if let Some(password) = requirepass {
            let mut default = User::open_default();
            default
                .apply(&format!(">{password}"))
                .map_err(|reason| AclError::Rule {
                    line: "requirepass".into(),
                    reason,
                })?;
            acl.users.insert(default.name.clone(), Arc::new(default));
        }
        for line in lines {
            let error = |reason: String| AclError::Rule {
                line: line.clone(),
                reason,
            };
            let mut words = line.split_whitespace();
            let (Some("user"), Some(name)) = (words.next(), words.next()) else {
                return Err(error("expected: user <name> <rules>...".into()));
            };
            if name == "default" && requirepass.is_some() {
                return Err(AclError::DefaultTwice);
            }
            let mut user = User::new(name);
            for rule in words {
                user.apply(rule).map_err(error)?;
            }
            acl.users.insert(user.name.clone(), Arc::new(user));
        }
        Ok(acl)
    }

    /// The default user.
    pub(crate) fn default_user(&self) -> Arc<User> {
        self.users
            .get("default")
            .cloned()
            .unwrap_or_else(|| Arc::new(User::open_default()))
    }

    /// Whether a new connection must authenticate before anything else
    /// (Redis's `authRequired`): unless the default user is on and needs
    /// no password.
    pub(crate) fn auth_required(&self) -> bool {
        let default = self.default_user();
        !(default.enabled && default.nopass)
    }

    /// Whether the default user needs no password (`AUTH <password>` is
    /// then a configuration mistake, as Redis says).
    pub(crate) fn default_is_nopass(&self) -> bool {
        self.default_user().nopass
    }

    /// The user `name` if `password` opens it.
    pub(crate) fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        self.users
            .get(name)
            .filter(|user| user.accepts(password))
            .cloned()
    }

    /// User `name`, if it exists.
    pub(crate) fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        self.users.get(name).cloned()
    }

    /// Every user, by name.
    pub(crate) fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(requirepass: Option<&str>, lines: &[&str]) -> Result<Acl, AclError> {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        Acl::from_config(requirepass, &lines)
    }

    #[test]
    fn nothing_configured_is_redis_default_open_to_all() {
        let acl = acl(None, &[]).unwrap();
        assert!(!acl.auth_required());
        let default = acl.default_user();
        assert!(default.unrestricted());
        assert!(default.may_run("flushall", &["@write", "@dangerous"]));
        assert_eq!(default.describe(), "user default on nopass ~* &* +@all");
        assert!(acl.authenticate(b"default", b"anything").is_some());
    }

    #[test]
    fn requirepass_locks_the_default_user() {
        let acl = acl(Some("s3cret"), &[]).unwrap();
        assert!(acl.auth_required());
        assert!(!acl.default_is_nopass());
        assert!(acl.authenticate(b"default", b"s3cret").is_some());
        assert!(acl.authenticate(b"default", b"wrong").is_none());
        assert!(acl.authenticate(b"nobody", b"s3cret").is_none());
        let line = acl.default_user().describe();
        let hash = hex(&sha256(b"s3cret"));
        assert_eq!(line, format!("user default on #{hash} ~* &* +@all"));
    }

    #[test]
    fn rules_apply_in_order_by_category_and_command() {
        let hash = hex(&sha256(b"pw"));
        let acl = acl(
            None,
            &[
                &format!("user app on #{hash} ~* +@all -@admin -@dangerous +config|get"),
                "user reader on >r ~* +@read -keys",
                "user gone off >x +@all",
            ],
        )
        .unwrap();
        let app = acl.authenticate(b"app", b"pw").unwrap();
        assert!(!app.unrestricted());
        assert!(app.may_run("get", &["@read", "@string", "@fast"]));
        assert!(!app.may_run("flushall", &["@keyspace", "@write", "@slow", "@dangerous"]));
        assert!(!app.may_run("config|set", &["@admin", "@slow", "@dangerous"]));
        assert!(app.may_run("config|get", &["@admin", "@slow", "@dangerous"]));
        let reader = acl.authenticate(b"reader", b"r").unwrap();
        assert!(reader.may_run("get", &["@read"]));
        assert!(!reader.may_run("set", &["@write"]));
        assert!(!reader.may_run("keys", &["@keyspace", "@read", "@slow", "@dangerous"]));
        assert_eq!(reader.command_rules(), "-@all +@read -keys");
        assert!(
            acl.authenticate(b"gone", b"x").is_none(),
            "a user that is off"
        );
        let names: Vec<&str> = acl.users().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["app", "default", "gone", "reader"]);
    }

    #[test]
    fn unusable_definitions_are_named() {
        let err = acl(None, &["user x on ~cache:* +@all"]).unwrap_err();
        assert!(err.to_string().contains("key patterns"), "{err}");
        let err = acl(None, &["user x on +@nosuch"]).unwrap_err();
        assert!(
            err.to_string().contains("unknown category 'nosuch'"),
            "{err}"
        );
        let err = acl(None, &["alice on"]).unwrap_err();
        assert!(err.to_string().contains("expected: user <name>"), "{err}");
        let err = acl(None, &["user x #abc"]).unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        let err = acl(Some("p"), &["user default on nopass"]).unwrap_err();
        assert_eq!(err, AclError::DefaultTwice);
    }
}
