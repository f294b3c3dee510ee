//! The pages' one layout and the escaping every user-controlled string goes
//! through. The style sheet is inline: the binary serves everything a page
//! needs, so the dashboard works without any other host.

use axum::response::Html;

/// `text` safe to write into HTML text and into quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330}\
header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#1d2330;color:#fff}\
header a{color:#fff;text-decoration:none;font-weight:600}header form{margin-left:auto}\
main{padding:1em 1.2em}table{border-collapse:collapse}th,td{padding:.35em .7em;border-bottom:1px solid #dde;\
text-align:left;vertical-align:top}td.cell code{font-size:13px}.muted{color:#778}.sync-drift,.problem{color:#b00020}\
.sync-pending{color:#a66a00}.sync-synced{color:#1a7f37}input{font:inherit;padding:.3em}";

/// A whole page: `title`, the signed-in subject (with a sign-out button) and `body` (already HTML).
pub fn page(title: &str, subject: Option<&str>, body: &str) -> Html<String> {
    let who = subject
        .map(|s| {
            format!(
                "<span>{}</span><form method=\"post\" action=\"/logout\"><button>Sign out</button></form>",
                escape(s)
            )
        })
        .unwrap_or_default();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · flowgate</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\n<body>\
         <header><a href=\"/\">flowgate</a>{who}</header>\n<main>\n{body}</main></body></html>\n",
        escape(title)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = page("<b>", Some("<i>"), "").0;
        assert!(page.contains("&lt;b&gt; · flowgate") && page.contains("<span>&lt;i&gt;</span>"), "{page}");
    }
}
