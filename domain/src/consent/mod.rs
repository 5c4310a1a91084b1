//! The consent ledger: the one module that changes a person's consents and
//! suppressions. Every transition is a function here, and each records its
//! evidence and how strong that evidence is ([`Strength`]).
//!
//! | from | event | evidence required | to |
//! |---|---|---|---|
//! | no consent | form / QR, single opt-in | IP, user agent, page, consent text version | active (`declared`) |
//! | no consent | form / QR, double opt-in | the same | pending (`declared`), confirmation sent |
//! | no consent | API, import, staff | consent text version and how it was given | active (`attested`), or pending when asked |
//! | pending | YES / START from the number | the inbound message | active (`number`) |
//! | pending | confirmation link | the token sent to the number | active (`confirmed`) |
//! | opted out | form, QR, API, import, staff | as above | unchanged; the claim is kept as a pending consent that only the number can confirm (`needs proof from the number`) |
//! | opted out | START / UNSTOP / YES from the number | the inbound message | suppression lifted (`lift_ref`), consent active (`number`) |
//! | no consent, nothing pending | YES / START from the number | the inbound message | unchanged (stored as a message, nothing more) |
//! | any | STOP (or a revocation keyword) from the number | the inbound message | consents revoked, suppressed |
//! | any | provider opt-out (21610, 63014) | the provider's code | consents revoked, suppressed |
//! | any | Meta 131050 (user stopped marketing) | the provider's code | marketing suppressed (utility still goes) |
//! | any | staff or API suppression / revocation | who, and why | consents revoked, suppressed |
//! | any (the number erased) | erasure (`privacy::erase`) | who, and why | suppressed on every channel; the number kept only as a keyed hash in a tombstone that any later contact with it inherits (`tombstone`) until a START from it |
//!
//! "Opted out" means an active suppression on the channel (or on every
//! channel), or a latest consent that was revoked. Nothing but proof from
//! the person's own number lifts it: not a form (anyone can type anyone's
//! number), not an API call, not an import, not staff.
//!
//! This module must never lift a suppression on anything but an inbound
//! message from the suppressed number, and never change a contact's name
//! or fields (that is [`crate::contacts`]' job, and an anonymous form must
//! not do it at all).
//!
//! Where things are: `records` (the ledger's vocabulary: sources,
//! strengths, evidence, and the consent and suppression records as shown),
//! `reading` (the consent that decides, the suppressions, opted out or
//! not), `opt_in` (a claim from a form, the API, an import or staff; a
//! link that confirms; a keyword from the number, the one proof that
//! lifts), `opt_out` (from any origin: consents revoked, suppressed).

mod opt_in;
mod opt_out;
pub mod preferences;
pub mod purposes;
mod reading;
mod records;
pub mod tombstone;

pub use opt_in::{
    confirm_by_link, create_contact_with_opt_in, opt_in_from_number, record_opt_in, record_opt_ins,
    FromNumber, LinkConfirmation, NewContactError, NumberOptIn, OptInOutcome, StaffOptIn,
};
pub use opt_out::{opt_out, withdraw_purpose, OptOutSource};
pub(crate) use reading::status_of;
pub use reading::{
    active_suppression, consent_at, consent_history, consent_status, current_consent,
    current_consent_for, opted_out, suppressions,
};
pub use records::{
    text_hash, ConsentEvidence, ConsentRecord, ConsentSource, OptedOut, Scope, Strength,
    Suppression,
};
