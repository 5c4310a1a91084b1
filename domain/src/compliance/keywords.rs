//! The inbound keyword table: which replies opt a contact out, opt them back
//! in, or ask for help, and which longer messages carry a revocation of
//! consent that a person should review.
//!
//! This is the only place those words are listed. It must never let an
//! opt-out lose to anything else, never treat a longer sentence as an opt-in
//! or a help request (only an exact keyword does that), and never panic on
//! whatever a phone sends. It decides nothing about suppression itself: the
//! caller acts on the [`KeywordMatch`] and routes `exact == false` to staff.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeywordAction {
    OptOut,
    /// A marketing-only opt-out ("STOP PROMOTIONS"): only ever an exact
    /// phrase from `HEIMDALL_MARKETING_STOP_PHRASES`, never found inside a
    /// longer message.
    OptOutMarketing,
    OptIn,
    Help,
}

impl KeywordAction {
    /// Its name in the inbox row and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordAction::OptOut => "opt_out",
            KeywordAction::OptOutMarketing => "opt_out_marketing",
            KeywordAction::OptIn => "opt_in",
            KeywordAction::Help => "help",
        }
    }
}

/// The name a marketing-only opt-out is recorded under (the phrase itself
/// is the inbound message's text).
pub const MARKETING_OPT_OUT: &str = "STOP PROMOTIONS";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeywordMatch {
    pub action: KeywordAction,
    /// The table entry that matched, in its normalised (upper-case) form.
    pub keyword: &'static str,
    /// true when the whole message was the keyword; false when a revocation phrase was found inside a longer message (flag for staff review)
    pub exact: bool,
}

/// The one table. A whole message equal to one of these (after [`normalise`]) opts out.
/// Covers the carrier/CTIA and Twilio defaults and the words the FCC's 2025
/// revocation rule names.
pub const OPT_OUT_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "END",
    "QUIT",
    "CANCEL",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
];
pub const OPT_IN_KEYWORDS: &[&str] = &["START", "YES", "UNSTOP"];
pub const HELP_KEYWORDS: &[&str] = &["HELP", "INFO"];

/// Phrases that revoke consent when found inside a longer message (whole
/// words, normalised form). Bare END, QUIT, CANCEL, REVOKE and STOP are
/// deliberately absent: inside a sentence they mean too many other things
/// ("cancel my appointment", "the bus stop"). Phrases that do not start with
/// a negation are ignored right after "don't", "dont", "not" or "never"
/// ("don't stop texting me" asks for more, not less).
pub const REVOCATION_PHRASES: &[&str] = &[
    "STOP TEXTING",
    "STOP MESSAGING",
    "STOP SENDING",
    "STOP CONTACTING",
    "STOP CALLING",
    "STOP SPAMMING",
    "STOP ALL",
    "STOPALL",
    "QUIT TEXTING",
    "QUIT MESSAGING",
    "QUIT SENDING",
    "UNSUBSCRIBE",
    "OPTOUT",
    "OPT OUT",
    "OPT ME OUT",
    "REMOVE ME",
    "REMOVE MY NUMBER",
    "DELETE MY NUMBER",
    "TAKE ME OFF",
    "REVOKE CONSENT",
    "REVOKE MY CONSENT",
    "WITHDRAW CONSENT",
    "WITHDRAW MY CONSENT",
    "DO NOT TEXT",
    "DON'T TEXT",
    "DONT TEXT",
    "DO NOT MESSAGE",
    "DON'T MESSAGE",
    "DONT MESSAGE",
    "DO NOT CONTACT",
    "DON'T CONTACT",
    "DONT CONTACT",
    "NEVER TEXT",
    "NEVER MESSAGE",
    "NEVER CONTACT",
    "NO MORE MESSAGES",
    "NO MORE TEXTS",
    "LEAVE ME ALONE",
    // Not the person the messages are meant for: texting on would reach a
    // stranger who never consented.
    "WRONG NUMBER",
];

