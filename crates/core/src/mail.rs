//! The text of every message Twofold sends. Operators change wording through templates in the
//! web layer; these are the plain-text bodies that go out by mail.

use crate::ports::{Mail, Sms};

pub struct Branding<'a> {
    pub product: &'a str,
    pub public_url: &'a str,
}

pub fn verify_email(b: &Branding<'_>, to: &str, token: &str) -> Mail {
    let link = format!("{}/verify-email?token={token}", b.public_url);
    Mail {
        to: to.to_owned(),
        subject: format!("Verify your email address for {}", b.product),
        text: format!(
            "Hello,\n\nPlease confirm that {to} is your email address by opening this link:\n\n{link}\n\n\
             The link is valid for 2 hours and works once.\n\n\
             If you did not sign up for {product}, you can ignore this message.\n",
            product = b.product
        ),
    }
}

pub fn signup_existing_account(b: &Branding<'_>, to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("Sign-up attempt for your {} account", b.product),
        text: format!(
            "Hello,\n\nSomeone tried to create a new {product} account with {to}, but you already \
             have one.\n\nSign in: {url}/login\nForgot your password? {url}/password-reset\n\n\
             If this was not you, you can ignore this message; nothing has changed.\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

pub fn password_reset(b: &Branding<'_>, to: &str, token: &str) -> Mail {
    let link = format!("{}/password-reset?token={token}", b.public_url);
    Mail {
        to: to.to_owned(),
        subject: format!("Reset your {} password", b.product),
        text: format!(
            "Hello,\n\nSomeone asked to reset the password of the {product} account for {to}. \
             To choose a new password, open this link:\n\n{link}\n\n\
             The link is valid for 1 hour and works once. Setting a new password signs you out \
             everywhere.\n\nIf you did not ask for this, ignore this message: your password \
             stays as it is.\n",
            product = b.product
        ),
    }
}

pub fn password_changed(b: &Branding<'_>, to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("Your {} password was changed", b.product),
        text: format!(
            "Hello,\n\nThe password of your {product} account ({to}) was just changed, and every \
             other session was signed out.\n\nIf this was not you, reset your password now: \
             {url}/password-reset\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

pub fn backup_code_used(b: &Branding<'_>, to: &str, remaining: u32) -> Mail {
    let warning = if remaining <= 3 {
        format!(
            "\nOnly {remaining} backup codes are left. Create a new set in Security settings: {}/account/security\n",
            b.public_url
        )
    } else {
        String::new()
    };
    Mail {
        to: to.to_owned(),
        subject: format!("A backup code was used for your {} account", b.product),
        text: format!(
            "Hello,\n\nA backup code was just used to sign in to your {product} account ({to}). \
             {remaining} unused codes remain.\n{warning}\nIf this was not you, reset your password \
             now: {url}/password-reset\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

pub fn second_step_failed(b: &Branding<'_>, to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("Someone may know your {} password", b.product),
        text: format!(
            "Hello,\n\nSomeone entered the correct password for your {product} account ({to}) but \
             did not complete the second step of sign-in. Your account is safe thanks to \
             two-factor authentication, but your password is probably known to someone else.\n\n\
             Change it now: {url}/password-reset\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

pub fn factor_changed(b: &Branding<'_>, to: &str, what: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("Your {} security settings changed", b.product),
        text: format!(
            "Hello,\n\n{what}\n\nAccount: {to}\n\nIf this was not you, reset your password now and \
             contact support: {url}/password-reset\n",
            url = b.public_url
        ),
    }
}

/// The text of a code by SMS. The last line is the WebOTP format, so browsers can offer to
/// fill the code in on our own origin only.
pub fn code_sms(b: &Branding<'_>, to: &str, code: &str, minutes: i64) -> Sms {
    let host = b
        .public_url
        .split("://")
        .nth(1)
        .unwrap_or(b.public_url)
        .split('/')
        .next()
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    Sms {
        to: to.to_owned(),
        text: format!(
            "{code} is your {product} code. It expires in {minutes} minutes. Never share it.\n\n@{host} #{code}",
            product = b.product
        ),
    }
}

/// A code by email; with `link_token`, also a link that approves the sign-in waiting in the
/// browser that asked for it.
pub fn code_email(
    b: &Branding<'_>,
    to: &str,
    code: &str,
    minutes: i64,
    link_token: Option<&str>,
) -> Mail {
    let link = link_token
        .map(|t| {
            format!(
                "\n\nOr approve the sign-in with this link (it signs in only the browser that is waiting):\n\n{}/login/email-link?token={t}",
                b.public_url
            )
        })
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: format!("Your {} code: {code}", b.product),
        text: format!(
            "Hello,\n\nYour {product} code is:\n\n    {code}\n\nIt expires in {minutes} minutes and works once.{link}\n\n\
             If you did not try to sign in, someone may know your password: change it at {url}/password-reset\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

/// To the new address: the link that makes it the account's address.
pub fn email_change_confirm(b: &Branding<'_>, to: &str, token: &str, hours: i64) -> Mail {
    let link = format!("{}/account/email/confirm?token={token}", b.public_url);
    Mail {
        to: to.to_owned(),
        subject: format!("Confirm your new email address for {}", b.product),
        text: format!(
            "Hello,\n\nSomeone asked to sign in to {product} with {to} from now on. If that was \
             you, confirm it by opening this link:\n\n{link}\n\n\
             The link is valid for {hours} hours and works once.\n\n\
             If you did not ask for this, ignore this message: nothing changes.\n",
            product = b.product
        ),
    }
}

/// To the current address, when a change to `new_email` is requested.
pub fn email_change_requested(b: &Branding<'_>, to: &str, new_email: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("A change of your {} email address was requested", b.product),
        text: format!(
            "Hello,\n\nSomeone signed in to your {product} account ({to}) asked to change its \
             address to {new_email}. It changes once the link we sent there is opened.\n\n\
             If this was not you, sign in and change your password now: {url}/account/security\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

/// To the old address, once the change is done.
pub fn email_changed(b: &Branding<'_>, to: &str, new_email: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: format!("Your {} email address was changed", b.product),
        text: format!(
            "Hello,\n\nYour {product} account now signs in with {new_email} instead of {to}, and \
             every other session was signed out. Links we mailed to {to} before no longer work.\n\n\
             If this was not you, contact support at once.\n",
            product = b.product
        ),
    }
}

/// A moment as people read it in mail: `1 December 2026, 10:53 UTC`.
pub fn when(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {} {}, {:02}:{:02} UTC",
        t.day(),
        t.month(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// The code that confirms a sign-in from a browser (or, with `new_network`, an IP network)
/// the account has not used before.
pub fn device_code(
    b: &Branding<'_>,
    to: &str,
    code: &str,
    minutes: i64,
    new_network: bool,
    ip: Option<&str>,
) -> Mail {
    let what = if new_network {
        "from a network you have not used before"
    } else {
        "on a browser or device you have not used before"
    };
    let from = ip
        .map(|ip| format!(" (IP address {ip})"))
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: format!("Confirm your sign-in to {}: {code}", b.product),
        text: format!(
            "Hello,\n\nSomeone signed in to your {product} account ({to}) with the right password, \
             {what}{from}. To continue, enter this code:\n\n    {code}\n\n\
             It expires in {minutes} minutes and works once.\n\n\
             If this was not you, do not share the code: someone knows your password. Change it \
             at {url}/password-reset\n",
            product = b.product,
            url = b.public_url
        ),
    }
}

/// After a sign-in from a new browser: when, from where, and a link that undoes it.
pub fn new_device_sign_in(
    b: &Branding<'_>,
    to: &str,
    when: &str,
    ip: Option<&str>,
    place: Option<&str>,
    browser: Option<&str>,
    report_token: &str,
) -> Mail {
    let link = format!("{}/login/report?token={report_token}", b.public_url);
    let place = place
        .map(|p| format!("Where:   {p} (approximate, from the IP address)\n"))
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: format!("New sign-in to your {} account", b.product),
        text: format!(
            "Hello,\n\nYour {product} account ({to}) was just signed in to from a new device.\n\n\
             When:    {when}\n{place}IP:      {ip}\nBrowser: {browser}\n\n\
             If this was you, there is nothing to do.\n\n\
             If this wasn't you, open this link: it signs out every session, forgets remembered \
             browsers and devices, and lets you choose a new password:\n\n{link}\n\n\
             The link works once, for 7 days.\n",
            product = b.product,
            ip = ip.unwrap_or("unknown"),
            browser = browser.unwrap_or("unknown"),
        ),
    }
}

/// `days` before the policy's deadline, to an owner who has not set up 2FA yet.
pub fn two_factor_reminder(b: &Branding<'_>, to: &str, days: i64, deadline: &str) -> Mail {
    let when = if days == 1 {
        "tomorrow".to_owned()
    } else {
        format!("in {days} days")
    };
    Mail {
        to: to.to_owned(),
        subject: format!("Two-step verification will be required {when}"),
        text: format!(
            "Hello,\n\nFrom {deadline}, signing in to your {product} account ({to}) will need a \
             second step: a code from an authenticator app, a security key or passkey, or a code \
             sent to you.\n\nSet it up now, in two minutes: {url}/account/security\n\n\
             If you have not set it up by then, we will ask you to do it at your next sign-in.\n",
            product = b.product,
            url = b.public_url
        ),
    }
}
