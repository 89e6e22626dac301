//! Derivations across hosts, one module per service family, each called once from
//! `resolve` after every host's own services are known.

pub mod k3s;
