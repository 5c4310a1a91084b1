//! The console's pages. Each renders fully on the server (forms post to
//! server functions and work without JavaScript); hydration adds live
//! updates.

pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod contacts;
pub mod dashboard;
pub mod forms;
pub mod inbox;
pub mod settings;
pub mod templates;
