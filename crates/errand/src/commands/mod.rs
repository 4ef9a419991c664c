//! Client commands: each talks to a server over the API.

pub mod dead;
pub mod definitions;
pub mod enqueue;
pub mod enqueue_file;
pub mod events;
pub mod generate;
pub mod jobs;
pub mod ordering;
pub mod progress;
pub mod queues;
pub mod schedules;
pub mod status;
pub mod subscriptions;
pub mod tokens;
pub mod transfer;
pub mod transfer_config;
pub mod worker;
pub mod workflows;
