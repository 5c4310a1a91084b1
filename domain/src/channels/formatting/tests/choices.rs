//! Quick replies and lists, against Meta's limits.

use super::*;

// --- Quick replies -----------------------------------------------------------------------

fn buttons(titles: &[&str]) -> Vec<(String, String)> {
    titles
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("id-{i}"), (*t).to_string()))
        .collect()
}

#[test]
fn quick_replies_accepts_one_to_three_buttons() {
    let one = QuickReplies::new("Confirm?", buttons(&["Yes"])).unwrap();
    assert_eq!(one.body(), "Confirm?");
    assert_eq!(one.buttons().len(), 1);
    assert_eq!(one.buttons()[0].id(), "id-0");
    assert_eq!(one.buttons()[0].title(), "Yes");
    let three = QuickReplies::new("Pick", buttons(&["A", "B", "C"])).unwrap();
    assert_eq!(three.buttons().len(), 3);
}

#[test]
fn quick_replies_rejects_zero_or_four_buttons() {
    let err = QuickReplies::new("Pick", vec![]).unwrap_err();
    assert_eq!(err, InteractiveError::ButtonCount { count: 0, max: 3 });
    let err = QuickReplies::new("Pick", buttons(&["A", "B", "C", "D"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "quick replies have 4 buttons; WhatsApp allows 1 to 3"
    );
}

#[test]
fn quick_reply_title_limit() {
    let twenty = "t".repeat(20);
    assert!(QuickReplies::new("b", buttons(&[&twenty])).is_ok());
    // Emoji count as one character each here.
    assert!(QuickReplies::new("b", buttons(&[&"👍".repeat(20)])).is_ok());
    let long = "t".repeat(23);
    let err = QuickReplies::new("b", buttons(&["ok", &long])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 2 title is 23 characters; WhatsApp allows at most 20"
    );
}

#[test]
fn quick_reply_title_must_not_be_blank() {
    let err = QuickReplies::new("b", buttons(&["  "])).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyButtonTitle { button: 1, max: 20 }
    );
    assert!(err.to_string().contains("1 to 20 characters"));
}

#[test]
fn quick_reply_titles_are_unique_ignoring_case() {
    let err = QuickReplies::new("b", buttons(&["Yes", "No", "YES"])).unwrap_err();
    assert!(matches!(
        err,
        InteractiveError::DuplicateButtonTitle {
            button: 3,
            first: 1,
            ..
        }
    ));
    assert!(err.to_string().contains("unique"));
    assert!(QuickReplies::new("b", buttons(&["Yes", "Yes please"])).is_ok());
}

#[test]
fn quick_reply_id_limits() {
    let ok = vec![("i".repeat(256), "A".to_string())];
    assert!(QuickReplies::new("b", ok).is_ok());
    let long = vec![("i".repeat(257), "A".to_string())];
    let err = QuickReplies::new("b", long).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 1 id is 257 characters; WhatsApp allows at most 256"
    );
    let empty = vec![(String::new(), "A".to_string())];
    let err = QuickReplies::new("b", empty).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyButtonId {
            button: 1,
            max: 256
        }
    );
    assert!(err.to_string().contains("1 to 256"));
}

#[test]
fn quick_reply_ids_are_unique() {
    let dup = vec![
        ("same".to_string(), "A".to_string()),
        ("same".to_string(), "B".to_string()),
    ];
    let err = QuickReplies::new("b", dup).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 2 id \"same\" is already used by button 1; WhatsApp requires unique button ids"
    );
    // Ids are compared exactly: case differences are different ids.
    let case = vec![
        ("same".to_string(), "A".to_string()),
        ("SAME".to_string(), "B".to_string()),
    ];
    assert!(QuickReplies::new("b", case).is_ok());
}

#[test]
fn quick_reply_body_limits() {
    assert!(QuickReplies::new("x".repeat(1024), buttons(&["A"])).is_ok());
    let err = QuickReplies::new("x".repeat(1025), buttons(&["A"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is 1025 characters; WhatsApp allows at most 1024"
    );
    let err = QuickReplies::new(" \n", buttons(&["A"])).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyBody { max: 1024 });
    assert!(err.to_string().contains("1 to 1024"));
}

#[test]
fn quick_replies_serialize() {
    let q = QuickReplies::new("Confirm?", buttons(&["Yes"])).unwrap();
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        serde_json::json!({"body": "Confirm?", "buttons": [{"id": "id-0", "title": "Yes"}]})
    );
}

// --- Lists -------------------------------------------------------------------------------

fn row(id: &str) -> ListRow {
    ListRow::new(id, format!("Title {id}"), None)
}

fn rows(prefix: &str, n: usize) -> Vec<ListRow> {
    (0..n).map(|i| row(&format!("{prefix}{i}"))).collect()
}

fn list(sections: Vec<ListSection>) -> Result<ListMessage, InteractiveError> {
    ListMessage::new("Choose a slot", "Slots", sections)
}

#[test]
fn list_with_one_untitled_section_is_accepted() {
    let msg = list(vec![ListSection::new(None, rows("r", 3))]).unwrap();
    assert_eq!(msg.body(), "Choose a slot");
    assert_eq!(msg.button_text(), "Slots");
    assert_eq!(msg.sections().len(), 1);
    assert_eq!(msg.sections()[0].title(), None);
    assert_eq!(msg.sections()[0].rows()[1].id(), "r1");
    assert_eq!(msg.sections()[0].rows()[1].title(), "Title r1");
    assert_eq!(msg.sections()[0].rows()[1].description(), None);
}

