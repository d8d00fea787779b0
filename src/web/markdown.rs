//! A skill's Markdown body as HTML that is safe to show: skill bodies are written by
//! anyone who may push, so raw HTML in them is shown as text (never passed through),
//! and links or images whose address is not `http(s)`, `mailto`, relative or an
//! anchor lose it (`javascript:`, `data:`, `vbscript:` ...). pulldown-cmark escapes
//! text and attribute values itself; with no raw HTML and no unsafe address, nothing
//! in a body can run.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// `markdown` rendered to HTML with raw HTML escaped and unsafe addresses removed.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // Raw HTML becomes visible text.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `url` when its scheme is one a page may follow, else an empty address.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    // Browsers ignore ASCII whitespace and control characters inside a scheme
    // (`java\tscript:`), so those are dropped before looking at it.
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme = squeezed
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        None => url, // relative, or an anchor
        Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_renders_and_nothing_in_it_can_run() {
        let html = render(
            "# Title\n\nSome *text* and a [link](https://example.com).\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>text</em>"));
        assert!(html.contains("<a href=\"https://example.com\">link</a>"));
        assert!(html.contains("<table>"));

        let hostile = "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\nInline <b onclick=\"x()\">b</b> \
                       [a](javascript:alert(3)) [b](JaVa%09ScRiPt:alert(4)) [b2]( JAVASCRIPT:alert(7)) [c](data:text/html,<script>alert(5)</script>) \
                       ![i](vbscript:x) [ok](/skills/x#top) [m](mailto:a@b.c) <a href=\"javascript:alert(6)\">raw</a>\n";
        let html = render(hostile);
        // (Escaped text may still spell these out; only real tags count.)
        for bad in [
            "<script",
            "<img src=x",
            "<b onclick",
            "<a href=\"javascript",
            "<a href=\"data:",
            "<img src=\"vbscript",
        ] {
            assert!(
                !html.to_lowercase().contains(&bad.to_lowercase()),
                "`{bad}` in {html}"
            );
        }
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("href=\"/skills/x#top\""));
        assert!(html.contains("href=\"mailto:a@b.c\""));
    }
}
