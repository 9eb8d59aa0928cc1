//! Who the session is and what it may run: `AUTH`, the checks every
//! command passes before it runs (Redis's `NOAUTH` and `NOPERM`), and
//! `ACL`.

use std::sync::Arc;

use bytes::Bytes;

use super::Session;
use crate::server::acl::{CATEGORIES, User};
use crate::server::commands::{self, COMMANDS, Class, lower, syntax_error};
use crate::server::resp::{Command, Reply};

fn is_script(fullname: &str) -> bool {
    matches!(fullname, "eval" | "evalsha" | "eval_ro" | "evalsha_ro")
}

/// Whether `user` may run every data command, which a script may call:
/// every node runs a script's commands without the caller's rules.
fn may_script(user: &User) -> bool {
    COMMANDS
        .iter()
        .filter(|spec| matches!(spec.class(), Class::Read | Class::Write))
        .all(|spec| user.may_run(spec.name, spec.categories))
}

/// Redis's reply to a failed `AUTH` or `HELLO ... AUTH`.
pub(super) fn wrongpass() -> Reply {
    Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
}

/// The categories of `CERTUS` subcommands, which Redis's table lacks:
/// changing the membership or copying every row is an administrator's act.
fn certus_categories(sub: &str) -> &'static [&'static str] {
    match sub {
        "leave" | "forget" | "backup" => &["@admin", "@slow", "@dangerous"],
        _ => &["@slow"],
    }
}

impl Session {
    /// Whether this session has authenticated (or needs not).
    pub(crate) fn authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// The user a fresh (or `RESET`) connection runs as: the default user
    /// when it needs no password, else nobody until `AUTH`.
    pub(super) fn initial_user(&self) -> Option<Arc<User>> {
        let acl = &self.settings.acl;
        (!acl.auth_required()).then(|| acl.default_user())
    }

    /// Switches to `user`, as `CLIENT LIST` shows.
    pub(super) fn become_user(&mut self, user: Option<Arc<User>>) {
        let name = user
            .as_ref()
            .map_or("default".to_string(), |u| u.name.clone());
        self.settings.clients.update(self.id, |c| c.user = name);
        self.user = user;
    }

    /// Whether `argv` may run now: `NOAUTH` before authentication (except
    /// for commands Redis flags `no_auth`), `NOPERM` for a command the user
    /// may not run. Unknown commands and bad arities pass, to be answered
    /// as such, as Redis checks those first.
    pub(super) fn permit(&self, argv: &Command) -> Result<(), Reply> {
        if self.user.as_ref().is_some_and(|user| user.unrestricted()) {
            return Ok(());
        }
        let Some(name) = argv.first().map(|n| lower(n)) else {
            return Ok(());
        };
        let (fullname, flags, categories) = if name == "certus" {
            let sub = argv.get(1).map(|s| lower(s)).unwrap_or_default();
            let categories = certus_categories(&sub);
            (format!("certus|{sub}"), &[][..], categories)
        } else {
            let Some(spec) = commands::lookup(&name) else {
                return Ok(());
            };
            if !spec.accepts(argv.len()) {
                return Ok(());
            }
            let sub = argv
                .get(1)
                .and_then(|sub| commands::lookup(&format!("{name}|{}", lower(sub))));
            let spec = sub.unwrap_or(spec);
            (spec.name.to_string(), spec.flags, spec.categories)
        };
        match &self.user {
            None if flags.contains(&"no_auth") => Ok(()),
            None => Err(Reply::Error("NOAUTH Authentication required.".into())),
            Some(user) if !user.may_run(&fullname, categories) => Err(Reply::Error(format!(
                "NOPERM User {} has no permissions to run the '{fullname}' command",
                user.name
            ))),
            Some(user) if is_script(&fullname) && !may_script(user) => Err(Reply::Error(format!(
                "NOPERM User {} may not run scripts: the commands inside a script are not \
                 checked against the user's rules, so only a user who may run every data \
                 command may run one",
                user.name
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Authenticates as `user` with `password`; whether it worked.
    pub(super) fn login(&mut self, user: &[u8], password: &[u8]) -> bool {
        match self.settings.acl.authenticate(user, password) {
            Some(user) => {
                self.become_user(Some(user));
                true
            }
            None => false,
        }
    }

    /// `AUTH [username] password`.
    pub(super) fn auth(&mut self, argv: &Command) -> Reply {
        let (user, password) = match argv.len() {
            2 if self.settings.acl.default_is_nopass() => {
                return Reply::err(
                    "AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                );
            }
            2 => (&b"default"[..], &argv[1]),
            3 => (&argv[1][..], &argv[2]),
            _ => return syntax_error(),
        };
        if self.login(user, password) {
            Reply::ok()
        } else {
            wrongpass()
        }
    }

    /// `ACL WHOAMI | USERS | LIST | CAT [category] | GETUSER name`; users
    /// live in the configuration file, so the commands that change them
    /// are refused.
    pub(super) fn acl(&self, sub: &str, argv: &Command) -> Reply {
        let acl = &self.settings.acl;
        match sub {
            "whoami" => Reply::bulk(
                self.user
                    .as_ref()
                    .map_or("default", |u| u.name.as_str())
                    .to_string(),
            ),
            "users" => Reply::Array(Some(
                acl.users().map(|u| Reply::bulk(u.name.clone())).collect(),
            )),
            "list" => Reply::Array(Some(
                acl.users().map(|u| Reply::bulk(u.describe())).collect(),
            )),
            "cat" => category(argv.get(2)),
            "getuser" => match acl.user(&argv[2]) {
                Some(user) => getuser(&user),
                None => Reply::Bulk(None),
            },
            _ => Reply::err(format_args!(
                "ACL {} is not supported: users are defined in the configuration file \
                 (requirepass, users) and change only with it",
                sub.to_ascii_uppercase()
            )),
        }
    }
}

/// `ACL CAT`: every category, or the commands in one.
fn category(name: Option<&Bytes>) -> Reply {
    let Some(name) = name else {
        return Reply::Array(Some(CATEGORIES.iter().map(|c| Reply::bulk(*c)).collect()));
    };
    let name = lower(name);
    if !CATEGORIES.contains(&name.as_str()) {
        return Reply::err(format_args!("Unknown category '{name}'"));
    }
    let tag = format!("@{name}");
    let names = COMMANDS
        .iter()
        .filter(|spec| spec.categories.contains(&tag.as_str()))
        .map(|spec| Reply::bulk(spec.name));
    Reply::Array(Some(names.collect()))
}

/// `ACL GETUSER`'s map, as Redis 7.2 shapes it.
fn getuser(user: &User) -> Reply {
    let flags = user.flags().into_iter().map(Reply::bulk).collect();
    let passwords = user
        .password_hashes()
        .into_iter()
        .map(Reply::bulk)
        .collect();
    Reply::Map(vec![
        (Reply::bulk("flags"), Reply::Array(Some(flags))),
        (Reply::bulk("passwords"), Reply::Array(Some(passwords))),
        (Reply::bulk("commands"), Reply::bulk(user.command_rules())),
        (Reply::bulk("keys"), Reply::bulk("~*")),
        (Reply::bulk("channels"), Reply::bulk("&*")),
        (Reply::bulk("selectors"), Reply::Array(Some(Vec::new()))),
    ])
}
