//! `trusted_proxies`: each entry is an address or a CIDR range. A bare address (as the README
//! and the example configuration write them) is the range of just that address, /32 or /128.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

/// One entry: `10.0.0.0/8`, `127.0.0.1` or `::1`.
pub fn parse(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("trusted_proxies: {entry:?} is neither an IP address nor a CIDR range such as 10.0.0.0/8")
        })
}

/// For `#[serde(deserialize_with)]` on the list.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|e| parse(e).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::config::{Overrides, Settings};

    #[test]
    fn addresses_are_single_address_ranges() {
        assert_eq!(parse("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        let err = parse("proxy.internal").unwrap_err();
        assert!(err.contains("\"proxy.internal\""), "{err}");
        assert!(parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_file_takes_addresses_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofold.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), &Overrides::default()).unwrap();
        let got: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        // `config check` prints them back in a form the file accepts.
        let printed = s.redacted_toml().unwrap();
        assert!(printed.contains("\"127.0.0.1/32\""), "{printed}");

        std::fs::write(&path, "trusted_proxies = [\"127.0.0.1\", \"nginx\"]\n").unwrap();
        let err = Settings::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("\"nginx\""), "{err:#}");
    }
}
