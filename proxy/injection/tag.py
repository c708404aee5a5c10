"""Strip XML-like and chat-template tags that could break the prompt's structure.

`TagStripper(names)` compiles once; `strip(text)` removes, case-insensitively,
`<name>`, `</name>`, `<name attr=..>`, `<name/>`, `<|name|>`, `[name]`, `[/name]`
and `<<name>>` for each configured name. Text between tags is kept: only the
structure markers go, so the user's words still reach the model.
"""

from __future__ import annotations

import re

DEFAULT_TAGS = (
    "system", "user", "assistant", "developer", "tool", "function", "instructions", "instruction",
    "im_start", "im_end", "im_sep", "endoftext", "eot_id", "start_header_id", "end_header_id",
    "begin_of_text", "sys", "inst",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


class TagStripper:
    def __init__(self, names: tuple[str, ...] | list[str] = DEFAULT_TAGS) -> None:
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise ValueError(f"tag names must be identifiers: {bad}")
        self.names = tuple(names)
        if not self.names:
            self._re = None
            return
        alt = "|".join(re.escape(n) for n in sorted(set(self.names), key=len, reverse=True))
        self._re = re.compile(
            rf"<\s*/?\s*(?:{alt})(?:\s[^<>]{{0,200}})?\s*/?\s*>"  # <system>, </user>, <tool name="x"/>
            rf"|<\|\s*(?:{alt})\s*\|>"  # <|im_start|>
            rf"|\[\s*/?\s*(?:{alt})\s*\]"  # [INST], [/system]
            rf"|<<\s*/?\s*(?:{alt})\s*>>",  # <<SYS>>
            re.IGNORECASE)

    def strip(self, text: str) -> tuple[str, int]:
        """(text without the tags, how many were removed)."""
        if self._re is None or ("<" not in text and "[" not in text):
            return text, 0
        return self._re.subn("", text)
