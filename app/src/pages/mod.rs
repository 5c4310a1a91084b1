//! The console's pages. Each renders fully on the server (forms post to
//! server functions and work without JavaScript); hydration adds live
//! updates.

pub mod auth;
pub mod templates;
