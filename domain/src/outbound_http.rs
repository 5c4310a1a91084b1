//! Outbound HTTP to URLs that someone other than the operator chose.
//!
//! API clients set a schedule's `variables_url`, which Heimdall GETs at send
//! time; staff set a Discord webhook URL, which Heimdall POSTs to. Left
//! unchecked, such a URL turns Heimdall into a proxy into its own network
//! (server-side request forgery): `http://169.254.169.254/…` reads cloud
//! metadata, `http://127.0.0.1:<port>/` probes local services, and the error
//! text tells the caller what answered.
//!
//! This module is the one way to make such requests:
//!
//! * [`check_url`] refuses anything but `http`/`https`, URLs with a user
//!   name or password, and IP-literal hosts that are not public
//!   ([`is_public_ip`]) unless the operator allowlisted them ([`UrlPolicy`]).
//! * [`PublicOnlyResolver`] is the DNS resolver of the [`client`]: it drops
//!   every non-public address a name resolves to (unless the name is
//!   allowlisted). reqwest connects to exactly the addresses it returns, so
//!   there is no window for DNS rebinding between the check and the connect.
//! * The client's redirect policy runs [`check_url`] again on every hop,
//!   because IP-literal URLs never reach the resolver.
//! * [`fetch_json`] checks, GETs, reads at most a given number of bytes and
//!   parses JSON; its [`FetchError`] is safe to show to an API client.
//!
//! What this module must never do:
//!
//! * connect to an address that is neither public nor allowlisted, whether
//!   given literally, by name, or through a redirect;
//! * use a proxy (a proxy would resolve names for us, after our checks);
//! * put response bodies, resolved addresses, or the underlying transport
//!   error text into the messages of [`UrlRefused`] and [`FetchError`]
//!   (those go back to API clients; the details go to `tracing` at debug
//!   level only, without URLs);
//! * fall back to an unchecked `reqwest::Client` when building one fails.
//!
//! Anyone sending a request with a [`client`] other than through
//! [`fetch_json`] (e.g. a webhook POST) must call [`check_url`] on the URL
//! first, with the same policy the client was built with: the resolver only
//! sees host *names*, so IP-literal URLs and port restrictions of the
//! allowlist are enforced by [`check_url`] (first request) and by the
//! redirect policy (later hops), not by the resolver.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Longest time spent establishing a connection (never more than the
/// request timeout).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Which addresses are public