/// Words that cancel a following phrase ("don't stop texting").
const NEGATIONS: &[&str] = &["DON'T", "DONT", "NOT", "NEVER"];
/// First words of phrases that are themselves negative, so never cancelled.
const NEGATIVE_LEADS: &[&str] = &["DO", "DON'T", "DONT", "NO", "NEVER"];

/// Words that mean opt-out on their own in a short sentence ("stop please").
/// END/QUIT/CANCEL/REVOKE are left out: "please cancel" is usually about an
/// appointment.
const WRAPPABLE_STOP_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT"];
/// Politeness that may surround a stop word without changing its meaning.
const POLITE_FILLER: &[&str] = &[
    "PLEASE", "PLS", "PLZ", "KINDLY", "NOW", "ASAP", "JUST", "THANKS", "THANK", "YOU", "THX", "TY",
    "OK", "OKAY", "HI", "HEY", "HELLO", "SIR", "MAAM", "MA'AM",
];
/// "Short" wrapper: more words than this and it is a sentence, not a keyword.
const MAX_WRAPPED_WORDS: usize = 6;

/// "stop [all|the|these…]{0,2} <messages|texts…>" catches "stop these texts",
/// "stop all the reminders" without listing every combination.
const STOP_OBJECT_DETERMINERS: &[&str] = &[
    "ALL", "THE", "THESE", "THOSE", "THIS", "YOUR", "ANY", "MY", "SUCH",
];
const MESSAGE_NOUNS: &[&str] = &[
    "MESSAGE",
    "MESSAGES",
    "MSG",
    "MSGS",
    "TEXT",
    "TEXTS",
    "SMS",
    "REMINDER",
    "REMINDERS",
    "NOTIFICATIONS",
    "ALERTS",
    "WHATSAPP",
    "WHATSAPPS",
    "SPAM",
];

/// Normalise: Unicode-aware uppercase, trim surrounding whitespace and punctuation (including "!", ".", "?", quotes, emoji-free), collapse inner whitespace to one space, also accept "opt-out"/"opt_out" as OPT OUT.
///
/// Precisely: invisible characters (zero-width space/joiners, BOM, soft
/// hyphen, variation selectors) are dropped; curly apostrophes become `'`;
/// whitespace, `-`, `_` and the Unicode hyphens/en dash become one space;
/// anything that is not a letter or digit (punctuation, symbols, emoji) is
/// trimmed from both ends. Inner punctuation is kept.
pub fn normalise(body: &str) -> String {
    let upper = body.to_uppercase();
    let mut out = String::with_capacity(upper.len());
    let mut pending_space = false;
    for c in upper.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() || is_word_joiner(c) {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(match c {
            '\u{2018}' | '\u{2019}' | '\u{02BC}' | '\u{FF07}' => '\'',
            other => other,
        });
    }
    out.trim_matches(|c: char| !c.is_alphanumeric()).to_owned()
}

/// Classify an inbound body. Exact keyword (after normalising) -> that action with exact = true.
/// Otherwise, a longer message containing a revocation phrase -> OptOut with exact = false.
///
/// Opt-out is checked first, so a body can never classify as anything else
/// when an opt-out reading exists.
pub fn classify(body: &str) -> Option<KeywordMatch> {
    let whole = normalise(body);
    if whole.is_empty() {
        return None;
    }
    let tables = [
        (OPT_OUT_KEYWORDS, KeywordAction::OptOut),
        (OPT_IN_KEYWORDS, KeywordAction::OptIn),
        (HELP_KEYWORDS, KeywordAction::Help),
    ];
    for (table, action) in tables {
        if let Some(keyword) = table.iter().find(|k| **k == whole) {
            return Some(KeywordMatch {
                action,
                keyword,
                exact: true,
            });
        }
    }
    find_revocation(body).map(|keyword| KeywordMatch {
        action: KeywordAction::OptOut,
        keyword,
        exact: false,
    })
}

