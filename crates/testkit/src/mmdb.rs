//! Writes a tiny MaxMind DB file (format 2.0) for tests: one IPv4 network mapped to a city
//! and country, in the layout of GeoIP2-City. Real GeoIP databases cannot be shipped with the
//! tests (licence and size), and the reader under test must see the real binary format.

use std::net::Ipv4Addr;

/// A data-section value, encoded as the MaxMind DB spec describes.
enum V<'a> {
    Str(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, V<'a>)>),
    Array(Vec<V<'a>>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (head, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        _ => {
            let s = size - 285;
            (30, vec![(s >> 8) as u8, s as u8])
        }
    };
    if kind <= 7 {
        out.push((kind << 5) | head);
    } else {
        out.push(head);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend(&bytes[skip..]);
}

fn encode(out: &mut Vec<u8>, v: &V<'_>) {
    match v {
        V::Str(s) => {
            control(out, 2, s.len());
            out.extend(s.as_bytes());
        }
        V::U16(n) => uint(out, 5, u64::from(*n)),
        V::U32(n) => uint(out, 6, u64::from(*n)),
        V::U64(n) => uint(out, 9, *n),
        V::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &V::Str(k));
                encode(out, v);
            }
        }
        V::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

fn names(en: &str) -> V<'_> {
    V::Map(vec![("names", V::Map(vec![("en", V::Str(en))]))])
}

/// A database in which `network/prefix` is in `city`, `country` (ISO code `iso`) and every
/// other address is unknown.
pub fn city_database(
    network: Ipv4Addr,
    prefix: u8,
    city: &str,
    country: &str,
    iso: &str,
) -> Vec<u8> {
    let node_count = u32::from(prefix);
    let bits = u32::from(network);
    let record = |v: u32| [(v >> 16) as u8, (v >> 8) as u8, v as u8];
    let mut out = Vec::new();
    for i in 0..node_count {
        let bit = (bits >> (31 - i)) & 1;
        let next = if i + 1 < node_count {
            i + 1
        } else {
            node_count + 16
        };
        let (left, right) = if bit == 0 {
            (next, node_count)
        } else {
            (node_count, next)
        };
        out.extend(record(left));
        out.extend(record(right));
    }
    out.extend([0u8; 16]);
    let mut country_map = vec![("iso_code", V::Str(iso))];
    if let V::Map(n) = names(country) {
        country_map.extend(n);
    }
    encode(
        &mut out,
        &V::Map(vec![
            ("city", names(city)),
            ("country", V::Map(country_map)),
        ]),
    );
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &V::Map(vec![
            ("binary_format_major_version", V::U16(2)),
            ("binary_format_minor_version", V::U16(0)),
            ("build_epoch", V::U64(1_764_547_200)),
            ("database_type", V::Str("Twofold-Test-City")),
            ("description", V::Map(vec![("en", V::Str("test fixture"))])),
            ("ip_version", V::U16(4)),
            ("languages", V::Array(vec![V::Str("en")])),
            ("node_count", V::U32(node_count)),
            ("record_size", V::U16(24)),
        ]),
    );
    out
}
