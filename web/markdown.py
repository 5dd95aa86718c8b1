"""Model cards: Markdown rendered to HTML, then sanitised with an allow-list (nh3).

An uploaded README is untrusted: only formatting tags survive, links may only be
http(s)/mailto and get ``rel="noopener noreferrer nofollow"``, and images are dropped so
that a page never loads anything from another host.
"""

from __future__ import annotations

import markdown as md
import nh3

from hub.cards import split_front_matter

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}


def render_card(text: str) -> str:
    """Safe HTML for a README (YAML front matter, which the hub reads as card fields, removed)."""
    _, body = split_front_matter(text or "")
    html = md.markdown(body, extensions=["fenced_code", "tables", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
