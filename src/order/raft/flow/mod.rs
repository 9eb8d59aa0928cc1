//! Flow control, after Galera's: the rule that decides when a lagging node
//! asks the cluster to pause admission ([`rule`], pure) and the shell that
//! gives it a clock and wakes submitters ([`shell`]).

mod rule;
mod shell;

pub(crate) use rule::Request;
pub(crate) use shell::FlowControl;
