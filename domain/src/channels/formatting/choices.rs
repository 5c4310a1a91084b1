//! Quick-reply buttons and list pickers, checked against Meta's limits for
//! interactive messages.

use super::*;

// Meta Cloud API limits for interactive messages.
pub(super) const QUICK_REPLY_MAX_BUTTONS: usize = 3;
pub(super) const QUICK_REPLY_BODY_MAX: usize = 1024;
pub(super) const BUTTON_TITLE_MAX: usize = 20;
pub(super) const BUTTON_ID_MAX: usize = 256;
pub(super) const LIST_BODY_MAX: usize = 4096;
pub(super) const LIST_BUTTON_TEXT_MAX: usize = 20;
pub(super) const LIST_MAX_SECTIONS: usize = 10;
pub(super) const LIST_MAX_ROWS: usize = 10;
pub(super) const SECTION_TITLE_MAX: usize = 24;
pub(super) const ROW_TITLE_MAX: usize = 24;
pub(super) const ROW_DESCRIPTION_MAX: usize = 72;
pub(super) const ROW_ID_MAX: usize = 200;

/// Why an interactive message was refused. Buttons, sections and rows are numbered from 1,
/// as a person would count them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractiveError {
    #[error("body is empty; WhatsApp requires 1 to {max} characters")]
    EmptyBody { max: usize },
    #[error("body is {len} characters; WhatsApp allows at most {max}")]
    BodyTooLong { len: usize, max: usize },
    #[error("quick replies have {count} buttons; WhatsApp allows 1 to {max}")]
    ButtonCount { count: usize, max: usize },
    #[error("button {button} id is empty; WhatsApp requires 1 to {max} characters")]
    EmptyButtonId { button: usize, max: usize },
    #[error("button {button} id is {len} characters; WhatsApp allows at most {max}")]
    ButtonIdTooLong {
        button: usize,
        len: usize,
        max: usize,
    },
    #[error("button {button} id {id:?} is already used by button {first}; WhatsApp requires unique button ids")]
    DuplicateButtonId {
        button: usize,
        first: usize,
        id: String,
    },
    #[error("button {button} title is empty; WhatsApp requires 1 to {max} characters")]
    EmptyButtonTitle { button: usize, max: usize },
    #[error("button {button} title is {len} characters; WhatsApp allows at most {max}")]
    ButtonTitleTooLong {
        button: usize,
        len: usize,
        max: usize,
    },
    #[error("button {button} title {title:?} repeats button {first}'s title; WhatsApp requires unique button titles (ignoring case)")]
    DuplicateButtonTitle {
        button: usize,
        first: usize,
        title: String,
    },
    #[error("list button text is empty; WhatsApp requires 1 to {max} characters")]
    EmptyListButtonText { max: usize },
    #[error("list button text is {len} characters; WhatsApp allows at most {max}")]
    ListButtonTextTooLong { len: usize, max: usize },
    #[error("list has {count} sections; WhatsApp allows 1 to {max}")]
    SectionCount { count: usize, max: usize },
    #[error("section {section} has no rows; WhatsApp requires at least 1 row per section")]
    EmptySection { section: usize },
    #[error("list has {count} rows in total; WhatsApp allows at most {max}")]
    TooManyRows { count: usize, max: usize },
    #[error("section {section} has no title; WhatsApp requires a title of 1 to {max} characters on every section when a list has more than one")]
    MissingSectionTitle { section: usize, max: usize },
    #[error("section {section} title is {len} characters; WhatsApp allows at most {max}")]
    SectionTitleTooLong {
        section: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} id is empty; WhatsApp requires 1 to {max} characters")]
    EmptyRowId {
        section: usize,
        row: usize,
        max: usize,
    },
    #[error("section {section} row {row} id is {len} characters; WhatsApp allows at most {max}")]
    RowIdTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} id {id:?} is already used by section {first_section} row {first_row}; WhatsApp requires row ids unique across the list")]
    DuplicateRowId {
        section: usize,
        row: usize,
        first_section: usize,
        first_row: usize,
        id: String,
    },
    #[error("section {section} row {row} title is empty; WhatsApp requires 1 to {max} characters")]
    EmptyRowTitle {
        section: usize,
        row: usize,
        max: usize,
    },
    #[error(
        "section {section} row {row} title is {len} characters; WhatsApp allows at most {max}"
    )]
    RowTitleTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} description is {len} characters; WhatsApp allows at most {max}")]
    RowDescriptionTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
}

