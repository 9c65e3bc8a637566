//! Integration tests: the real application on port 0, a fresh PostgreSQL
//! database per test, the S3 protocol against the embedded endpoint, HTTP
//! from the outside.

mod helpers;

mod accounts;
mod authorization;
mod crash;
mod embedded;
mod health;
mod isolation;
mod pipeline;
mod session;
mod uploads;
