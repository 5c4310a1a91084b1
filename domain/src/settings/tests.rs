//! The settings read from pairs and a file: defaults, bad values, secrets,
//! where each value comes from, the auto sandbox.

use super::*;

#[test]
fn each_runtime_setting_says_where_its_value_comes_from() {
    let mut src = Source::default();
    src.merge_toml("heimdall_rate_per_second = 40\nHEIMDALL_QUIET_HOURS = \"09:00-20:00\"\n")
        .unwrap();
    src.overlay_environment([(
        "HEIMDALL_QUIET_HOURS".to_string(),
        "10:00-18:00".to_string(),
    )]);
    assert_eq!(src.origin("HEIMDALL_RATE_PER_SECOND"), ValueSource::File);
    assert_eq!(
        src.origin("HEIMDALL_QUIET_HOURS"),
        ValueSource::Environment,
        "the environment wins"
    );
    assert_eq!(src.origin("HEIMDALL_TIER_LIMIT"), ValueSource::Default);
    let settings = Settings::from_source(&src).unwrap();
    assert_eq!(settings.rate_per_second, 40);
    assert_eq!(
        settings.runtime_sources["HEIMDALL_RATE_PER_SECOND"],
        ValueSource::File
    );
    assert_eq!(
        settings.runtime_sources["HEIMDALL_QUIET_HOURS"],
        ValueSource::Environment
    );
    assert_eq!(
        settings.runtime_sources["HEIMDALL_HELP_TEXT"],
        ValueSource::Default
    );
    let runtime = runtime::RuntimeSetting::ALL;
    for setting in runtime {
        assert_eq!(
            runtime::RuntimeSetting::from_key(setting.key()),
            Some(setting)
        );
        assert!(
            settings.runtime_sources.contains_key(setting.variable()),
            "{setting:?}"
        );
    }
    assert_eq!(
        runtime.map(|s| s.variable()).len(),
        runtime
            .map(|s| s.variable())
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "one variable for each runtime setting"
    );
}

#[test]
fn a_help_text_from_the_environment_must_say_how_to_opt_out_as_in_the_console() {
    let refused = settings(&[("HEIMDALL_HELP_TEXT", "Call us at 555.")]).unwrap_err();
    assert!(
        refused.to_string().contains("HEIMDALL_HELP_TEXT"),
        "{refused}"
    );
    assert!(refused.to_string().contains("STOP"), "{refused}");
    // Blank is unset: the compliant default.
    assert_eq!(
        settings(&[("HEIMDALL_HELP_TEXT", "  ")]).unwrap().help_text,
        None
    );
    let ok = settings(&[("HEIMDALL_HELP_TEXT", " Call 555. Reply STOP to opt out. ")]).unwrap();
    assert_eq!(
        ok.help_text.as_deref(),
        Some("Call 555. Reply STOP to opt out.")
    );
}

#[test]
fn the_pace_from_the_environment_has_the_consoles_range() {
    assert_eq!(
        settings(&[("HEIMDALL_RECIPIENT_PACE_SECONDS", "3600")])
            .unwrap()
            .recipient_pace_seconds,
        3600
    );
    let refused = settings(&[("HEIMDALL_RECIPIENT_PACE_SECONDS", "3601")]).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("HEIMDALL_RECIPIENT_PACE_SECONDS"),
        "{refused}"
    );
}

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::from_source(&Source::from_pairs(pairs.iter().copied()))
}

/// Security finding 5: the auto sandbox (no credentials found) is for
/// this machine only.
#[test]
fn the_auto_sandbox_refuses_to_run_where_others_can_reach_it() {
    for public in ["https://heimdall.example.com", "http://203.0.113.5:3000"] {
        match settings(&[("HEIMDALL_PUBLIC_URL", public)]) {
            Err(SettingsError::Invalid { name, message }) => {
                assert_eq!(name, "HEIMDALL_SANDBOX", "{message}");
                assert!(message.contains("HEIMDALL_SANDBOX=on"), "{message}");
            }
            other => panic!("{public}: {other:?}"),
        }
    }
    // Listening on every address without a public URL: the same.
    assert!(settings(&[("HEIMDALL_BIND", "0.0.0.0:3000")]).is_err());
    // On purpose, or on this machine: fine.
    assert!(settings(&[
        ("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com"),
        ("HEIMDALL_SANDBOX", "on"),
    ])
    .is_ok());
    for local in [
        "http://127.0.0.1:3000",
        "http://localhost:8080",
        "http://[::1]:3000",
    ] {
        assert!(
            settings(&[("HEIMDALL_PUBLIC_URL", local)]).is_ok(),
            "{local}"
        );
    }
    // With credentials there is no sandbox to worry about.
    assert!(settings(&[
        ("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com"),
        ("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001"),
        ("TWILIO_AUTH_TOKEN", "t"),
    ])
    .is_ok());
}