/// Whether `ip` is an ordinary, globally reachable unicast address: one that
/// a URL from outside may make Heimdall connect to.
///
/// False for loopback, unspecified, private, link-local, CGNAT, multicast,
/// broadcast, documentation, benchmarking, reserved and other special-purpose
/// ranges. IPv6 addresses that carry an IPv4 address (IPv4-mapped,
/// IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by
/// that IPv4 address. Of IPv6 only global unicast (`2000::/3`) can be
/// public at all.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = a == 0 // 0.0.0.0/8 "this network", incl. unspecified
        || a == 10 // 10/8 private
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 CGNAT
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local (cloud metadata)
        || (a == 172 && (b & 0xf0) == 16) // 172.16/12 private
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // 192.0.2/24 TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 192.88.99/24 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // 192.168/16 private
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // 198.51.100/24 TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // 203.0.113/24 TEST-NET-3
        || a >= 224; // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
    !non_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();

    // Forms that carry an IPv4 address: judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d
        return is_public_v4(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d (IPv4-compatible, deprecated), and :: and ::1, which
        // embed 0.0.0.0 and 0.0.0.1 and so are refused too.
        return is_public_v4(embedded_v4(seg[6], seg[7]));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96 NAT64 well-known prefix
        return is_public_v4(embedded_v4(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        // 2002::/16 6to4: the IPv4 address is in bits 16..48
        return is_public_v4(embedded_v4(seg[1], seg[2]));
    }

    // Only global unicast 2000::/3 can be public. This excludes, among
    // others, ::/8, 64:ff9b:1::/48 (local-use NAT64), 100::/64 (discard
    // only), 5f00::/16 (SRv6), fc00::/7 (unique local), fe80::/10
    // (link-local), fec0::/10 (site-local) and ff00::/8 (multicast).
    if (seg[0] & 0xe000) != 0x2000 {
        return false;
    }
    let non_public = (seg[0] == 0x2001 && seg[1] == 0) // 2001::/32 Teredo
        || (seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0) // 2001:2::/48 benchmarking
        || (seg[0] == 0x2001 && (seg[1] & 0xfff0) == 0x0010) // 2001:10::/28 ORCHID (deprecated)
        || (seg[0] == 0x2001 && (seg[1] & 0xfff0) == 0x0020) // 2001:20::/28 ORCHIDv2
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // 2001:db8::/32 documentation
        || (seg[0] == 0x3fff && (seg[1] & 0xf000) == 0); // 3fff::/20 documentation
    !non_public
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from(((hi as u32) << 16) | lo as u32)
}

// ---------------------------------------------------------------------------
// The allowlist

/// Hosts that are meant to be internal and may be requested even though
/// their addresses are not public, e.g. from the setting
/// `"hooks.internal.example, 10.0.0.5, 127.0.0.1:8080"`.
///
/// * A host name entry (matched exactly, case-insensitively, ignoring a
///   trailing dot) lets that name resolve to any address.
/// * An IP entry allows URLs that use that IP literally (`http://10.0.0.5/`);
///   it does not allow other names that resolve to it.
/// * `:port` restricts an entry to that port (the scheme's default port
///   when the URL has none). IPv6 entries with a port are written
///   `[fd00::1]:8080`.
///
/// The empty policy allows public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    allow_hosts: Vec<HostRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: RuleHost,
    /// None: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleHost {
    /// Lower case, ASCII (IDNA), without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl UrlPolicy {
    /// Parse a comma-separated list of `host`, `host:port`, `ip`, `ip:port`
    /// or `[ipv6]:port` entries. Blank entries are ignored. The error names
    /// the entry that is not understood.
    pub fn parse(setting: &str) -> Result<UrlPolicy, String> {
        let mut allow_hosts = Vec::new();
        for entry in setting.split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let rule = parse_rule(entry)
                .map_err(|why| format!("allowed host entry '{entry}' is not understood: {why}"))?;
            if !allow_hosts.contains(&rule) {
                allow_hosts.push(rule);
            }
        }
        Ok(UrlPolicy { allow_hosts })
    }

    /// Whether nothing is allowlisted (only public addresses are allowed).
    pub fn is_empty(&self) -> bool {
        self.allow_hosts.is_empty()
    }

    /// Whether the literal address `ip` on `port` is allowlisted.
    fn allows_ip(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.allow_hosts
            .iter()
            .any(|r| r.host == RuleHost::Ip(ip) && port_matches(r.port, port))
    }

    /// The ports allowed for the host name `name`: None if the name is not
    /// allowlisted, Some(None) for any port, Some(Some(list)) otherwise.
    fn name_ports(&self, name: &str) -> Option<Option<Vec<u16>>> {
        let name = normalize_name(name);
        let mut ports = Vec::new();
        let mut found = false;
        for r in &self.allow_hosts {
            if let RuleHost::Name(n) = &r.host {
                if *n == name {
                    found = true;
                    match r.port {
                        None => return Some(None),
                        Some(p) => ports.push(p),
                    }
                }
            }
        }
        found.then_some(Some(ports))
    }

    /// Whether the host name `name` is allowlisted on some port. (The
    /// resolver does not see the port; `check_url` enforces it.)
    fn allows_name(&self, name: &str) -> bool {
        self.name_ports(name).is_some()
    }
}

fn port_matches(rule: Option<u16>, port: Option<u16>) -> bool {
    match rule {
        None => true,
        Some(p) => port == Some(p),
    }
}

fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn parse_rule(entry: &str) -> Result<HostRule, &'static str> {
    if entry.contains("://") || entry.contains(['/', '@', '?', '#', '*']) {
        return Err("expected a host name or IP address, optionally with :port (no scheme, path or wildcard)");
    }
    if entry.chars().any(char::is_whitespace) {
        return Err("it contains white space");
    }
    // [v6] or [v6]:port
    if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or("missing ']'")?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| "not an IPv6 address inside [ ]")?;
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':').ok_or("expected :port after ']'")?,
            )?),
        };
        return Ok(HostRule {
            host: RuleHost::Ip(IpAddr::V6(ip)),
            port,
        });
    }
    // A bare IP address (IPv6 without a port needs no brackets).
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(HostRule {
            host: RuleHost::Ip(ip),
            port: None,
        });
    }
    let (host, port) = match entry.split_once(':') {
        None => (entry, None),
        Some((_, p)) if p.contains(':') => {
            return Err("write an IPv6 address with a port as [address]:port")
        }
        Some((h, p)) => (h, Some(parse_port(p)?)),
    };
    if host.is_empty() {
        return Err("the host is missing");
    }
    let host = match Host::parse(host).map_err(|_| "not a valid host name or IP address")? {
        Host::Domain(d) => {
            let d = normalize_name(&d);
            if d.is_empty() || d.split('.').any(str::is_empty) {
                return Err("not a valid host name");
            }
            RuleHost::Name(d)
        }
        Host::Ipv4(ip) => RuleHost::Ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => RuleHost::Ip(IpAddr::V6(ip)),
    };
    Ok(HostRule { host, port })
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be a number from 1 to 65535"),
        Ok(p) => Ok(p),
    }
}

// ---------------------------------------------------------------------------
// Checking a URL

