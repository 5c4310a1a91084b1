//! Interactive WhatsApp content as callers ask for it and as it is stored:
//! quick-reply buttons and list pickers.
//!
//! The checked shapes are [`QuickReplies`] and [`ListMessage`] (Meta's limits, valid by
//! construction); this module parses a request or a stored row into one of them, and renders
//! it for each place it goes: Meta's `interactive` object (in `channels::meta`), Twilio's
//! Content API types (`twilio/quick-reply`, `twilio/list-picker`), and plain text for the
//! SMS fallback and the inbox.
//!
//! Interactive content is session content: the gates treat it as free-form text (only
//! inside the 24-hour window, only with a human decision behind it). It must never be a way
//! to put words in the person's mouth: a button or row id that reads as a keyword (YES,
//! START, STOP, HELP, ...) is refused unless its title says the same thing, because a tap
//! sends the id back and the inbound side acts on it ([`crate::inbound`]).

use serde::{Deserialize, Serialize};

use crate::channels::formatting::{
    InteractiveError, ListMessage, ListRow, ListSection, QuickReplies,
};
use crate::compliance::keywords;

/// Interactive content as a caller asks for it (`POST /api/v1/messages` `interactive`)
/// and as an outbound message stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InteractiveSpec {
    /// One to three quick-reply buttons under a text.
    Buttons {
        body: String,
        buttons: Vec<ButtonSpec>,
    },
    /// A button (`button`, its label) that opens up to ten rows, in sections.
    List {
        body: String,
        button: String,
        sections: Vec<SectionSpec>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    /// Comes back in the person's reply (the button's payload).
    pub id: String,
    /// What the person sees (at most 20 characters).
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<RowSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Checked interactive content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interactive {
    Buttons(QuickReplies),
    List(ListMessage),
}

/// Why interactive content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractiveRefusal {
    #[error("{0}")]
    Shape(#[from] InteractiveError),
    /// A choice whose id the inbound side would read as a keyword the title does not say.
    #[error("choice '{title}' has the id '{id}', which a reply reads as the keyword {keyword}; an id that is a keyword needs a title that says the same (or choose another id)")]
    KeywordId {
        id: String,
        title: String,
        keyword: String,
    },
    #[error("stored interactive content is unreadable: {0}")]
    Stored(String),
}

impl InteractiveSpec {
    /// Check Meta's limits and the keyword rule.
    pub fn parse(self) -> Result<Interactive, InteractiveRefusal> {
        let parsed = match self {
            InteractiveSpec::Buttons { body, buttons } => Interactive::Buttons(QuickReplies::new(
                body,
                buttons.into_iter().map(|b| (b.id, b.title)).collect(),
            )?),
            InteractiveSpec::List {
                body,
                button,
                sections,
            } => Interactive::List(ListMessage::new(
                body,
                button,
                sections
                    .into_iter()
                    .map(|s| {
                        ListSection::new(
                            s.title,
                            s.rows
                                .into_iter()
                                .map(|r| ListRow::new(r.id, r.title, r.description))
                                .collect(),
                        )
                    })
                    .collect(),
            )?),
        };
        for (id, title) in parsed.choices() {
            let Some(k) = keywords::classify(id) else {
                continue;
            };
            let same = keywords::classify(title).is_some_and(|t| t.action == k.action);
            if !same {
                return Err(InteractiveRefusal::KeywordId {
                    id: id.to_string(),
                    title: title.to_string(),
                    keyword: k.keyword.to_uppercase(),
                });
            }
        }
        Ok(parsed)
    }

    /// Buttons or a list from staff's lines of choices (the inbox): ids are made
    /// (`choice-1`, ...), so no id is ever a keyword. `list_button` makes a list.
    pub fn from_choices(body: &str, choices: &[String], list_button: Option<&str>) -> Self {
        let choices: Vec<&str> = choices
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect();
        let id = |i: usize| format!("choice-{}", i + 1);
        match list_button {
            None => InteractiveSpec::Buttons {
                body: body.to_string(),
                buttons: choices
                    .iter()
                    .enumerate()
                    .map(|(i, t)| ButtonSpec {
                        id: id(i),
                        title: t.to_string(),
                    })
                    .collect(),
            },
            Some(button) => InteractiveSpec::List {
                body: body.to_string(),
                button: button.to_string(),
                sections: vec![SectionSpec {
                    title: None,
                    rows: choices
                        .iter()
                        .enumerate()
                        .map(|(i, t)| RowSpec {
                            id: id(i),
                            title: t.to_string(),
                            description: None,
                        })
                        .collect(),
                }],
            },
        }
    }
}

impl Interactive {
    /// The text above the choices.
    pub fn body(&self) -> &str {
        match self {
            Interactive::Buttons(q) => q.body(),
            Interactive::List(l) => l.body(),
        }
    }

    /// Every choice as (id, title), in order.
    pub fn choices(&self) -> Vec<(&str, &str)> {
        match self {
            Interactive::Buttons(q) => q.buttons().iter().map(|b| (b.id(), b.title())).collect(),
            Interactive::List(l) => l
                .sections()
                .iter()
                .flat_map(|s| s.rows())
                .map(|r| (r.id(), r.title()))
                .collect(),
        }
    }

    /// `buttons` or `list`.
    pub fn kind(&self) -> &'static str {
        match self {
            Interactive::Buttons(_) => "buttons",
            Interactive::List(_) => "list",
        }
    }

    /// The request form again (what is stored).
    pub fn spec(&self) -> InteractiveSpec {
        match self {
            Interactive::Buttons(q) => InteractiveSpec::Buttons {
                body: q.body().to_string(),
                buttons: q
                    .buttons()
                    .iter()
                    .map(|b| ButtonSpec {
                        id: b.id().to_string(),
                        title: b.title().to_string(),
                    })
                    .collect(),
            },
            Interactive::List(l) => InteractiveSpec::List {
                body: l.body().to_string(),
                button: l.button_text().to_string(),
                sections: l
                    .sections()
                    .iter()
                    .map(|s| SectionSpec {
                        title: s.title().map(str::to_string),
                        rows: s
                            .rows()
                            .iter()
                            .map(|r| RowSpec {
                                id: r.id().to_string(),
                                title: r.title().to_string(),
                                description: r.description().map(str::to_string),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        }
    }

    /// The stored form (JSON of [`InteractiveSpec`]).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.spec()).unwrap_or_default()
    }

    /// Read a message's stored content (its `interactive` column), checked again.
    pub fn from_stored(json: Option<&str>) -> Result<Self, InteractiveRefusal> {
        let json = json.ok_or_else(|| InteractiveRefusal::Stored("nothing is stored".into()))?;
        serde_json::from_str::<InteractiveSpec>(json)
            .map_err(|e| InteractiveRefusal::Stored(e.to_string()))?
            .parse()
    }

    /// As plain text: the body, then the choices numbered (the SMS fallback, where there
    /// are no buttons, and the inbox's record of what was sent).
    pub fn plain_text(&self) -> String {
        let mut out = self.body().trim_end().to_string();
        out.push('\n');
        for (i, (_, title)) in self.choices().iter().enumerate() {
            out.push('\n');
            out.push_str(&format!("{}. {title}", i + 1));
        }
        out
    }

    /// Twilio's Content API `types` for this content, for a session message (Twilio's
    /// list picker has no sections: their rows go in order, section titles dropped).
    pub fn twilio_types(&self) -> serde_json::Value {
        match self {
            Interactive::Buttons(q) => serde_json::json!({
                "twilio/quick-reply": {
                    "body": q.body(),
                    "actions": q.buttons().iter()
                        .map(|b| serde_json::json!({"title": b.title(), "id": b.id()}))
                        .collect::<Vec<_>>(),
                }
            }),
            Interactive::List(l) => serde_json::json!({
                "twilio/list-picker": {
                    "body": l.body(),
                    "button": l.button_text(),
                    "items": l.sections().iter().flat_map(|s| s.rows())
                        .map(|r| {
                            let mut item = serde_json::json!({"item": r.title(), "id": r.id()});
                            if let Some(d) = r.description() {
                                item["description"] = serde_json::json!(d);
                            }
                            item
                        })
                        .collect::<Vec<_>>(),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buttons(pairs: &[(&str, &str)]) -> InteractiveSpec {
        InteractiveSpec::Buttons {
            body: "Shall we book it?".into(),
            buttons: pairs
                .iter()
                .map(|(id, title)| ButtonSpec {
                    id: id.to_string(),
                    title: title.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn request_json_parses_and_round_trips_through_storage() {
        let json = r#"{"type":"list","body":"Pick a slot","button":"Slots","sections":[
            {"title":"Monday","rows":[{"id":"mon-9","title":"09:00","description":"with Kim"}]},
            {"title":"Tuesday","rows":[{"id":"tue-9","title":"09:00"}]}]}"#;
        let spec: InteractiveSpec = serde_json::from_str(json).unwrap();
        let parsed = spec.clone().parse().unwrap();
        assert_eq!(parsed.kind(), "list");
        assert_eq!(
            parsed.choices(),
            vec![("mon-9", "09:00"), ("tue-9", "09:00")]
        );
        let again = Interactive::from_stored(Some(&parsed.to_stored())).unwrap();
        assert_eq!(again, parsed);
        assert_eq!(again.spec(), spec);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<InteractiveSpec>(
            r#"{"type":"buttons","body":"x","buttons":[{"id":"a","title":"A","colour":"red"}]}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<InteractiveSpec>(r#"{"type":"carousel","body":"x"}"#).is_err()
        );
    }

    #[test]
    fn meta_limits_are_checked() {
        let four = buttons(&[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]);
        assert!(matches!(
            four.parse(),
            Err(InteractiveRefusal::Shape(InteractiveError::ButtonCount {
                count: 4,
                ..
            }))
        ));
        let long = buttons(&[("a", "A title that is far too long")]);
        assert!(long.parse().is_err());
    }

    #[test]
    fn an_id_that_reads_as_a_keyword_needs_a_title_that_says_it() {
        // A tap sends the id back: "Tell me more" must not come back as YES (a consent)
        // or STOP (an opt-out the person never asked for).
        for (id, title) in [
            ("YES", "Tell me more"),
            ("START", "Menu"),
            ("stop", "Later"),
            ("HELP", "Prices"),
        ] {
            let err = buttons(&[(id, title), ("other", "Other")])
                .parse()
                .unwrap_err();
            assert!(
                matches!(&err, InteractiveRefusal::KeywordId { id: i, .. } if i == id),
                "{id}/{title}: {err:?}"
            );
        }
        // An honest keyword button is fine.
        assert!(buttons(&[("YES", "Yes"), ("STOP", "Stop")]).parse().is_ok());
        // Made ids never read as keywords, whatever the titles.
        let spec = InteractiveSpec::from_choices(
            "Which?",
            &["Yes".into(), " ".into(), "Stop".into()],
            None,
        );
        let parsed = spec.parse().unwrap();
        assert_eq!(
            parsed.choices(),
            vec![("choice-1", "Yes"), ("choice-2", "Stop")]
        );
    }

    #[test]
    fn plain_text_and_twilio_types_carry_every_choice() {
        let parsed = buttons(&[("y", "Yes please"), ("n", "No thanks")])
            .parse()
            .unwrap();
        assert_eq!(
            parsed.plain_text(),
            "Shall we book it?\n\n1. Yes please\n2. No thanks"
        );
        let types = parsed.twilio_types();
        assert_eq!(types["twilio/quick-reply"]["body"], "Shall we book it?");
        assert_eq!(types["twilio/quick-reply"]["actions"][1]["id"], "n");
        let list =
            InteractiveSpec::from_choices("Pick", &["One".into(), "Two".into()], Some("Open"))
                .parse()
                .unwrap();
        let types = list.twilio_types();
        assert_eq!(types["twilio/list-picker"]["button"], "Open");
        assert_eq!(types["twilio/list-picker"]["items"][1]["item"], "Two");
        assert_eq!(types["twilio/list-picker"]["items"][1]["id"], "choice-2");
    }
}