/// Characters as the limits count them: Unicode scalar values, which is never fewer than the
/// characters a person sees, so the check errs on the strict side.
pub(super) fn char_len(text: &str) -> usize {
    text.chars().count()
}

pub(super) fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

pub(super) fn check_body(body: &str, max: usize) -> Result<(), InteractiveError> {
    if is_blank(body) {
        return Err(InteractiveError::EmptyBody { max });
    }
    let len = char_len(body);
    if len > max {
        return Err(InteractiveError::BodyTooLong { len, max });
    }
    Ok(())
}

/// An optional text that is blank carries nothing, and Meta rejects empty strings.
pub(super) fn non_blank(text: Option<String>) -> Option<String> {
    text.filter(|t| !is_blank(t))
}

/// A message with up to three quick-reply buttons, valid by construction.
///
/// Serializable for storage and logging; not deserializable, so that every value has been
/// through [`QuickReplies::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReplies {
    body: String,
    buttons: Vec<QuickReplyButton>,
}

/// One quick-reply button: `id` comes back in the reply webhook, `title` is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReplyButton {
    id: String,
    title: String,
}

impl QuickReplies {
    /// Checks Meta's rules: 1 to 3 buttons; each title 1 to 20 characters (not blank) and
    /// unique ignoring case; each id 1 to 256 characters (not blank) and unique; body 1 to
    /// 1024 characters (not blank). Texts are kept exactly as given.
    pub fn new(
        body: impl Into<String>,
        buttons: Vec<(String, String)>,
    ) -> Result<Self, InteractiveError> {
        let body = body.into();
        check_body(&body, QUICK_REPLY_BODY_MAX)?;
        let count = buttons.len();
        if count == 0 || count > QUICK_REPLY_MAX_BUTTONS {
            return Err(InteractiveError::ButtonCount {
                count,
                max: QUICK_REPLY_MAX_BUTTONS,
            });
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut titles: HashMap<String, usize> = HashMap::new();
        for (i, (id, title)) in buttons.iter().enumerate() {
            let button = i + 1;
            if is_blank(id) {
                return Err(InteractiveError::EmptyButtonId {
                    button,
                    max: BUTTON_ID_MAX,
                });
            }
            let len = char_len(id);
            if len > BUTTON_ID_MAX {
                return Err(InteractiveError::ButtonIdTooLong {
                    button,
                    len,
                    max: BUTTON_ID_MAX,
                });
            }
            if let Some(&first) = ids.get(id.as_str()) {
                return Err(InteractiveError::DuplicateButtonId {
                    button,
                    first,
                    id: id.clone(),
                });
            }
            ids.insert(id, button);

            if is_blank(title) {
                return Err(InteractiveError::EmptyButtonTitle {
                    button,
                    max: BUTTON_TITLE_MAX,
                });
            }
            let len = char_len(title);
            if len > BUTTON_TITLE_MAX {
                return Err(InteractiveError::ButtonTitleTooLong {
                    button,
                    len,
                    max: BUTTON_TITLE_MAX,
                });
            }
            let key = title.trim().to_lowercase();
            if let Some(&first) = titles.get(&key) {
                return Err(InteractiveError::DuplicateButtonTitle {
                    button,
                    first,
                    title: title.clone(),
                });
            }
            titles.insert(key, button);
        }
        Ok(Self {
            body,
            buttons: buttons
                .into_iter()
                .map(|(id, title)| QuickReplyButton { id, title })
                .collect(),
        })
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn buttons(&self) -> &[QuickReplyButton] {
        &self.buttons
    }
}

impl QuickReplyButton {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }
}

/// A list message: a button that opens up to ten rows in sections, valid by construction.
///
/// Serializable for storage and logging; not deserializable, so that every value has been
/// through [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListMessage {
    body: String,
    button_text: String,
    sections: Vec<ListSection>,
}

/// A group of rows in a [`ListMessage`]; checked by [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    rows: Vec<ListRow>,
}