/// Why a URL is not requested. The message is short and safe to show to the
/// API client that supplied the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("only http and https URLs are allowed, not {scheme}:")]
    Scheme { scheme: String },
    #[error("URLs with a user name or password are not allowed")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("the address {addr} is not a public address")]
    NonPublicAddress { addr: IpAddr },
    #[error("the host {host} is not allowed on port {port}")]
    PortNotAllowed { host: String, port: u16 },
    #[error("the host {host} resolves only to non-public addresses")]
    NonPublicHost { host: String },
}

/// Check `url` before requesting it (and, through the client's redirect
/// policy, every redirect target): scheme http or https, no user name or
/// password, a host; an IP-literal host must be public or allowlisted; an
/// allowlisted host name with port restrictions must use one of its ports.
///
/// Host names are not resolved here; [`PublicOnlyResolver`] filters their
/// addresses when connecting.
pub fn check_url(policy: &UrlPolicy, url: &Url) -> Result<(), UrlRefused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme {
            scheme: url.scheme().chars().take(20).collect(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Userinfo);
    }
    let port = url.port_or_known_default();
    match url.host() {
        None => Err(UrlRefused::NoHost),
        Some(Host::Ipv4(ip)) => check_ip(policy, IpAddr::V4(ip), port),
        Some(Host::Ipv6(ip)) => check_ip(policy, IpAddr::V6(ip), port),
        Some(Host::Domain(name)) => {
            if name.is_empty() {
                return Err(UrlRefused::NoHost);
            }
            match policy.name_ports(name) {
                Some(Some(ports)) if !port.is_some_and(|p| ports.contains(&p)) => {
                    Err(UrlRefused::PortNotAllowed {
                        host: normalize_name(name),
                        port: port.unwrap_or(0),
                    })
                }
                _ => Ok(()),
            }
        }
    }
}

fn check_ip(policy: &UrlPolicy, ip: IpAddr, port: Option<u16>) -> Result<(), UrlRefused> {
    if is_public_ip(ip) || policy.allows_ip(ip, port) {
        Ok(())
    } else {
        Err(UrlRefused::NonPublicAddress { addr: ip })
    }
}

// ---------------------------------------------------------------------------
// The resolver

/// A reqwest DNS resolver that resolves with the system resolver
/// (`tokio::net::lookup_host`) and then drops every address that is not
/// public, unless the host name is allowlisted. When nothing is left it
/// fails with [`UrlRefused::NonPublicHost`].
///
/// reqwest connects to exactly the addresses returned here, so a name
/// cannot resolve to a public address for a check and to a private one for
/// the connection. IP-literal URLs never reach a resolver; [`check_url`]
/// covers them.
#[derive(Debug, Clone)]
pub struct PublicOnlyResolver {
    policy: Arc<UrlPolicy>,
}

impl PublicOnlyResolver {
    pub fn new(policy: Arc<UrlPolicy>) -> PublicOnlyResolver {
        PublicOnlyResolver { policy }
    }
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if found.is_empty() {
                return Err(format!("no addresses found for {host}").into());
            }
            let kept = filter_resolved(&policy, &host, found)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `host` that may be connected to.
fn filter_resolved(
    policy: &UrlPolicy,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, UrlRefused> {
    if policy.allows_name(host) {
        return Ok(addrs);
    }
    let total = addrs.len();
    let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public_ip(a.ip())).collect();
    if kept.len() < total {
        tracing::debug!(
            host,
            dropped = total - kept.len(),
            kept = kept.len(),
            "outbound HTTP: dropped non-public addresses of a host"
        );
    }
    if kept.is_empty() {
        return Err(UrlRefused::NonPublicHost {
            host: normalize_name(host),
        });
    }
    Ok(kept)
}

// ---------------------------------------------------------------------------
// The client

#[derive(Debug)]
struct TooManyRedirects(usize);

impl fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} redirects", self.0)
    }
}

impl StdError for TooManyRedirects {}

/// An HTTP client for URLs from outside: [`PublicOnlyResolver`] with
/// `policy`, a redirect policy that runs [`check_url`] on every hop and
/// stops after `max_redirects`, no proxy (not even from the environment),
/// no `Referer` on redirects, the total `timeout` and a connect timeout of
/// at most 10 s.
///
/// # Panics
///
/// If reqwest cannot build the client (its TLS backend fails to
/// initialise). There is deliberately no fallback to an unchecked client;
/// use [`try_client`] to handle the error.
pub fn client(policy: Arc<UrlPolicy>, timeout: Duration, max_redirects: usize) -> reqwest::Client {
    try_client(policy, timeout, max_redirects)
        .expect("building the outbound HTTP client failed (TLS backend)")
}

