"""The one PDF renderer: Jinja template → WeasyPrint → PDF bytes.

Every PDF of the app comes from `render()` or `render_html()` (one document); the
committee report joins documents rendered in parts (services.reports). Every render
uses:

- one FontConfiguration per process (a new one per document grows memory
  from 150 MB to 560 MB over 100 documents);
- the print stylesheet static/css/pdf.css (A4, the CJK font stack, the running
  header with the title and the 第 N 页 / 共 M 页 footer);
- `SafeFetcher`, which lets WeasyPrint load `data:` URLs and the app's own
  static files and nothing else (no file://, no network, no redirects).

User text reaches the HTML only through Jinja's autoescaping.
"""
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import make_response, render_template, send_file
from flask_babel import gettext as _
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from models.customers import INDUSTRIES, NATURES
from services.formatting import translated

STATIC_DIR = (Path(__file__).resolve().parent.parent / "static").resolve()
# The base URL of every document: relative links resolve inside static/.
BASE_URL = STATIC_DIR.as_uri() + "/"
STYLESHEET = STATIC_DIR / "css" / "pdf.css"
UA_STYLESHEET = STATIC_DIR / "css" / "pdf-ua.css"

_lock = threading.Lock()
_font_config = None
_stylesheets = {}


class RefusedURL(ValueError):
    """The document named a URL the renderer does not fetch."""


class SafeFetcher(URLFetcher):
    """Fetch `data:` URLs and files under static/; refuse everything else.

    Redirects are off and no network or other file is ever opened. Refusals
    are remembered in `refused` (tests and logs read them).
    """

    def __init__(self):
        super().__init__(allowed_protocols={"data", "file"}, allow_redirects=False,
                         timeout=2)
        self.refused = []

    def fetch(self, url, headers=None):
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return super().fetch(url, headers)
        if scheme == "file":
            path = _static_path(url)
            if path is not None:
                return URLFetcherResponse(path.as_uri(), body=path.read_bytes(),
                                          headers={"Content-Type": _content_type(path)})
        self.refused.append(url)
        raise RefusedURL(f"refused: {url}")


def _static_path(url):
    """The file under static/ that `url` names, or None (outside, missing, a symlink out)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    try:
        path = Path(unquote(parts.path)).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_file() or not path.is_relative_to(STATIC_DIR):
        return None
    return path


def _content_type(path):
    return {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
            ".woff2": "font/woff2", ".otf": "font/otf", ".ttf": "font/ttf"}.get(
        path.suffix.lower(), "application/octet-stream")


def font_config():
    """The process's one FontConfiguration."""
    global _font_config
    with _lock:
        if _font_config is None:
            _font_config = FontConfiguration()
        return _font_config


def _parsed(path):
    """The stylesheet at `path`, parsed once per process."""
    config = font_config()
    with _lock:
        if path not in _stylesheets:
            _stylesheets[path] = CSS(filename=str(path), font_config=config,
                                     url_fetcher=SafeFetcher())
        return _stylesheets[path]


def _base_stylesheet():
    """static/css/pdf.css."""
    return _parsed(STYLESHEET)


def _small_ua_stylesheet():
    """static/css/pdf-ua.css: the cascade with WeasyPrint's full HTML5 user-agent
    stylesheet costs more than a whole sheet's layout."""
    return _parsed(UA_STYLESHEET)


class _HTML(HTML):
    """WeasyPrint's HTML with our small user-agent stylesheet."""

    def _ua_stylesheets(self, forms=False):
        return [_small_ua_stylesheet()]


def css_string(text):
    """`text` as a CSS string literal (quotes, backslashes and newlines escaped)."""
    out = []
    for char in str(text):
        if char in '"\\<>&' or ord(char) < 0x20 or char == "\x7f":
            out.append(f"\\{ord(char):x} ")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def page_counter_css(total_pages=None):
    """The CSS `content` of the footer: 第 N 页 / 共 M 页 in the user's language.

    M is the document's own page count, or `total_pages` for the pages of a longer
    document (whose first page number base.html sets from `first_page`).
    """
    marker_page, marker_pages = "\x01P\x01", "\x01T\x01"
    text = _("Page %(page)s of %(pages)s", page=marker_page, pages=marker_pages)
    pages = "counter(pages)" if total_pages is None else css_string(total_pages)
    pieces = []
    for i, chunk in enumerate(text.split(marker_page)):
        if i:
            pieces.append("counter(page)")
        for j, sub in enumerate(chunk.split(marker_pages)):
            if j:
                pieces.append(pages)
            if sub:
                pieces.append(css_string(sub))
    return " ".join(pieces) or '""'


def html_document(template_name, **context):
    """The HTML of a PDF template, for tests and for the renderer."""
    context.setdefault("page_counter", page_counter_css())
    context.setdefault("css_string", css_string)
    context.setdefault("natures", translated(NATURES))
    context.setdefault("industries", translated(INDUSTRIES))
    return render_template(template_name, **context)


def render(template_name, fetcher=None, **context):
    """Render `template_name` (under templates/pdf/) with `context` to PDF bytes."""
    return render_html(html_document(template_name, **context), fetcher=fetcher)


def render_html(html, fetcher=None):
    """PDF bytes of an HTML string, through the safe fetcher and the shared fonts."""
    return laid_out(html, fetcher).write_pdf(uncompressed_pdf=False)


def laid_out(html, fetcher=None):
    """The WeasyPrint document of an HTML string, laid out in pages (its `.pages`,
    each with the `anchors` it holds), ready for `write_pdf()`."""
    document = _HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher or SafeFetcher())
    return document.render(stylesheets=[_base_stylesheet()], font_config=font_config())


def pdf_response(data, filename):
    """PDF bytes, or a PDF file (a Path: sent from disk as it is read, never whole in
    memory), as a download that is never cached."""
    if isinstance(data, Path):
        response = send_file(data, mimetype="application/pdf", conditional=False)
    else:
        response = make_response(data)
        response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
