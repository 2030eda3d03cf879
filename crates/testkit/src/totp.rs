//! Codes from an independent TOTP implementation (Debian's `oathtool`), and small HTML helpers
//! for driving the pages.

use std::process::Command;
use time::OffsetDateTime;

/// The 6-digit code `oathtool` computes for a base32 secret at `at`.
pub fn oathtool_code(secret_base32: &str, at: OffsetDateTime) -> String {
    let secret: String = secret_base32
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now"])
        .arg(format!("@{}", at.unix_timestamp()))
        .arg(&secret)
        .output()
        .expect("oathtool is needed for these tests: apt-get install oathtool");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The text of the element with `id="…"` (first occurrence), tags stripped.
pub fn text_of_id(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let at = html.find(&marker)?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_owned())
}

/// Backup codes listed on the backup-codes page.
pub fn backup_codes_of(html: &str) -> Vec<String> {
    html.split("<li><code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .map(str::to_owned)
        .collect()
}

/// Where a "Returning you to …" page hands the browser (the `data-continue` link), unescaped.
pub fn handed_back(html: &str) -> Option<String> {
    let start = html.find("data-continue href=\"")? + "data-continue href=\"".len();
    let end = html[start..].find('"')? + start;
    // minijinja escapes `&`, quotes and `/`; a browser reads them back.
    let text = html[start..end]
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(text)
}
