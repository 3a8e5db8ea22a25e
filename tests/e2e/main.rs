//! End-to-end tests over HTTP against real processes and servers.
//! See `tests/lib.rs` for the bench.

mod accounts;
mod bad_input;
mod balancer;
mod bytes;
mod cli;
mod cluster;
mod config;
mod conformance;
mod crash;
mod dav;
mod declare;
mod durability;
mod faults;
mod files;
mod folders;
mod identity;
mod ingest;
mod keys;
mod merge;
mod migrations;
mod mtime;
mod openapi;
mod power;
mod restore;
mod rust_client;
mod server_hashed;
mod shares;
mod storage;
mod structure;
mod tus;
mod tus_clients;
mod uploads;
mod users;
mod versions;
