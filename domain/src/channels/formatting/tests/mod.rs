//! Formatting, splitting, SMS segments and interactive limits, case by case
//! (the regression cases of the formatter included).
//!
//! One file per part, as the code is: `markdown`, `split` (length and
//! splitting), `destination` (plain text, SMS segments, prepared parts),
//! `choices` (quick replies and lists); the property tests of a part are
//! in its file.

use super::*;
use proptest::prelude::*;

mod choices;
mod destination;
mod markdown;
mod split;