/// One choice in a [`ListMessage`]; checked by [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    id: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl ListMessage {
    /// Checks Meta's rules: body 1 to 4096 characters; button text 1 to 20; 1 to 10 sections,
    /// each with at least one row and at most 10 rows in all; every section titled when there
    /// is more than one, titles at most 24 characters; row titles 1 to 24; descriptions at
    /// most 72; row ids 1 to 200 and unique across the whole list. "Empty" includes blank.
    pub fn new(
        body: impl Into<String>,
        button_text: impl Into<String>,
        sections: Vec<ListSection>,
    ) -> Result<Self, InteractiveError> {
        let body = body.into();
        let button_text = button_text.into();
        check_body(&body, LIST_BODY_MAX)?;
        if is_blank(&button_text) {
            return Err(InteractiveError::EmptyListButtonText {
                max: LIST_BUTTON_TEXT_MAX,
            });
        }
        let len = char_len(&button_text);
        if len > LIST_BUTTON_TEXT_MAX {
            return Err(InteractiveError::ListButtonTextTooLong {
                len,
                max: LIST_BUTTON_TEXT_MAX,
            });
        }
        let count = sections.len();
        if count == 0 || count > LIST_MAX_SECTIONS {
            return Err(InteractiveError::SectionCount {
                count,
                max: LIST_MAX_SECTIONS,
            });
        }
        let mut ids: HashMap<&str, (usize, usize)> = HashMap::new();
        for (s, section_value) in sections.iter().enumerate() {
            let section = s + 1;
            if section_value.rows.is_empty() {
                return Err(InteractiveError::EmptySection { section });
            }
            match &section_value.title {
                None if count > 1 => {
                    return Err(InteractiveError::MissingSectionTitle {
                        section,
                        max: SECTION_TITLE_MAX,
                    })
                }
                Some(title) if char_len(title) > SECTION_TITLE_MAX => {
                    return Err(InteractiveError::SectionTitleTooLong {
                        section,
                        len: char_len(title),
                        max: SECTION_TITLE_MAX,
                    })
                }
                _ => {}
            }
            for (r, row_value) in section_value.rows.iter().enumerate() {
                let row = r + 1;
                check_row(section, row, row_value)?;
                if let Some(&(first_section, first_row)) = ids.get(row_value.id.as_str()) {
                    return Err(InteractiveError::DuplicateRowId {
                        section,
                        row,
                        first_section,
                        first_row,
                        id: row_value.id.clone(),
                    });
                }
                ids.insert(&row_value.id, (section, row));
            }
        }
        let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
        if rows > LIST_MAX_ROWS {
            return Err(InteractiveError::TooManyRows {
                count: rows,
                max: LIST_MAX_ROWS,
            });
        }
        Ok(Self {
            body,
            button_text,
            sections,
        })
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn button_text(&self) -> &str {
        &self.button_text
    }

    pub fn sections(&self) -> &[ListSection] {
        &self.sections
    }
}

pub(super) fn check_row(
    section: usize,
    row: usize,
    value: &ListRow,
) -> Result<(), InteractiveError> {
    if is_blank(&value.id) {
        return Err(InteractiveError::EmptyRowId {
            section,
            row,
            max: ROW_ID_MAX,
        });
    }
    let len = char_len(&value.id);
    if len > ROW_ID_MAX {
        return Err(InteractiveError::RowIdTooLong {
            section,
            row,
            len,
            max: ROW_ID_MAX,
        });
    }
    if is_blank(&value.title) {
        return Err(InteractiveError::EmptyRowTitle {
            section,
            row,
            max: ROW_TITLE_MAX,
        });
    }
    let len = char_len(&value.title);
    if len > ROW_TITLE_MAX {
        return Err(InteractiveError::RowTitleTooLong {
            section,
            row,
            len,
            max: ROW_TITLE_MAX,
        });
    }
    if let Some(description) = &value.description {
        let len = char_len(description);
        if len > ROW_DESCRIPTION_MAX {
            return Err(InteractiveError::RowDescriptionTooLong {
                section,
                row,
                len,
                max: ROW_DESCRIPTION_MAX,
            });
        }
    }
    Ok(())
}

impl ListSection {
    /// A blank title counts as no title.
    pub fn new(title: Option<String>, rows: Vec<ListRow>) -> Self {
        Self {
            title: non_blank(title),
            rows,
        }
    }

    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    pub fn rows(&self) -> &[ListRow] {
        &self.rows
    }
}

impl ListRow {
    /// A blank description counts as no description.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            description: non_blank(description),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}
