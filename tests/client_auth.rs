//! Client authentication and permissions over real sockets: `requirepass`,
//! ACL users with Redis's replies, what an unauthenticated client may send,
//! and what a user who is not an administrator may not run.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::resp::RespCluster;
use redis::{Connection, Value, cmd};

/// Sends `request` on a fresh connection, then reads until the server
/// closes it or `replies` complete lines arrived.
fn exchange(addr: std::net::SocketAddr, request: &[u8], lines: usize) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.iter().filter(|b| **b == b'\n').count() < lines {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => answer.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn connect(cluster: &RespCluster, user: &str, password: &str) -> Connection {
    let url = format!("redis://{user}:{password}@{}/", cluster.client_addr(0));
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn error(con: &mut Connection, args: &[&str]) -> String {
    let mut command = cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    match command.query::<Value>(con) {
        Err(err) => err.to_string(),
        Ok(value) => panic!("{args:?} succeeded with {value:?}"),
    }
}

#[test]
fn a_password_keeps_out_everyone_who_does_not_give_it() {
    let cluster = RespCluster::start_with(1, |config| {
        config.requirepass = Some("s3cret".into());
    });
    let addr = cluster.client_addr(0);
    let answer = exchange(
        addr,
        b"GET k\r\nNOSUCH\r\nHELLO 3\r\nAUTH wrong\r\nAUTH nobody s3cret\r\n\
          AUTH s3cret\r\nSET k v\r\nGET k\r\n",
        9,
    );
    assert_eq!(
        answer,
        "-NOAUTH Authentication required.\r\n\
         -ERR unknown command 'NOSUCH', with args beginning with: \r\n\
         -NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
         select the RESP protocol version at the same time\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         +OK\r\n+OK\r\n$1\r\nv\r\n"
    );
    // HELLO authenticates and switches protocol at once; RESET forgets.
    let answer = exchange(
        addr,
        b"HELLO 2 AUTH default s3cret\r\nRESET\r\nGET k\r\n",
        28,
    );
    assert!(answer.starts_with("*14\r\n$6\r\nserver\r\n"), "{answer}");
    assert!(
        answer.ends_with("+RESET\r\n-NOAUTH Authentication required.\r\n"),
        "{answer}"
    );
    // Before AUTH, nothing big is read: Redis's bounds for such clients.
    let big = format!("*2\r\n$3\r\nGET\r\n$20000\r\n{}\r\n", "x".repeat(20_000));
    let answer = exchange(addr, big.as_bytes(), 1);
    assert_eq!(
        answer,
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    let answer = exchange(addr, b"*11\r\n", 1);
    assert_eq!(
        answer,
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    // A client that knows the password works as ever.
    let mut con = connect(&cluster, "default", "s3cret");
    let value: String = cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "v");
    cluster.shutdown();
}

/// One node with an administrator, an application user (everything but
/// administration), a reader, and the default user switched off.
fn users_cluster() -> RespCluster {
    RespCluster::start_with(1, |config| {
        config.users = vec![
            "user admin on >admin-password ~* &* +@all".into(),
            // As an operator writes it: the password's SHA-256 only.
            format!(
                "user app on #{} ~* &* +@all -@admin -@dangerous",
                sha256_hex("app-password")
            ),
            "user reader on >reader-password ~* &* -@all +@read +@connection +@transaction -@dangerous".into(),
            "user scripter on >scripter-password ~* &* -@all +@read +@scripting".into(),
            "user default off".into(),
        ];
    })
}

#[test]
fn users_run_only_what_their_rules_allow() {
    let cluster = users_cluster();
    let addr = cluster.client_addr(0);
    let answer = exchange(addr, b"AUTH app wrong\r\nAUTH app app-password\r\n", 2);
    assert_eq!(
        answer,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n"
    );
    let mut app = connect(&cluster, "app", "app-password");
    let _: () = cmd("SET").arg("a").arg("1").query(&mut app).unwrap();
    let refused = error(&mut app, &["FLUSHALL"]);
    assert!(
        refused.ends_with("User app has no permissions to run the 'flushall' command"),
        "{refused}"
    );
    let answer = exchange(addr, b"AUTH default anything\r\nPING\r\n", 2);
    assert!(
        answer.starts_with("-WRONGPASS")
            && answer.ends_with("-NOAUTH Authentication required.\r\n"),
        "the default user is off: {answer}"
    );

    let mut admin = connect(&cluster, "admin", "admin-password");
    let mut reader = connect(&cluster, "reader", "reader-password");
    let _: () = cmd("SET").arg("k").arg("1").query(&mut admin).unwrap();
    let value: String = cmd("GET").arg("k").query(&mut reader).unwrap();
    assert_eq!(value, "1");
    let refused = error(&mut reader, &["SET", "k", "2"]);
    assert!(
        refused.ends_with("User reader has no permissions to run the 'set' command"),
        "{refused}"
    );
    for (args, name) in [
        (&["FLUSHALL"][..], "flushall"),
        (&["CONFIG", "SET", "maxclients", "5"][..], "config|set"),
        (&["CERTUS", "LEAVE"][..], "certus|leave"),
        (&["CERTUS", "FORGET", "2"][..], "certus|forget"),
        (&["KEYS", "*"][..], "keys"),
    ] {
        let text = error(&mut reader, args);
        let expected = format!("User reader has no permissions to run the '{name}' command");
        assert!(text.ends_with(&expected), "{text}");
    }
    // Scripts: the application user may run them (it may run every data
    // command a script can call); a user who may not run every data
    // command may not, whatever the script.
    let script = "return redis.call('GET', KEYS[1])";
    let value: String = cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("k")
        .query(&mut app)
        .unwrap();
    assert_eq!(value, "1");
    let mut scripter = connect(&cluster, "scripter", "scripter-password");
    let text = error(&mut scripter, &["EVAL", script, "1", "k"]);
    assert!(text.contains("User scripter may not run scripts"), "{text}");
    // Inside MULTI, a refused command aborts the transaction.
    let answer = exchange(
        addr,
        b"AUTH reader reader-password\r\nMULTI\r\nGET k\r\nDEL k\r\nEXEC\r\nGET k\r\n",
        7,
    );
    assert!(
        answer.contains("-NOPERM User reader has no permissions to run the 'del' command"),
        "{answer}"
    );
    assert!(answer.contains("-EXECABORT"), "{answer}");
    assert!(answer.ends_with("$1\r\n1\r\n"), "{answer}");

    let _: () = cmd("FLUSHALL").query(&mut admin).unwrap();
    cluster.shutdown();
}

#[test]
fn acl_shows_the_configured_users_and_changes_none() {
    let cluster = users_cluster();
    let mut admin = connect(&cluster, "admin", "admin-password");
    let _reader = connect(&cluster, "reader", "reader-password");
    let whoami: String = cmd("ACL").arg("WHOAMI").query(&mut admin).unwrap();
    assert_eq!(whoami, "admin");
    let users: Vec<String> = cmd("ACL").arg("USERS").query(&mut admin).unwrap();
    assert_eq!(users, ["admin", "app", "default", "reader", "scripter"]);
    let list: Vec<String> = cmd("ACL").arg("LIST").query(&mut admin).unwrap();
    assert_eq!(
        list[3],
        format!(
            "user reader on #{} ~* &* -@all +@read +@connection +@transaction -@dangerous",
            sha256_hex("reader-password")
        )
    );
    assert!(!list.iter().any(|l| l.contains("password")), "{list:?}");
    let refused = error(&mut admin, &["ACL", "SETUSER", "eve", "on", "+@all"]);
    assert!(
        refused.contains("defined in the configuration file"),
        "{refused}"
    );
    let clients: String = cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(clients.contains("user=reader"), "{clients}");
    cluster.shutdown();
}

fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}