#[test]
fn list_section_count_limits() {
    let err = list(vec![]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "list has 0 sections; WhatsApp allows 1 to 10"
    );
    let ten: Vec<ListSection> = (0..10)
        .map(|i| ListSection::new(Some(format!("S{i}")), rows(&format!("s{i}r"), 1)))
        .collect();
    assert!(list(ten.clone()).is_ok());
    let mut eleven = ten;
    eleven.push(ListSection::new(Some("S10".into()), rows("s10r", 1)));
    let err = list(eleven).unwrap_err();
    assert_eq!(err, InteractiveError::SectionCount { count: 11, max: 10 });
}

#[test]
fn list_row_total_limit_spans_sections() {
    assert!(list(vec![ListSection::new(None, rows("r", 10))]).is_ok());
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 6)),
        ListSection::new(Some("B".into()), rows("b", 5)),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list has 11 rows in total; WhatsApp allows at most 10"
    );
}

#[test]
fn list_sections_need_rows() {
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 1)),
        ListSection::new(Some("B".into()), vec![]),
    ])
    .unwrap_err();
    assert_eq!(err, InteractiveError::EmptySection { section: 2 });
    assert!(err.to_string().contains("at least 1 row"));
}

#[test]
fn several_sections_each_need_a_title() {
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 1)),
        ListSection::new(None, rows("b", 1)),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        InteractiveError::MissingSectionTitle {
            section: 2,
            max: 24
        }
    );
    assert!(err.to_string().contains("1 to 24 characters"));
    // A blank title is no title.
    let err = list(vec![
        ListSection::new(Some("  ".into()), rows("a", 1)),
        ListSection::new(Some("B".into()), rows("b", 1)),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        InteractiveError::MissingSectionTitle {
            section: 1,
            max: 24
        }
    );
}

#[test]
fn section_title_limit() {
    assert!(list(vec![ListSection::new(Some("s".repeat(24)), rows("r", 1))]).is_ok());
    let err = list(vec![ListSection::new(Some("s".repeat(25)), rows("r", 1))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 title is 25 characters; WhatsApp allows at most 24"
    );
}

#[test]
fn row_title_limits() {
    let ok = ListRow::new("r", "t".repeat(24), None);
    assert!(list(vec![ListSection::new(None, vec![ok])]).is_ok());
    let long = ListRow::new("r2", "t".repeat(25), None);
    let err = list(vec![ListSection::new(None, vec![row("r1"), long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 2 title is 25 characters; WhatsApp allows at most 24"
    );
    let blank = ListRow::new("r", " ", None);
    let err = list(vec![ListSection::new(None, vec![blank])]).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyRowTitle {
            section: 1,
            row: 1,
            max: 24
        }
    );
    assert!(err.to_string().contains("1 to 24"));
}

#[test]
fn row_description_limit() {
    let ok = ListRow::new("r", "t", Some("d".repeat(72)));
    let msg = list(vec![ListSection::new(None, vec![ok])]).unwrap();
    assert_eq!(
        msg.sections()[0].rows()[0].description(),
        Some("d".repeat(72).as_str())
    );
    let long = ListRow::new("r", "t", Some("d".repeat(73)));
    let err = list(vec![ListSection::new(None, vec![long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 1 description is 73 characters; WhatsApp allows at most 72"
    );
    assert_eq!(
        ListRow::new("r", "t", Some("  ".into())).description(),
        None
    );
}

#[test]
fn row_id_limits() {
    let ok = ListRow::new("i".repeat(200), "t", None);
    assert!(list(vec![ListSection::new(None, vec![ok])]).is_ok());
    let long = ListRow::new("i".repeat(201), "t", None);
    let err = list(vec![ListSection::new(None, vec![long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 1 id is 201 characters; WhatsApp allows at most 200"
    );
    let empty = ListRow::new("", "t", None);
    let err = list(vec![ListSection::new(None, vec![empty])]).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyRowId {
            section: 1,
            row: 1,
            max: 200
        }
    );
    assert!(err.to_string().contains("1 to 200"));
}

#[test]
fn row_ids_are_unique_across_sections() {
    let err = list(vec![
        ListSection::new(Some("A".into()), vec![row("x"), row("y")]),
        ListSection::new(Some("B".into()), vec![row("z"), row("y")]),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 2 row 2 id \"y\" is already used by section 1 row 2; WhatsApp requires row ids unique across the list"
    );
}

#[test]
fn list_button_text_limits() {
    let one = || vec![ListSection::new(None, rows("r", 1))];
    assert!(ListMessage::new("b", "x".repeat(20), one()).is_ok());
    let err = ListMessage::new("b", "x".repeat(21), one()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "list button text is 21 characters; WhatsApp allows at most 20"
    );
    let err = ListMessage::new("b", "", one()).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyListButtonText { max: 20 });
    assert!(err.to_string().contains("1 to 20"));
}

#[test]
fn list_body_limits() {
    let one = || vec![ListSection::new(None, rows("r", 1))];
    assert!(ListMessage::new("x".repeat(4096), "Open", one()).is_ok());
    let err = ListMessage::new("x".repeat(4097), "Open", one()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is 4097 characters; WhatsApp allows at most 4096"
    );
    let err = ListMessage::new("", "Open", one()).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyBody { max: 4096 });
}

#[test]
fn list_serializes_without_absent_optionals() {
    let msg = ListMessage::new(
        "Body",
        "Open",
        vec![ListSection::new(
            None,
            vec![
                ListRow::new("a", "A", Some("first".into())),
                ListRow::new("b", "B", None),
            ],
        )],
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&msg).unwrap(),
        serde_json::json!({
            "body": "Body",
            "button_text": "Open",
            "sections": [{"rows": [
                {"id": "a", "title": "A", "description": "first"},
                {"id": "b", "title": "B"}
            ]}]
        })
    );
}
