//! Known devices and networks: whether a correct password from this browser and this address
//! may go on, or must first be confirmed with a code sent by email. Pure functions of the
//! settings, the account's switch and what the store knows, so every case is a unit test.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSettings {
    /// A correct password from a browser this account has not used before needs an emailed
    /// code before anything else, even without 2FA.
    pub verify: bool,
    /// The same for a known browser on an IP network this account has not used (operators can
    /// turn this off per account: `twofold user set EMAIL --ip-verification off`).
    pub verify_networks: bool,
    /// The network of an IPv4 address: its first `ipv4_prefix` bits (24: 203.0.113.0/24).
    pub ipv4_prefix: u8,
    /// The network of an IPv6 address (48: a site's usual allocation).
    pub ipv6_prefix: u8,
    /// Mail the owner on every sign-in from a new device, with a "this wasn't me" link.
    pub notify: bool,
    /// A MaxMind DB file (GeoLite2-City, GeoIP2-City or a Country edition): new-device mails
    /// then name the approximate place. Read once at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geoip_database: Option<std::path::PathBuf>,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            verify: true,
            verify_networks: true,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            notify: true,
            geoip_database: None,
        }
    }
}

impl DeviceSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(8..=32).contains(&self.ipv4_prefix) {
            return Err("devices.ipv4_prefix must be 8 to 32".into());
        }
        if !(16..=128).contains(&self.ipv6_prefix) {
            return Err("devices.ipv6_prefix must be 16 to 128".into());
        }
        Ok(())
    }

    /// The network `ip` belongs to, as `203.0.113.0/24`. IPv4 addresses written as IPv6
    /// (`::ffff:203.0.113.9`) count as IPv4, so a dual-stack listener does not make every
    /// address look new.
    pub fn network_of(&self, ip: IpAddr) -> String {
        let ip = ip.to_canonical();
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        };
        match IpNet::new(ip, prefix) {
            Ok(net) => net.trunc().to_string(),
            // Unreachable with the clamped prefix; the full address is the safe fallback.
            Err(_) => ip.to_string(),
        }
    }
}

/// How long a browser or network stays known without a sign-in from it: the device cookie's
/// lifetime (browsers keep a cookie at most 400 days), which every sign-in renews.
pub const KNOWN_DEVICE_LIFETIME: time::Duration = time::Duration::days(400);

/// Known browsers (and networks) kept per account, the most recently seen: a client that
/// drops its cookie is a new browser at every sign-in, and its records must not pile up.
pub const KNOWN_PER_ACCOUNT: u32 = 100;

/// What the store knows about this sign-in's browser and network for the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub device: bool,
    /// `None` when the request had no address (nothing to compare).
    pub network: Option<bool>,
    /// When the known ones of the two were last recorded (the older time when both are);
    /// `None` when neither is known.
    pub recorded_at: Option<time::OffsetDateTime>,
}

/// Why a sign-in must be confirmed by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfamiliar {
    Device,
    Network,
}

impl Unfamiliar {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "new_device",
            Self::Network => "new_network",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "new_network" => Self::Network,
            _ => Self::Device,
        }
    }
}

/// Whether a correct password must be followed by an emailed code, and why.
/// `ip_verification` is the account's own switch (on unless an operator turned it off).
pub fn verification_needed(
    settings: &DeviceSettings,
    ip_verification: bool,
    seen: Seen,
) -> Option<Unfamiliar> {
    if !settings.verify {
        return None;
    }
    if !seen.device {
        return Some(Unfamiliar::Device);
    }
    if settings.verify_networks && ip_verification && seen.network == Some(false) {
        return Some(Unfamiliar::Network);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_prefixes() {
        let s = DeviceSettings::default();
        assert_eq!(s.network_of(ip("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(s.network_of(ip("::ffff:203.0.113.77")), "203.0.113.0/24");
        assert_eq!(
            s.network_of(ip("2001:db8:abcd:12::1")),
            "2001:db8:abcd::/48"
        );
        let wide = DeviceSettings {
            ipv4_prefix: 16,
            ipv6_prefix: 64,
            ..s
        };
        assert_eq!(wide.network_of(ip("203.0.113.77")), "203.0.0.0/16");
        assert_eq!(
            wide.network_of(ip("2001:db8:abcd:12::1")),
            "2001:db8:abcd:12::/64"
        );
    }

    #[test]
    fn unknown_device_comes_first_then_network() {
        let s = DeviceSettings::default();
        let seen = |device, network| Seen {
            device,
            network,
            recorded_at: None,
        };
        assert_eq!(
            verification_needed(&s, true, seen(false, Some(true))),
            Some(Unfamiliar::Device)
        );
        // The per-account switch covers networks only: a new browser still needs the code.
        assert_eq!(
            verification_needed(&s, false, seen(false, Some(false))),
            Some(Unfamiliar::Device)
        );
        assert_eq!(
            verification_needed(&s, true, seen(true, Some(false))),
            Some(Unfamiliar::Network)
        );
        assert_eq!(
            verification_needed(&s, false, seen(true, Some(false))),
            None
        );
        assert_eq!(verification_needed(&s, true, seen(true, Some(true))), None);
        assert_eq!(verification_needed(&s, true, seen(true, None)), None);
    }

    #[test]
    fn switches_turn_it_off() {
        let off = DeviceSettings {
            verify: false,
            ..Default::default()
        };
        let seen = Seen {
            device: false,
            network: Some(false),
            recorded_at: None,
        };
        assert_eq!(verification_needed(&off, true, seen), None);
        let devices_only = DeviceSettings {
            verify_networks: false,
            ..Default::default()
        };
        let known = Seen {
            device: true,
            network: Some(false),
            recorded_at: None,
        };
        assert_eq!(verification_needed(&devices_only, true, known), None);
    }

    #[test]
    fn validation() {
        assert!(DeviceSettings::default().validate().is_ok());
        for bad in [
            DeviceSettings {
                ipv4_prefix: 33,
                ..Default::default()
            },
            DeviceSettings {
                ipv6_prefix: 8,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
