//! `GET /`: the operator's dashboard, one self-contained page compiled into the binary.
//!
//! The page holds no data: it fetches `/regions/status` and `/metrics` itself, with the
//! admin token it was given in its URL fragment (or a form), so it is served without the
//! token. Its Content-Security-Policy allows only its own inline script and style (by
//! hash) and fetches to this listener, so nothing it holds can be sent anywhere else.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const PAGE: &str = include_str!("dashboard.html");
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The text between `<{tag}>` and `</{tag}>`: the page's one inline block of that kind.
fn inline_block<'a>(page: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = page.find(&open)? + open.len();
    let len = page[start..].find(&format!("</{tag}>"))?;
    Some(&page[start..start + len])
}

fn csp_hash(block: &str) -> String {
    let digest = Sha256::digest(block.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn policy(page: &str) -> String {
    let hash = |tag| inline_block(page, tag).map_or_else(|| "'none'".to_string(), csp_hash);
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash("script"),
        hash("style")
    )
}

/// Headers the page is served with, besides content-type and cache-control.
pub fn headers() -> [(&'static str, &'static str); 4] {
    static CSP: OnceLock<String> = OnceLock::new();
    [
        (
            "content-security-policy",
            CSP.get_or_init(|| policy(PAGE)).as_str(),
        ),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_pages_own_script_and_style() {
        let page = "<style>a{}</style><script>go()</script>";
        let p = policy(page);
        assert!(p.contains(&csp_hash("go()")), "{p}");
        assert!(p.contains(&csp_hash("a{}")), "{p}");
        assert!(policy("<p>none</p>").contains("script-src 'none'"));
    }

    #[test]
    fn the_page_has_one_script_and_one_style_and_loads_nothing_from_elsewhere() {
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert!(inline_block(PAGE, "script").is_some_and(|s| s.contains("fetch(")));
        // The SVG namespace is a name, not a fetch; any other absolute URL would be one.
        let urls = PAGE.matches("http://").count() + PAGE.matches("https://").count();
        assert_eq!(urls, PAGE.matches("http://www.w3.org/2000/svg").count());
        assert!(!PAGE.contains("src=") && !PAGE.contains("<link"));
    }
}
