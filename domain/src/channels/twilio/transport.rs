//! The HTTP side of provider calls: the configured client, endpoint URLs,
//! and transport failures and error bodies as [`Rejected`] (Meta and
//! Discord use these too).

use super::*;

/// The HTTP client Heimdall uses for provider calls: rustls, a 5 s connect
/// timeout, a 15 s overall timeout and a `heimdall/<version>` user agent.
///
/// Idle pooled connections are dropped after [`POOL_IDLE`], before a
/// server's keep-alive closes them (5 s is common, actix-web's default
/// among them): a request sent on a connection the server is closing at
/// that moment fails as a network error and is retried, and a send retried
/// after a network failure is the one place a message could reach a
/// provider twice (neither Twilio nor Meta takes an idempotency key).
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(POOL_IDLE)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("heimdall/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not build the configured HTTP client; using reqwest's defaults");
            reqwest::Client::new()
        })
}

/// How long an idle provider connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// Twilio's REST error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
    #[serde(default)]
    status: Option<u16>,
}

/// `base` plus path segments, each percent-encoded as needed.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, Rejected> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|_| Rejected {
            failure: ProviderFailure::Network,
            message: "the provider base URL cannot take a path".into(),
        })?;
        path.pop_if_empty();
        path.extend(segments);
    }
    Ok(url)
}

/// A reqwest failure as a [`Rejected`], with a message that carries neither
/// the URL nor any header. Whether the request may have reached the provider
/// decides what happens next, so the three are kept apart: no connection
/// (`Network`: it never left), no answer in time (`Timeout`) and a connection
/// that broke after the request was sent (`Broken`): the last two may have
/// been taken by the provider, and are never sent again.
pub(crate) fn transport_failure(provider: &str, error: reqwest::Error) -> Rejected {
    let (failure, what) = if error.is_connect() || error.is_builder() {
        (ProviderFailure::Network, "could not connect")
    } else if error.is_timeout() {
        (ProviderFailure::Timeout, "timed out")
    } else {
        (ProviderFailure::Broken, "request failed")
    };
    Rejected {
        failure,
        message: format!("{provider}: {what}: {}", describe_error(error)),
    }
}

/// The error and its causes, without the request URL.
pub(crate) fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let piece = cause.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = cause.source();
    }
    text
}

/// Read a Twilio response: 2xx JSON into `T`, errors into [`Rejected`].
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, Rejected> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_failure("Twilio", e))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| Rejected {
            failure: ProviderFailure::Http(status.as_u16()),
            message: format!("Twilio: unexpected response body (HTTP {status}): {e}"),
        });
    }
    Err(twilio_error(status.as_u16(), &bytes))
}

/// Twilio's error JSON as a [`Rejected`]; anything else is a bare HTTP failure.
pub(super) fn twilio_error(status: u16, body: &[u8]) -> Rejected {
    match serde_json::from_slice::<TwilioError>(body) {
        Ok(TwilioError {
            code: Some(code),
            message,
            status: body_status,
        }) => Rejected {
            failure: ProviderFailure::Code {
                code,
                http_status: Some(body_status.unwrap_or(status)),
            },
            message: message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("Twilio error {code}")),
        },
        _ => Rejected {
            failure: ProviderFailure::Http(status),
            message: format!("Twilio: HTTP {status}{}", snippet(body)),
        },
    }
}

/// A short, printable excerpt of a non-JSON error body.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(": {short}")
}
