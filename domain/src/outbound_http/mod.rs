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
mod tests;
