//! Variables fetched at send time from a URL answering JSON, under the outbound
//! HTTP policy.

use super::*;

/// GET the variables URL: a JSON object whose values for the template's
/// variables (`wanted`) are strings, numbers or booleans. Other keys are
/// ignored; a wanted variable that is neither in the answer nor among the
/// `fixed` ones is an error. The URL goes through the guarded client
/// ([`crate::outbound_http`]): an address on this network is refused
/// unless `HEIMDALL_FETCH_ALLOWLIST` names it, on every redirect too. The
/// error says what went wrong, without the URL or anything of the answer.
pub async fn fetch_variables(
    core: &Core,
    url: &str,
    wanted: &[String],
    fixed: &BTreeMap<String, String>,
    timeout: StdDuration,
) -> Result<BTreeMap<String, String>, String> {
    let url = url::Url::parse(url).map_err(|_| "the URL does not parse".to_string())?;
    let fetched = crate::outbound_http::fetch_json(
        &core.fetch.client,
        &core.fetch.policy,
        &url,
        MAX_VARIABLES_BYTES,
    );
    let value = match tokio::time::timeout(timeout, fetched).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            return Err(format!(
                "no answer within {} s",
                timeout.as_secs_f64().max(0.001)
            ))
        }
    };
    let obj = value.as_object().ok_or("the answer is not a JSON object")?;
    let mut out = BTreeMap::new();
    for name in wanted {
        let Some(v) = obj.get(name) else { continue };
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "'{name}' is {}, not a string or number",
                    json_kind(other)
                ))
            }
        };
        if s.chars().count() > reminders::MAX_VALUE_CHARS {
            return Err(format!(
                "'{name}' is longer than {} characters",
                reminders::MAX_VALUE_CHARS
            ));
        }
        out.insert(name.clone(), s);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !out.contains_key(*w) && !fixed.contains_key(*w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the answer has no value for: {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

pub(super) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
