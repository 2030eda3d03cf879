//! Phone numbers for the `sms` factor: parsed and validated with the `phonenumber` crate
//! (Google's libphonenumber metadata), stored in E.164, shown masked.

use crate::error::CoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// `+` and digits, e.g. `+14155550123`.
    pub e164: String,
    /// ISO 3166-1 alpha-2 region (`US`), when the number maps to one.
    pub country: Option<String>,
}

/// Accepts international numbers only (`+` and the country code), with spaces, dots, dashes or
/// brackets between digits, and refuses numbers that cannot exist (wrong length for the region).
pub fn parse(input: &str) -> Result<Phone, CoreError> {
    let trimmed = input.trim();
    if !trimmed.starts_with('+') || trimmed.len() > 32 {
        return Err(CoreError::invalid(
            "phone",
            "enter the number in international format, starting with + and the country code",
        ));
    }
    let number = phonenumber::parse(None, trimmed)
        .map_err(|_| CoreError::invalid("phone", "this is not a valid phone number"))?;
    if !phonenumber::is_valid(&number) {
        return Err(CoreError::invalid(
            "phone",
            "this is not a valid phone number",
        ));
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    let country = number.country().id().map(|id| id.as_ref().to_string());
    Ok(Phone { e164, country })
}

/// `+1 ••• ••• 8318`: the country code and the last four digits, nothing else.
pub fn mask(e164: &str) -> String {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    let last4 = &digits[digits.len().saturating_sub(4)..];
    match phonenumber::parse(None, e164) {
        Ok(n) => format!("+{} ••• ••• {last4}", n.code().value()),
        Err(_) => format!("••• {last4}"),
    }
}

/// `j•••@example.com`: enough to recognise one's own address, not to harvest it.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_to_e164_with_country() {
        let p = parse("+1 (415) 555-0132").expect("valid");
        assert_eq!(p.e164, "+14155550132");
        assert_eq!(p.country.as_deref(), Some("US"));
        let p = parse("+49 30 901820").expect("valid");
        assert_eq!(p.e164, "+4930901820");
        assert_eq!(p.country.as_deref(), Some("DE"));
    }

    #[test]
    fn refuses_national_and_impossible_numbers() {
        assert!(parse("415 555 0132").is_err());
        assert!(parse("+1 415").is_err());
        assert!(parse("+999 1234567").is_err());
        assert!(parse("+1 415 555 0132 ext 99999999999999999999").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn masks_all_but_country_code_and_last_four() {
        assert_eq!(mask("+14155558318"), "+1 ••• ••• 8318");
        assert_eq!(mask("+4930901820"), "+49 ••• ••• 1820");
        assert_eq!(mask_email("jane@example.com"), "j•••@example.com");
    }
}