/// [`classify`], and before it the marketing-only phrases (`(language,
/// normalised phrase)`): a whole message equal to one stops marketing
/// only. The settings refuse a phrase [`classify`] reads as anything, so a
/// full opt-out is never narrowed by this.
pub fn classify_with(body: &str, marketing: &[(String, String)]) -> Option<KeywordMatch> {
    let whole = normalise(body);
    if !whole.is_empty() && marketing.iter().any(|(_, p)| *p == whole) {
        return Some(KeywordMatch {
            action: KeywordAction::OptOutMarketing,
            keyword: MARKETING_OPT_OUT,
            exact: true,
        });
    }
    classify(body)
}

/// Searches sentence by sentence, so a negation in one sentence cannot
/// cancel a request in the next ("I don't. Stop texting me").
fn find_revocation(body: &str) -> Option<&'static str> {
    body.split(is_sentence_break).find_map(|sentence| {
        let normalised = normalise(sentence);
        let words = words(&normalised);
        if words.is_empty() {
            return None;
        }
        wrapped_stop_word(&words)
            .or_else(|| listed_phrase(&words))
            .or_else(|| stop_with_object(&words))
    })
}

/// A sentence made only of stop words and politeness: "stop please", "OK. STOP".
fn wrapped_stop_word(words: &[&str]) -> Option<&'static str> {
    if words.len() > MAX_WRAPPED_WORDS {
        return None;
    }
    let mut found = None;
    for word in words {
        if let Some(stop) = WRAPPABLE_STOP_WORDS.iter().find(|s| *s == word) {
            found = found.or(Some(*stop));
        } else if !POLITE_FILLER.contains(word) {
            return None;
        }
    }
    found
}

fn listed_phrase(words: &[&str]) -> Option<&'static str> {
    REVOCATION_PHRASES.iter().copied().find(|phrase| {
        let pattern: Vec<&str> = phrase.split(' ').collect();
        let guarded = pattern.first().is_some_and(|w| !NEGATIVE_LEADS.contains(w));
        words
            .windows(pattern.len())
            .enumerate()
            .any(|(i, window)| window == pattern.as_slice() && !(guarded && negated(words, i)))
    })
}

fn stop_with_object(words: &[&str]) -> Option<&'static str> {
    let hit = words.iter().enumerate().any(|(i, word)| {
        if *word != "STOP" || negated(words, i) {
            return false;
        }
        let rest = &words[i + 1..];
        let determiners = rest
            .iter()
            .take(2)
            .take_while(|w| STOP_OBJECT_DETERMINERS.contains(w))
            .count();
        rest.get(determiners)
            .is_some_and(|noun| MESSAGE_NOUNS.contains(noun))
    });
    hit.then_some("STOP")
}

fn negated(words: &[&str], index: usize) -> bool {
    index
        .checked_sub(1)
        .and_then(|prev| words.get(prev))
        .is_some_and(|w| NEGATIONS.contains(w))
}

/// Words of a normalised sentence: runs of letters, digits and apostrophes,
/// with quote-like apostrophes at their ends removed ("'stop'" is STOP).
fn words(normalised: &str) -> Vec<&str> {
    normalised
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect()
}

fn is_sentence_break(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | ',' | ';' | ':' | '\n' | '\r' | '\u{2026}' | '\u{2014}' | '\u{2015}'
    )
}

