//! Gyri's persistence and account rules, shared by the server and the worker.
//!
//! Every tenant-owned query runs inside a transaction opened by [`Db::begin`]
//! with a [`Scope`]; the scope is also handed to PostgreSQL
//! (`app.practice_id` / `app.platform`) so that row-level security checks
//! every row a second time. Operations that act on behalf of a signed-in user
//! take an [`Actor`] and check its role before touching anything.

pub mod actor;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod db;
pub mod error;
pub mod ids;
pub mod invitations;
pub mod jobs;
pub mod model;
pub mod objects;
pub mod practices;
pub mod seed;
pub mod studies;
pub mod uploads;
pub mod users;

pub use actor::{Actor, Credential};
pub use db::{Db, Scope};
pub use error::{StoreError, StoreResult};
pub use ids::{PracticeId, UserId};
pub use model::{PracticeStatus, Programme, Role, SequenceClass, StudyStatus, UserStatus};
