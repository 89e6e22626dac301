//! Narrow wrapper around OpenSSH: multiplexed sessions for the pipeline, fresh
//! non-multiplexed connections for confirmation, strict host-key checking.
