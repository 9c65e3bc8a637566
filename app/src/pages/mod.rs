//! One module per page.

pub mod account;
pub mod audit;
pub mod home;
pub mod invite;
pub mod practices;
pub mod sign_in;
pub mod studies;
pub mod study;
pub mod upload;
pub mod users;
