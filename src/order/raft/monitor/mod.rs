//! The heartbeat of the ordering layer: the rules that decide, from one
//! sample of raft's state, whether this node is in the primary component
//! and which learners may vote ([`rule`], pure), and the task that samples
//! raft and carries the decisions out ([`shell`]).

mod rule;
mod shell;

pub(crate) use shell::Monitor;
