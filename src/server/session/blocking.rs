//! A blocking pop's wait on this node (see [`crate::server::blocking`]):
//! attempts ordered one after another, each after a key was filled, until
//! one pops, the timeout passes or the client hangs up.

use std::time::Duration;

use bytes::Bytes;

use super::Session;
use crate::server::commands::{self, lists, lower};
use crate::server::executor::BatchKind;
use crate::server::resp::{Command, Reply};

/// Where a blocking command's timeout argument is.
fn timeout_at(name: &str, argv: &[Bytes]) -> Option<usize> {
    match name {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => Some(argv.len() - 1),
        "blmove" => Some(5),
        "brpoplpush" => Some(3),
        "blmpop" | "bzmpop" => Some(1),
        _ => None,
    }
}

impl Session {
    /// Runs the blocking command `argv`: its reply once an attempt pops,
    /// or its nil reply at the timeout.
    pub(super) async fn block(&mut self, argv: Command) -> Reply {
        let name = lower(&argv[0]);
        let timeout = timeout_at(&name, &argv)
            .and_then(|at| argv.get(at))
            .map(|arg| lists::timeout(arg));
        let millis = match timeout {
            Some(Ok(millis)) => millis,
            // The attempt answers the error, as Redis does.
            _ => 0,
        };
        let deadline =
            (millis > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(millis));
        let keys = commands::lookup(&name)
            .map(|spec| spec.keys(&argv).cloned().collect())
            .unwrap_or_default();
        let registration = self.settings.waiters.register(keys);
        let nil = self.encoded(&nil_reply(&name));
        loop {
            let reply = match self
                .order(BatchKind::Pipeline(vec![argv.clone()]), None)
                .await
            {
                Ok(Some(mut replies)) if replies.len() == 1 => replies.remove(0),
                Ok(_) => return Reply::err("operation aborted"),
                Err(reply) => return reply,
            };
            if reply != nil || timeout.as_ref().is_none_or(Result::is_err) {
                return Reply::Raw(reply);
            }
            let hangup = self.hangup.clone();
            tokio::select! {
                () = registration.written() => {}
                () = sleep_until(deadline) => return nil_reply(&name),
                () = hung_up(hangup) => return nil_reply(&name),
            }
        }
    }

    fn encoded(&self, reply: &Reply) -> Bytes {
        reply.to_bytes(self.protocol)
    }
}

/// What a blocking command answers when nothing came in time.
fn nil_reply(name: &str) -> Reply {
    match name {
        "blmove" | "brpoplpush" => Reply::Bulk(None),
        _ => Reply::Array(None),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the client's connection has closed.
async fn hung_up(mut hangup: tokio::sync::watch::Receiver<bool>) {
    if hangup.wait_for(|gone| *gone).await.is_err() {
        // The connection task is gone and cannot say: wait for nothing.
        std::future::pending::<()>().await;
    }
}