/// [`client`], returning the error instead of panicking.
pub fn try_client(
    policy: Arc<UrlPolicy>,
    timeout: Duration,
    max_redirects: usize,
) -> Result<reqwest::Client, reqwest::Error> {
    let redirect_policy = Arc::clone(&policy);
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the first URL and every earlier hop.
        if attempt.previous().len() > max_redirects {
            return attempt.error(TooManyRedirects(max_redirects));
        }
        match check_url(&redirect_policy, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!("heimdall/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(PublicOnlyResolver::new(policy))
        .redirect(redirect)
        .referer(false)
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .build()
}

// ---------------------------------------------------------------------------
// Fetching JSON

/// Why [`fetch_json`] failed. The message is short and safe to show to the
/// API client that supplied the URL: it never contains the response body,
/// the URL, resolved addresses or transport error details.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refused: {0}")]
    Refused(UrlRefused),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("timed out")]
    Timeout,
    #[error("could not resolve the host name")]
    Resolve,
    #[error("could not connect")]
    Connect,
    #[error("could not follow a redirect")]
    Redirect,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("the response broke off")]
    Body,
    #[error("response is not JSON (error at line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the request failed")]
    Request,
}

/// GET `url` (after [`check_url`]) with `client` (built by [`client`] with
/// the same `policy`), read at most `max_bytes` of the answer and parse it
/// as JSON. Any 2xx status is accepted; redirects are followed by the
/// client's policy.
pub async fn fetch_json(
    client: &reqwest::Client,
    policy: &UrlPolicy,
    url: &Url,
    max_bytes: usize,
) -> Result<serde_json::Value, FetchError> {
    check_url(policy, url).map_err(FetchError::Refused)?;
    let mut resp = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(map_reqwest_error)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(FetchError::TooLarge { max: max_bytes });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(map_reqwest_error)? {
        if body.len() + chunk.len() > max_bytes {
            // Dropping `resp` closes the connection: the rest is not read.
            return Err(FetchError::TooLarge { max: max_bytes });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::NotJson {
        line: e.line(),
        column: e.column(),
    })
}

/// Turn a reqwest error into a [`FetchError`]; refusals by the resolver or
/// the redirect policy (found in the source chain) stay refusals.
fn map_reqwest_error(err: reqwest::Error) -> FetchError {
    let err = err.without_url();
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<UrlRefused>() {
            return FetchError::Refused(refused.clone());
        }
        if let Some(TooManyRedirects(max)) = e.downcast_ref::<TooManyRedirects>() {
            return FetchError::TooManyRedirects(*max);
        }
        source = e.source();
    }
    tracing::debug!(error = %ErrorChain(&err), "outbound HTTP request failed");
    if err.is_timeout() {
        FetchError::Timeout
    } else if err.is_dns() {
        FetchError::Resolve
    } else if err.is_connect() {
        FetchError::Connect
    } else if err.is_redirect() {
        FetchError::Redirect
    } else if err.is_body() || err.is_decode() {
        FetchError::Body
    } else {
        FetchError::Request
    }
}

