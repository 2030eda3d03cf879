//! The approximate place of an IP address, from a MaxMind DB file (GeoLite2 or GeoIP2 City or
//! Country) the operator configures. Optional: without one, mails say only the address.
//! The binary reads the file; this module only parses bytes, so the core stays free of I/O.

use maxminddb::{Reader, geoip2};
use std::net::IpAddr;

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl GeoIp {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        Reader::from_source(bytes)
            .map(|reader| Self { reader })
            .map_err(|e| format!("not a MaxMind DB file: {e}"))
    }

    /// `Berlin, Germany`, or the country alone, or `None` when the database does not know.
    pub fn place(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let city: geoip2::City<'_> = found.decode().ok()??;
        let country = city.country.names.english;
        match (city.city.names.english, country) {
            (Some(c), Some(k)) => Some(format!("{c}, {k}")),
            (None, Some(k)) => Some(k.to_owned()),
            (Some(c), None) => Some(c.to_owned()),
            (None, None) => None,
        }
    }
}
