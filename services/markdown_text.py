"""Markdown the users write (policy terms), rendered to HTML that is safe to show.

Python-Markdown turns the text into HTML, raw HTML included; nh3 (the Ammonia
sanitiser) then keeps only the tags and attributes below, so a script, an event
handler or a javascript: link never reaches the page.
"""
import markdown
import nh3
from markupsafe import Markup

TAGS = {"p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote", "code", "pre",
        "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr", "a"}
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}


def render(text):
    """Sanitised HTML of the Markdown `text`, as Markup for templates."""
    html = markdown.markdown(text or "", extensions=["tables", "sane_lists"],
                             output_format="html")
    clean = nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES,
                      url_schemes={"http", "https", "mailto"},
                      link_rel="noopener noreferrer nofollow")
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
