"""The seller's Markdown description as safe HTML, for the preview, the product page and the store sync."""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

import markdown as markdown_lib
import nh3


DESCRIPTION_TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre",
    "blockquote", "a", "table", "thead", "tbody", "tr", "th", "td",
}


RENDERED_KEEP = 512  # descriptions whose HTML this process keeps, most recently used first
_rendered: OrderedDict[bytes, str] = OrderedDict()
_rendered_lock = threading.Lock()


def render_description(description_md: str) -> str:
    """The seller's Markdown as safe HTML: the one rendering used by the preview and the product page.

    Headings start at h2 (the page owns h1); raw HTML is reduced to the allowed tags; links get
    rel="nofollow noopener noreferrer" and only web or mail schemes. The output depends on the text
    alone, so it is kept by a digest of the text: a product page does not parse and clean the same
    Markdown again on every request.
    """
    text = description_md or ""
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    with _rendered_lock:
        html = _rendered.get(key)
        if html is not None:
            _rendered.move_to_end(key)
            return html
    html = _render(text)
    with _rendered_lock:
        _rendered[key] = html
        while len(_rendered) > RENDERED_KEEP:
            _rendered.popitem(last=False)
    return html


def _render(description_md: str) -> str:
    html = markdown_lib.markdown(description_md or "", extensions=["sane_lists", "tables", "fenced_code"])
    html = re.sub(r"<(/?)h1\b", r"<\1h2", html)
    return nh3.clean(
        html, tags=DESCRIPTION_TAGS, attributes={"a": {"href", "title"}, "th": {"align"}, "td": {"align"}},
        url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener noreferrer",
    )