/// An error with its sources, for logs.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    // -- is_public_ip -------------------------------------------------------

    #[test]
    fn public_and_non_public_addresses() {
        let cases: &[(&str, bool)] = &[
            // IPv4 public
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("192.0.1.1", true),
            ("192.169.0.1", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            // IPv4 non-public
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.1", false),
            ("192.0.0.9", false),
            ("192.0.2.1", false),
            ("192.88.99.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            // IPv6 public
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("2a00:1450:4001:80b::200e", true),
            ("2001:db9::1", true),
            ("2001:1::1", true),
            // IPv6 non-public
            ("::", false),
            ("::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("ff02::1", false),
            ("ff0e::1", false),
            ("2001:db8::1", false),
            ("2001::1", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            ("2001:2::1", false),
            ("2001:10::1", false),
            ("2001:20::1", false),
            ("3fff::1", false),
            ("100::1", false),
            ("64:ff9b:1::1", false),
            ("5f00::1", false),
            ("4000::1", false),
            // IPv4 inside IPv6: judged by the IPv4 address
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("::127.0.0.1", false),
            ("::10.1.2.3", false),
            ("::8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::169.254.169.254", false),
            ("64:ff9b::8.8.8.8", true),
            ("2002:7f00:1::1", false),
            ("2002:a9fe:a9fe::1", false),
            ("2002:c0a8:101::", false),
            ("2002:808:808::1", true),
        ];
        for (text, want) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_public_ip(ip), *want, "is_public_ip({text})");
        }
    }

    // -- UrlPolicy ----------------------------------------------------------

    #[test]
    fn policy_parses_hosts_ips_and_ports() {
        let p = UrlPolicy::parse(
            " Hooks.Internal.Example , 10.0.0.5, 127.0.0.1:8080, fd00::1, [fd00::2]:9000, svc.local.:81,,",
        )
        .unwrap();
        assert_eq!(
            p.allow_hosts,
            vec![
                HostRule {
                    host: RuleHost::Name("hooks.internal.example".into()),
                    port: None
                },
                HostRule {
                    host: RuleHost::Ip("10.0.0.5".parse().unwrap()),
                    port: None
                },
                HostRule {
                    host: RuleHost::Ip("127.0.0.1".parse().unwrap()),
                    port: Some(8080)
                },
                HostRule {
                    host: RuleHost::Ip("fd00::1".parse().unwrap()),
                    port: None
                },
                HostRule {
                    host: RuleHost::Ip("fd00::2".parse().unwrap()),
                    port: Some(9000)
                },
                HostRule {
                    host: RuleHost::Name("svc.local".into()),
                    port: Some(81)
                },
            ]
        );
        assert!(UrlPolicy::parse("").unwrap().is_empty());
        assert!(UrlPolicy::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn policy_errors_name_the_entry() {
        for bad in [
            "http://hooks.example",
            "hooks.example/path",
            "*.example.com",
            "user@host",
            "host:0",
            "host:70000",
            "host:http",
            ":8080",
            "fd00::1:8080:",
            "[fd00::1",
            "[nonsense]:80",
            "[fd00::1]8080",
            "a..b",
        ] {
            let err = UrlPolicy::parse(&format!("ok.example, {bad}")).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }

    // -- check_url ----------------------------------------------------------

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn check_url_cases() {
        let empty = UrlPolicy::default();
        let p =
            UrlPolicy::parse("hooks.internal.example, 10.0.0.5, 127.0.0.1:8080, svc.internal:8443")
                .unwrap();
        let ok = |pol: &UrlPolicy, s: &str| check_url(pol, &url(s));
        let non_public = |s: &str| UrlRefused::NonPublicAddress {
            addr: s.parse().unwrap(),
        };

        assert_eq!(ok(&empty, "https://example.com/vars?x=1"), Ok(()));
        assert_eq!(ok(&empty, "http://8.8.8.8:8080/"), Ok(()));
        assert_eq!(ok(&empty, "http://[2606:4700:4700::1111]/"), Ok(()));
        // Names are not resolved here.
        assert_eq!(ok(&empty, "http://localhost/"), Ok(()));

        assert_eq!(
            ok(&empty, "http://127.0.0.1:8080/"),
            Err(non_public("127.0.0.1"))
        );
        assert_eq!(
            ok(&empty, "http://169.254.169.254/latest/meta-data/"),
            Err(non_public("169.254.169.254"))
        );
        assert_eq!(
            ok(&empty, "http://2130706433/"),
            Err(non_public("127.0.0.1"))
        );
        assert_eq!(ok(&empty, "http://0x7f.1/"), Err(non_public("127.0.0.1")));
        assert_eq!(ok(&empty, "http://0/"), Err(non_public("0.0.0.0")));
        assert_eq!(ok(&empty, "http://[::1]/"), Err(non_public("::1")));
        assert_eq!(ok(&empty, "http://[::]/"), Err(non_public("::")));
        assert_eq!(
            ok(&empty, "http://[::ffff:127.0.0.1]:8080/"),
            Err(non_public("::ffff:127.0.0.1"))
        );
        assert_eq!(ok(&empty, "http://[fe80::1]/"), Err(non_public("fe80::1")));
        assert_eq!(ok(&empty, "http://10.0.0.5/"), Err(non_public("10.0.0.5")));

        // Allowlisted literals, with and without a port restriction.
        assert_eq!(ok(&p, "http://10.0.0.5/"), Ok(()));
        assert_eq!(ok(&p, "https://10.0.0.5:9999/"), Ok(()));
        assert_eq!(ok(&p, "http://127.0.0.1:8080/x"), Ok(()));
        assert_eq!(
            ok(&p, "http://127.0.0.1:8081/"),
            Err(non_public("127.0.0.1"))
        );
        assert_eq!(ok(&p, "http://127.0.0.1/"), Err(non_public("127.0.0.1")));
        // Only the exact literal: the IPv4-mapped form is not allowlisted.
        assert_eq!(
            ok(&p, "http://[::ffff:127.0.0.1]:8080/"),
            Err(non_public("::ffff:127.0.0.1"))
        );
        // Allowlisted names.
        assert_eq!(ok(&p, "https://HOOKS.internal.example./x"), Ok(()));
        assert_eq!(ok(&p, "https://svc.internal:8443/"), Ok(()));
        assert_eq!(
            ok(&p, "https://svc.internal/"),
            Err(UrlRefused::PortNotAllowed {
                host: "svc.internal".into(),
                port: 443
            })
        );

        // Scheme, userinfo, host.
        for (s, want) in [
            (
                "file:///etc/passwd",
                UrlRefused::Scheme {
                    scheme: "file".into(),
                },
            ),
            (
                "ftp://example.com/x",
                UrlRefused::Scheme {
                    scheme: "ftp".into(),
                },
            ),
            (
                "gopher://example.com/",
                UrlRefused::Scheme {
                    scheme: "gopher".into(),
                },
            ),
            (
                "data:text/plain,hi",
                UrlRefused::Scheme {
                    scheme: "data".into(),
                },
            ),
            ("http://user:pass@example.com/", UrlRefused::Userinfo),
            ("http://user@example.com/", UrlRefused::Userinfo),
            ("http://:pass@example.com/", UrlRefused::Userinfo),
            ("https://u:p@hooks.internal.example/", UrlRefused::Userinfo),
        ] {
            assert_eq!(ok(&p, s), Err(want), "{s}");
        }
        // Messages are short and name what is wrong.
        assert_eq!(
            non_public("127.0.0.1").to_string(),
            "the address 127.0.0.1 is not a public address"
        );
    }

    // -- resolver -------------------------------------------------------------

    #[test]
    fn filter_keeps_public_addresses_only() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:0", "8.8.8.8:0", "[::1]:0", "[2606:4700::1]:0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let empty = UrlPolicy::default();
        let kept = filter_resolved(&empty, "mixed.example", addrs.clone()).unwrap();
        assert_eq!(kept, vec![addrs[1], addrs[3]]);

        let private = vec![addrs[0], addrs[2]];
        assert_eq!(
            filter_resolved(&empty, "Internal.Example.", private.clone()),
            Err(UrlRefused::NonPublicHost {
                host: "internal.example".into()
            })
        );
        // An allowlisted name keeps everything (port restrictions are
        // check_url's business).
        let p = UrlPolicy::parse("internal.example:8080").unwrap();
        assert_eq!(
            filter_resolved(&p, "internal.example.", private.clone()),
            Ok(private.clone())
        );
        // An IP entry does not allow names that resolve to it.
        let p = UrlPolicy::parse("10.0.0.1").unwrap();
        assert!(filter_resolved(&p, "internal.example", private).is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_allowlisted() {
        let r = PublicOnlyResolver::new(Arc::new(UrlPolicy::default()));
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolved with the empty policy"),
            Err(e) => e,
        };
        assert_eq!(
            err.downcast_ref::<UrlRefused>(),
            Some(&UrlRefused::NonPublicHost {
                host: "localhost".into()
            })
        );
        assert_eq!(
            err.to_string(),
            "the host localhost resolves only to non-public addresses"
        );

        let r = PublicOnlyResolver::new(Arc::new(UrlPolicy::parse("LOCALHOST").unwrap()));
        let addrs: Vec<SocketAddr> = match r.resolve("localhost".parse().unwrap()).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("allowlisted localhost refused: {e}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    // -- against local servers ------------------------------------------------

    /// A one-response-per-connection HTTP/1.1 server on `bind` (loopback
    /// only). Counts accepted connections.
    struct TestServer {
        addr: SocketAddr,
        accepts: Arc<AtomicUsize>,
    }

    impl TestServer {
        fn port(&self) -> u16 {
            self.addr.port()
        }
        fn accepts(&self) -> usize {
            self.accepts.load(Ordering::SeqCst)
        }
    }

    async fn serve_on(listener: TcpListener, response: Vec<u8>) -> TestServer {
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepts);
        let response = Arc::new(response);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = Arc::clone(&response);
                tokio::spawn(async move {
                    read_request_head(&mut sock).await;
                    let _ = sock.write_all(&response).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        TestServer { addr, accepts }
    }

    async fn serve(response: Vec<u8>) -> TestServer {
        serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), response).await
    }

    async fn read_request_head(sock: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn json_response(body: &str) -> Vec<u8> {
        response("200 OK", "Content-Type: application/json\r\n", body)
    }

    fn redirect_to(location: &str) -> Vec<u8> {
        response("302 Found", &format!("Location: {location}\r\n"), "")
    }

    fn setup(allow: &str) -> (reqwest::Client, Arc<UrlPolicy>) {
        let policy = Arc::new(UrlPolicy::parse(allow).unwrap());
        let c = client(Arc::clone(&policy), Duration::from_secs(5), 3);
        (c, policy)
    }

    /// Let any connection that was (wrongly) made reach `accept`.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn loopback_literal_refused_unless_allowlisted() {
        let server = serve(json_response(r#"{"name":"Ada"}"#)).await;
        let target = url(&format!("http://127.0.0.1:{}/", server.port()));

        let (c, p) = setup("");
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Refused(UrlRefused::NonPublicAddress { .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "refused: the address 127.0.0.1 is not a public address"
        );
        settle().await;
        assert_eq!(server.accepts(), 0);

        let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
        let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
        assert_eq!(value, serde_json::json!({"name": "Ada"}));
        assert_eq!(server.accepts(), 1);
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_refused_by_resolver() {
        let server = serve(json_response(r#"{"a":1}"#)).await;
        let target = url(&format!("http://localhost:{}/", server.port()));

        let (c, p) = setup("");
        // check_url lets the name through; the resolver refuses it.
        assert_eq!(check_url(&p, &target), Ok(()));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        match &err {
            FetchError::Refused(UrlRefused::NonPublicHost { host }) => {
                assert_eq!(host, "localhost")
            }
            other => panic!("expected a resolver refusal, got {other:?} ({other})"),
        }
        assert_eq!(
            err.to_string(),
            "refused: the host localhost resolves only to non-public addresses"
        );
        settle().await;
        assert_eq!(server.accepts(), 0);

        // Allowlisted on another port: refused by check_url.
        let (c, p) = setup(&format!(
            "localhost:{}",
            server.port().wrapping_add(1).max(1)
        ));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Refused(UrlRefused::PortNotAllowed { .. })),
            "{err:?}"
        );
        settle().await;
        assert_eq!(server.accepts(), 0);

        // Allowlisted name and port: fetched.
        let (c, p) = setup(&format!("localhost:{}", server.port()));
        let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
        assert_eq!(value, serde_json::json!({"a": 1}));
        assert_eq!(server.accepts(), 1);
    }

    #[tokio::test]
    async fn ipv6_loopback_and_mapped_refused() {
        let (c, p) = setup("");
        match TcpListener::bind("[::1]:0").await {
            Ok(listener) => {
                let server = serve_on(listener, json_response("{}")).await;
                let target = url(&format!("http://[::1]:{}/", server.port()));
                let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
                assert!(
                    matches!(
                        err,
                        FetchError::Refused(UrlRefused::NonPublicAddress { .. })
                    ),
                    "{err:?}"
                );
                settle().await;
                assert_eq!(server.accepts(), 0);
            }
            Err(_) => {
                // No IPv6 loopback here; the check alone must refuse it.
                assert!(check_url(&p, &url("http://[::1]:8080/")).is_err());
            }
        }

        let server = serve(json_response("{}")).await;
        let mapped = url(&format!("http://[::ffff:127.0.0.1]:{}/", server.port()));
        assert_eq!(
            check_url(&p, &mapped),
            Err(UrlRefused::NonPublicAddress {
                addr: "::ffff:127.0.0.1".parse().unwrap()
            })
        );
        let err = fetch_json(&c, &p, &mapped, 1024).await.unwrap_err();
        assert!(matches!(err, FetchError::Refused(_)), "{err:?}");
        settle().await;
        assert_eq!(server.accepts(), 0);
    }

    #[tokio::test]
    async fn redirect_to_non_allowlisted_address_refused() {
        let b = serve(json_response(r#"{"secret":true}"#)).await;
        let a = serve(redirect_to(&format!("http://127.0.0.1:{}/", b.port()))).await;

        let (c, p) = setup(&format!("127.0.0.1:{}", a.port()));
        let target = url(&format!("http://127.0.0.1:{}/", a.port()));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Refused(UrlRefused::NonPublicAddress { .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "refused: the address 127.0.0.1 is not a public address"
        );
        settle().await;
        assert_eq!(a.accepts(), 1);
        assert_eq!(b.accepts(), 0);

        // A redirect to a name that resolves to loopback: the resolver.
        let a2 = serve(redirect_to(&format!("http://localhost:{}/", b.port()))).await;
        let (c, p) = setup(&format!("127.0.0.1:{}", a2.port()));
        let target = url(&format!("http://127.0.0.1:{}/", a2.port()));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Refused(UrlRefused::NonPublicHost { .. })),
            "{err:?}"
        );
        settle().await;
        assert_eq!(b.accepts(), 0);

        // A redirect to a file: URL is not followed at all (reqwest hands
        // back the 3xx answer without asking the redirect policy).
        let a3 = serve(redirect_to("file:///etc/passwd")).await;
        let (c, p) = setup(&format!("127.0.0.1:{}", a3.port()));
        let target = url(&format!("http://127.0.0.1:{}/", a3.port()));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(matches!(err, FetchError::Status(302)), "{err:?}");
    }

    #[tokio::test]
    async fn allowed_redirect_followed_and_redirects_limited() {
        let b = serve(json_response(r#"{"ok":true}"#)).await;
        let a = serve(redirect_to(&format!("http://127.0.0.1:{}/", b.port()))).await;
        let (c, p) = setup(&format!("127.0.0.1:{}, 127.0.0.1:{}", a.port(), b.port()));
        let target = url(&format!("http://127.0.0.1:{}/", a.port()));
        let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
        assert_eq!(value, serde_json::json!({"ok": true}));
        assert_eq!((a.accepts(), b.accepts()), (1, 1));

        // A server redirecting to itself: max_redirects (3) hops, then stop.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lp = serve_on(
            listener,
            redirect_to(&format!("http://127.0.0.1:{port}/again")),
        )
        .await;
        let (c, p) = setup(&format!("127.0.0.1:{port}"));
        let err = fetch_json(&c, &p, &url(&format!("http://127.0.0.1:{port}/")), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooManyRedirects(3)), "{err:?}");
        assert_eq!(err.to_string(), "more than 3 redirects");
        assert_eq!(lp.accepts(), 4);
    }

    #[tokio::test]
    async fn declared_oversized_body_refused() {
        let big = "x".repeat(10_000);
        let server = serve(json_response(&format!("\"{big}\""))).await;
        let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
        let target = url(&format!("http://127.0.0.1:{}/", server.port()));
        let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { max: 1024 }), "{err:?}");
        assert_eq!(err.to_string(), "response larger than 1024 bytes");
    }

    #[tokio::test]
    async fn streamed_oversized_body_not_read_to_the_end() {
        // No Content-Length: the body runs until the server closes, and the
        // server would send 64 MiB. Count what it manages to write.
        const TOTAL: usize = 64 * 1024 * 1024;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<usize>();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            read_request_head(&mut sock).await;
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            sock.write_all(head).await.unwrap();
            let chunk = vec![b' '; 64 * 1024];
            let mut written = 0;
            while written < TOTAL {
                match sock.write_all(&chunk).await {
                    Ok(()) => written += chunk.len(),
                    Err(_) => break,
                }
            }
            let _ = done_tx.send(written);
        });

        let (c, p) = setup(&format!("127.0.0.1:{port}"));
        let target = url(&format!("http://127.0.0.1:{port}/"));
        let err = fetch_json(&c, &p, &target, 4096).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { max: 4096 }), "{err:?}");
        let written = tokio::time::timeout(Duration::from_secs(20), done_rx)
            .await
            .expect("server still writing: the client kept reading")
            .unwrap();
        assert!(written < TOTAL, "the whole body was read ({written} bytes)");
    }

    #[tokio::test]
    async fn error_messages_never_contain_the_body() {
        let secret = "TOP-SECRET-aws-key-AKIA1234";
        let not_json = serve(response(
            "200 OK",
            "Content-Type: text/html\r\n",
            &format!("<html>{secret}</html>"),
        ))
        .await;
        let failing = serve(response("500 Internal Server Error", "", secret)).await;
        let (c, p) = setup(&format!(
            "127.0.0.1:{}, 127.0.0.1:{}",
            not_json.port(),
            failing.port()
        ));

        let err = fetch_json(
            &c,
            &p,
            &url(&format!("http://127.0.0.1:{}/", not_json.port())),
            1024,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FetchError::NotJson { .. }), "{err:?}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert!(!format!("{err:?}").contains("SECRET"), "{err:?}");
        assert!(!err.to_string().contains("html"), "{err}");

        let err = fetch_json(
            &c,
            &p,
            &url(&format!("http://127.0.0.1:{}/", failing.port())),
            1024,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FetchError::Status(500)), "{err:?}");
        assert_eq!(err.to_string(), "HTTP status 500");
    }

    #[tokio::test]
    async fn timeouts_and_closed_ports_are_reported_plainly() {
        // Accepts, never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let policy = Arc::new(UrlPolicy::parse(&format!("127.0.0.1:{port}")).unwrap());
        let c = client(Arc::clone(&policy), Duration::from_millis(300), 3);
        let err = fetch_json(
            &c,
            &policy,
            &url(&format!("http://127.0.0.1:{port}/")),
            1024,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FetchError::Timeout), "{err:?}");
        assert_eq!(err.to_string(), "timed out");

        // A loopback port nobody listens on (allowlisted).
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let (c, p) = setup(&format!("127.0.0.1:{closed}"));
        let err = fetch_json(&c, &p, &url(&format!("http://127.0.0.1:{closed}/")), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Connect), "{err:?}");
        assert_eq!(err.to_string(), "could not connect");
    }

    #[tokio::test]
    async fn userinfo_and_other_schemes_refused_before_any_request() {
        let server = serve(json_response("{}")).await;
        let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
        for s in [
            format!("http://user:pass@127.0.0.1:{}/", server.port()),
            format!("http://user@127.0.0.1:{}/", server.port()),
            "file:///etc/passwd".to_string(),
            format!("ftp://127.0.0.1:{}/", server.port()),
        ] {
            let err = fetch_json(&c, &p, &url(&s), 1024).await.unwrap_err();
            assert!(matches!(err, FetchError::Refused(_)), "{s}: {err:?}");
        }
        settle().await;
        assert_eq!(server.accepts(), 0);
    }
}