#[test]
fn defaults_need_nothing() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
    assert_eq!(
        s.database_url.expose_secret(),
        "sqlite://data/heimdall.db?mode=rwc"
    );
    assert!(s.sandbox_active());
    assert_eq!(s.rate_per_second, 80);
    assert_eq!(s.tier_limit, Some(250));
    assert_eq!(s.fallback_codes, vec![63003, 131026, 63032]);
}

#[test]
fn bad_values_name_the_setting() {
    for (pairs, name) in [
        (vec![("HEIMDALL_BIND", "nowhere")], "HEIMDALL_BIND"),
        (
            vec![("HEIMDALL_DATABASE_URL", "mysql://x")],
            "HEIMDALL_DATABASE_URL",
        ),
        (
            vec![("HEIMDALL_REDIS_URL", "http://x")],
            "HEIMDALL_REDIS_URL",
        ),
        (
            vec![("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001")],
            "TWILIO_AUTH_TOKEN",
        ),
        (
            vec![("HEIMDALL_TIER_LADDER", "250,100")],
            "HEIMDALL_TIER_LADDER",
        ),
        (
            vec![("HEIMDALL_QUIET_HOURS", "21:00-08:00")],
            "HEIMDALL_QUIET_HOURS",
        ),
        (
            vec![("HEIMDALL_DEFAULT_TIME_ZONE", "Mars/Base")],
            "HEIMDALL_DEFAULT_TIME_ZONE",
        ),
        (
            vec![("HEIMDALL_RATE_PER_SECOND", "fast")],
            "HEIMDALL_RATE_PER_SECOND",
        ),
        (
            vec![("HEIMDALL_PUBLIC_URL", "ftp://x")],
            "HEIMDALL_PUBLIC_URL",
        ),
        (
            vec![("HEIMDALL_FALLBACK_CODES", "63007,abc")],
            "HEIMDALL_FALLBACK_CODES",
        ),
    ] {
        let err = settings(&pairs).unwrap_err().to_string();
        assert!(err.starts_with(name), "{err} should name {name}");
    }
}

#[test]
fn secrets_are_not_printed() {
    let s = settings(&[
        ("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001"),
        ("TWILIO_AUTH_TOKEN", "supersecret-token-value"),
        ("HEIMDALL_API_KEY", "bootstrap-key-value"),
    ])
    .unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains("supersecret-token-value"));
    assert!(!printed.contains("bootstrap-key-value"));
    assert!(!s.sandbox_active());
}

#[test]
fn templates_come_from_wa_template_settings() {
    let s = settings(&[
        ("WA_TEMPLATE_TASK_REMINDER", "HX1111"),
        ("WA_TEMPLATE_TASK_COMPLETE", "HX2222"),
    ])
    .unwrap();
    assert_eq!(s.templates.get("task_reminder").unwrap(), "HX1111");
    assert_eq!(s.templates.get("task_complete_confirm").unwrap(), "HX2222");
}

#[test]
fn toml_file_keys_match_env_names_and_env_wins() {
    let mut src = Source::default();
    src.merge_toml("HEIMDALL_BIND = \"127.0.0.1:4000\"\nheimdall_rate_per_second = 10\n")
        .unwrap();
    let s = Settings::from_source(&src).unwrap();
    assert_eq!(s.bind.port(), 4000);
    assert_eq!(s.rate_per_second, 10);
    src.values
        .insert("HEIMDALL_BIND".into(), "127.0.0.1:5000".into());
    assert_eq!(Settings::from_source(&src).unwrap().bind.port(), 5000);
}

#[test]
fn norns_api_key_is_read() {
    let s = settings(&[("NORNS_API_KEY", "k")]).unwrap();
    assert_eq!(s.api_key.unwrap().expose_secret(), "k");
}
