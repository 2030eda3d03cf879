//! Page templates: built into the binary, each overridable by a file of the same name in the
//! operator's templates directory.

use minijinja::{Environment, Value};
use std::path::PathBuf;

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(
    "base.html",
    "message.html",
    "signup.html",
    "login.html",
    "verify_email.html",
    "account.html",
    "security.html",
    "logout.html",
    "password_reset_request.html",
    "password_reset_form.html",
    "second_factor.html",
    "step_up.html",
    "totp_enroll.html",
    "backup_codes.html",
    "code_factor_new.html",
    "code_factor_confirm.html",
    "email_link.html",
    "add_methods.html",
    "enroll_required.html",
    "remote_session.html",
    "device_verify.html",
    "report_sign_in.html",
    "email_change_confirm.html",
    "continue.html",
    "oidc_consent.html",
    "oidc_logout.html",
    "api_docs.html",
    "admin_home.html",
    "admin_account.html",
    "admin_audit.html",
    "admin_stats.html",
    "admin_api_keys.html",
);

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new(override_dir: Option<PathBuf>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_loader(move |name: &str| {
            if let Some(dir) = &override_dir {
                // Only plain names: a template name must never walk out of the directory.
                if name.contains('/') || name.contains('\\') || name.starts_with('.') {
                    return Ok(None);
                }
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read template {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, src)| (*src).to_owned()))
        });
        // Load every template once at start, so a broken override fails startup, not a request.
        for (name, _) in BUILTIN {
            env.get_template(name)
                .map_err(|e| format!("template {name}: {e:#}"))?;
        }
        Ok(Self { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn builtin_templates_render_and_escape() {
        let t = Templates::new(None).unwrap();
        let html = t
            .render(
                "message.html",
                context! { title => "<script>x</script>", brand => context!{ product_name => "T", accent_color => "#123456" } },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>x"));
    }

    #[test]
    fn override_directory_wins() {
        let dir = std::env::temp_dir().join(format!("twofold-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("message.html"), "custom {{ title }}").unwrap();
        let t = Templates::new(Some(dir.clone())).unwrap();
        assert_eq!(
            t.render("message.html", context! { title => "x" }).unwrap(),
            "custom x"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
