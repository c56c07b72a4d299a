//! The stall service's configuration section (`stall.*`), read into typed settings.

use std::net::SocketAddr;
use std::time::Duration;

use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

pub const SECTION: Section = Section {
    name: "stall",
    shared: &[],
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50056",
            "stall gRPC address (sign-in links, sound boxes)",
        ),
        Key::new(
            "page_listen",
            Kind::Addr,
            "127.0.0.1:8090",
            "the HTTP address of the vendors' stall page",
        ),
        Key::new(
            "public_url",
            Kind::Str,
            "",
            "the stall page's address as vendors' phones reach it (e.g. https://stall.example.vn), used in sign-in links; empty: http://{page_listen}",
        ),
        Key::new(
            "merchant_addr",
            Kind::Str,
            "127.0.0.1:50052",
            "the merchant service vendors are looked up in (host:port or http://host:port)",
        ),
        Key::new(
            "payment_addr",
            Kind::Str,
            "127.0.0.1:50053",
            "the payment service whose stream the page and the sound boxes follow (host:port or http://host:port)",
        ),
        Key::new(
            "link_ttl_ms",
            Kind::Uint(60_000, 86_400_000),
            "900000",
            "how long a sign-in link may be opened (once)",
        ),
        Key::new(
            "session_ttl_ms",
            Kind::Uint(60_000, 2_592_000_000),
            "43200000",
            "how long a stall page session lasts (a market day)",
        ),
        Key::new(
            "cookie_secure",
            Kind::Uint(0, 1),
            "0",
            "1: the session cookie is sent over HTTPS only (set it when public_url is https://)",
        ),
        Key::new(
            "status_check_ms",
            Kind::Uint(1_000, 600_000),
            "10000",
            "how often an open page checks that its vendor is still ACTIVE (a suspension ends her sessions)",
        ),
        Key::new(
            "mqtt_url",
            Kind::Str,
            "",
            "the MQTT broker sound boxes subscribe to, mqtt://host:port; empty: sound boxes are not published to",
        ),
        Key::new(
            "mqtt_poll_ms",
            Kind::Uint(100, 60_000),
            "1000",
            "how often the sound-box publisher looks for vendors whose boxes were added or removed",
        ),
    ],
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub page_listen: SocketAddr,
    /// Empty: `http://{bound page address}`.
    pub public_url: String,
    pub link_ttl: Duration,
    pub session_ttl: Duration,
    pub cookie_secure: bool,
    pub status_check: Duration,
    pub mqtt_url: Option<String>,
    pub mqtt_poll: Duration,
}

impl Settings {
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let public_url = s
            .text("public_url")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let web = public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url.is_empty() && !web {
            return Err(s.invalid("public_url", "must start with http:// or https://"));
        }
        let mqtt_url = s.text("mqtt_url")?.trim().to_owned();
        if !mqtt_url.is_empty() && !mqtt_url.starts_with("mqtt://") {
            return Err(s.invalid("mqtt_url", "must be mqtt://host:port"));
        }
        Ok(Settings {
            page_listen: s.addr("page_listen")?,
            public_url,
            link_ttl: s.millis("link_ttl_ms")?,
            session_ttl: s.millis("session_ttl_ms")?,
            cookie_secure: s.uint("cookie_secure")? == 1,
            status_check: s.millis("status_check_ms")?,
            mqtt_url: (!mqtt_url.is_empty()).then_some(mqtt_url),
            mqtt_poll: s.millis("mqtt_poll_ms")?,
        })
    }
}