fn is_word_joiner(c: char) -> bool {
    matches!(
        c,
        '-' | '_' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2212}' | '\u{FF0D}'
    )
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{FE0E}'
            | '\u{FE0F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn action(body: &str) -> Option<KeywordAction> {
        classify(body).map(|m| m.action)
    }

    fn assert_exact(body: &str, expected: KeywordAction, keyword: &str) {
        let m = classify(body).unwrap_or_else(|| panic!("{body:?} matched nothing"));
        assert_eq!(m.action, expected, "{body:?}");
        assert_eq!(m.keyword, keyword, "{body:?}");
        assert!(m.exact, "{body:?} should be exact");
    }

    fn assert_revokes(body: &str) {
        let m = classify(body).unwrap_or_else(|| panic!("{body:?} should revoke"));
        assert_eq!(m.action, KeywordAction::OptOut, "{body:?}");
        assert!(!m.exact, "{body:?} is not the bare keyword");
    }

    fn casings(keyword: &str) -> Vec<String> {
        let mixed: String = keyword
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect();
        let mut title = keyword.to_lowercase();
        if let Some(first) = title.get(..1) {
            title = first.to_uppercase() + &title[1..];
        }
        vec![keyword.to_owned(), keyword.to_lowercase(), mixed, title]
    }

    #[test]
    fn every_keyword_in_every_case_and_wrapping() {
        let tables = [
            (OPT_OUT_KEYWORDS, KeywordAction::OptOut),
            (OPT_IN_KEYWORDS, KeywordAction::OptIn),
            (HELP_KEYWORDS, KeywordAction::Help),
        ];
        for (table, expected) in tables {
            for keyword in table.iter() {
                for form in casings(keyword) {
                    for wrapped in [
                        form.clone(),
                        format!("  {form}. "),
                        format!("{form}!"),
                        format!("\"{form}\""),
                        format!("\u{201C}{form}\u{201D}"),
                        format!("\t{form}?!\n"),
                        format!("'{form}'"),
                        format!("{form} \u{1F6D1}"),
                        format!("\u{00A0}{form}\u{200B}"),
                    ] {
                        assert_exact(&wrapped, expected, keyword);
                    }
                }
            }
        }
    }

    #[test]
    fn brief_examples_are_exact() {
        assert_exact("  stop. ", KeywordAction::OptOut, "STOP");
        assert_exact("Stop!", KeywordAction::OptOut, "STOP");
        assert_exact("\"STOP\"", KeywordAction::OptOut, "STOP");
        assert_exact("STOP!!!", KeywordAction::OptOut, "STOP");
        assert_exact("opt-out", KeywordAction::OptOut, "OPT OUT");
        assert_exact("opt_out", KeywordAction::OptOut, "OPT OUT");
        assert_exact("Opt   Out", KeywordAction::OptOut, "OPT OUT");
        assert_exact("stop\n\nall", KeywordAction::OptOut, "STOP ALL");
        assert_exact("ſtop", KeywordAction::OptOut, "STOP"); // long s: Unicode uppercase
    }

    #[test]
    fn normalise_rules() {
        assert_eq!(normalise("  opt-out!! "), "OPT OUT");
        assert_eq!(normalise("opt_out"), "OPT OUT");
        assert_eq!(normalise("don\u{2019}t   text\tme."), "DON'T TEXT ME");
        assert_eq!(normalise("¡¿ stop ?!"), "STOP");
        assert_eq!(normalise("straße"), "STRASSE");
        assert_eq!(normalise("🛑🛑"), "");
        assert_eq!(normalise(""), "");
        assert_eq!(normalise("a, b"), "A, B");
    }

    #[test]
    fn empty_and_blank_bodies_match_nothing() {
        for body in ["", "   ", "!!!", "\u{1F44D}", "\n"] {
            assert_eq!(classify(body), None, "{body:?}");
        }
    }

    #[test]
    fn revocation_phrases_inside_longer_messages() {
        for body in [
            "Please stop texting me",
            "STOP MESSAGING ME!!",
            "can you stop sending these",
            "Stop contacting me about this",
            "stop calling me",
            "stop all messages",
            "stop all the reminders please",
            "How do I stop these texts?",
            "stop the spam",
            "I want to unsubscribe",
            "Unsubscribe me now",
            "how do I opt out",
            "please opt-out my number",
            "opt me out",
            "remove me from your list",
            "Please take me off this list",
            "do not text this number again",
            "Don't text me",
            "don\u{2019}t text me",
            "dont text me anymore",
            "do not message me",
            "don't message me again",
            "do not contact me",
            "no more messages please",
            "no more texts",
            "just leave me alone",
            "I revoke my consent",
            "wrong number, who is this",
            "stop please",
            "please stop",
            "Stop pls",
            "ok stop",
            "STOP STOP STOP",
            "stop, thank you",
            "Stop. Who is this?",
            "Hi! Stop.",
            "stop\nwho is this",
            "unsubscribe please",
            "I don't. Stop texting me",
            "quit texting me",
        ] {
            assert_revokes(body);
        }
    }

    #[test]
    fn phrase_matches_report_their_table_entry() {
        let m = classify("please remove me from the list").expect("match");
        assert_eq!(m.keyword, "REMOVE ME");
        let m = classify("stop please").expect("match");
        assert_eq!(m.keyword, "STOP");
        let m = classify("stop these reminders").expect("match");
        assert_eq!(m.keyword, "STOP");
        for phrase in REVOCATION_PHRASES {
            let m = classify(&format!("hello there, {} ok", phrase.to_lowercase()))
                .unwrap_or_else(|| panic!("{phrase} not found"));
            assert_eq!(m.action, KeywordAction::OptOut);
            assert!(!m.exact);
        }
    }

    #[test]
    fn near_misses_do_not_revoke() {
        for body in [
            "I stopped by the store",
            "nonstop",
            "nonstop service all day",
            "Don't stop believing",
            "don't stop",
            "Please don't stop sending me reminders",
            "dont stop texting me, I like them",
            "never stop messaging me",
            "do not stop the reminders",
            "don't unsubscribe me",
            "Please don't remove me from the list",
            "don't leave me alone",
            "the bus stop is on Main St",
            "What time does it end?",
            "cancel my appointment",
            "please cancel",
            "Can I cancel and rebook?",
            "I quit my job",
            "start time?",
            "yes I'll be there",
            "Yes please",
            "can you help me with my booking",
            "more info please",
            "Stop by at 3?",
            "I can't stop reading your messages",
            "put a stop to all this",
            "the text was unclear",
            "thanks!",
        ] {
            assert_ne!(action(body), Some(KeywordAction::OptOut), "{body:?}");
        }
    }

    #[test]
    fn only_exact_keywords_opt_in_or_ask_for_help() {
        for body in [
            "yes I'll be there",
            "start time?",
            "START NOW",
            "help me",
            "info on parking",
        ] {
            assert_eq!(classify(body), None, "{body:?}");
        }
        assert_exact("Yes", KeywordAction::OptIn, "YES");
        assert_exact("unstop", KeywordAction::OptIn, "UNSTOP");
        assert_exact("Help?", KeywordAction::Help, "HELP");
    }

    #[test]
    fn opt_out_wins() {
        // Every opt-out keyword is exact, and no other table shares a word with it.
        for keyword in OPT_OUT_KEYWORDS {
            assert!(!OPT_IN_KEYWORDS.contains(keyword));
            assert!(!HELP_KEYWORDS.contains(keyword));
        }
        // A help or opt-in word next to a revocation still revokes.
        assert_revokes("help, stop texting me");
        assert_revokes("yes, unsubscribe me");
    }

    #[test]
    fn tables_are_already_normalised() {
        for keyword in OPT_OUT_KEYWORDS
            .iter()
            .chain(OPT_IN_KEYWORDS)
            .chain(HELP_KEYWORDS)
            .chain(REVOCATION_PHRASES)
        {
            assert_eq!(normalise(keyword), *keyword);
        }
    }

    #[test]
    fn match_serialises() {
        let json = serde_json::to_string(&classify("stop").expect("match")).expect("json");
        assert_eq!(json, r#"{"action":"OptOut","keyword":"STOP","exact":true}"#);
    }

    proptest! {
        #[test]
        fn never_panics(body in "\\PC{0,200}") {
            let _ = classify(&body);
        }

        #[test]
        fn normalise_is_idempotent(body in "\\PC{0,80}") {
            let once = normalise(&body);
            prop_assert_eq!(normalise(&once), once.clone());
        }

        #[test]
        fn stop_survives_any_surrounding_punctuation(
            pre in "[ \\t!?.\"'*()~]{0,5}",
            post in "[ \\t!?.\"'*()~]{0,5}",
        ) {
            let m = classify(&format!("{pre}sToP{post}"));
            prop_assert_eq!(m, Some(KeywordMatch { action: KeywordAction::OptOut, keyword: "STOP", exact: true }));
        }
    }
}
