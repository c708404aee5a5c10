"""Weighted patterns of known injection moves.

Each rule is a name, a weight in (0, 1) and a compiled regex run over the folded,
lowercased text (see fold.py). A rule counts once however often it matches.
Weights are probabilities that combine by noisy-OR with the classifier's (scorer.py):
one strong move ("ignore previous instructions") flags on its own, two moves block.
The weights were set by hand and checked on the dev data's benign rows (bench/).

Encoded payloads: base64 runs are decoded and rot13 is undone, and the instruction
rules are run again on the result; a hit there is the signal `base64_instruction` /
`rot13_instruction` (hiding an instruction is itself evidence).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    weight: float
    pattern: re.Pattern[str]
    instruction: bool = False  # also looked for inside decoded payloads
    # Substrings one of which every match contains: a C-speed `in` test decides whether
    # the (slower) regex runs at all, which keeps ordinary text cheap.
    gate: tuple[str, ...] = ()

    def search(self, text: str) -> bool:
        return any(g in text for g in self.gate) and self.pattern.search(text) is not None


def _r(name: str, weight: float, pattern: str, instruction: bool = False, gate: tuple[str, ...] = ()) -> Rule:
    return Rule(name, weight, re.compile(pattern), instruction, gate)


_VERB_IGNORE = r"(?:ignore|disregard|forget|skip|override|overwrite|bypass|neglect|abandon|drop|delete|erase|discard|cancel)"
_OLD = r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|old|former|system|existing|given|all|any|every|the|your|my|these|those|other|of)"
_ORDERS = r"(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|guidance|context|commands?|orders|constraints|restrictions|programming|policies|polic(?:y|ies)|messages?|tasks?|settings)"

RULES: tuple[Rule, ...] = (
    _r("ignore_previous", 0.80,
       rf"\b{_VERB_IGNORE}\b(?: (?:about|all|of|the|your|my|any|these|those|what|everything|you were|you've been|you have been|i|we|said|told|given|before|earlier|above|previously|and|that|this|were|was|to|do|me)){{0,5}} (?:{_OLD} ){{0,3}}{_ORDERS}\b",
       instruction=True,
       gate=("ignor", "disregard", "forget", "skip", "overrid", "overwrit", "bypass", "neglect", "abandon", "drop", "delet", "erase", "discard", "cancel")),
    _r("ignore_above", 0.55,
       r"\b(?:ignore|disregard|forget) (?:all |everything )?(?:of )?(?:the |what(?:'s| is| was) )?(?:above|before|previous(?:ly)?|prior|said|written)\b",
       instruction=True,
       gate=("ignor", "disregard", "forget")),
    _r("new_instructions", 0.40,
       r"\b(?:new|updated|real|actual|true|revised|secret|hidden|additional) (?:instructions?|system prompt|rules|directives?|orders|task)\b(?:\s*(?::|are|is|follow))"
       r"|\bfrom now on,? (?:you|your|respond|answer|reply|only|always|never|act|ignore)",
       instruction=True,
       gate=("instruction", "prompt", "rule", "directive", "order", "task", "from now on")),
    _r("you_are_now", 0.45,
       r"\byou are (?:now|no longer)\b|\bfrom now on,? you (?:are|will be|shall be)\b|\byou(?:'ll| will) now (?:act|behave|respond|be)\b|\byour new (?:role|name|identity|persona|purpose) is\b",
       instruction=True,
       gate=("you are", "from now", "you'll now", "you will now", "your new")),
    _r("reveal_prompt", 0.70,
       r"\b(?:reveal|print|show|repeat|output|display|tell|give|dump|leak|write out|spell out|disclose|expose|share|return|recite|list|provide|summari[sz]e)(?: me| us)? (?:\w+ ){0,4}?"
       r"(?:your|the|my|its|this|initial|original|hidden|secret) (?:\w+ ){0,2}?(?:system prompt|system message|initial prompt|pre-?prompt|hidden prompt|instructions you (?:were|have been) given|(?:secret |hidden )?password|passcode|access code|secret key|prompt above|instructions above|text above|developer message|configuration prompt)\b",
       instruction=True,
       gate=("prompt", "message", "instructions", "password", "passcode", "code", "key", "above")),
    _r("prompt_probe", 0.45,
       r"\bwhat (?:is|are|was|were) (?:your|the) (?:system prompt|initial instructions|original instructions|hidden instructions|secret password|password)\b"
       r"|\b(?:beginning|start) of (?:the|this|your) (?:conversation|prompt|system prompt)\b",
       instruction=True,
       gate=("what ", "beginning of", "start of")),
    _r("jailbreak_persona", 0.60,
       r"\bdo anything now\b|\bdan mode\b|\bdeveloper mode (?:enabled|on|activated)\b|\benable developer mode\b|\bjailbr(?:oken|eak mode)\b|\bgod ?mode\b"
       r"|\b(?:aim|stan|dude|evil ?bot|anti-?gpt|betterdan|maximum)\b[^.\n]{0,60}\b(?:unfiltered|amoral|no (?:rules|restrictions|filters|ethic))"
       r"|\bstay in character\b|\bcharacter break\b",
       instruction=True,
       gate=("anything now", "dan mode", "developer mode", "jailbr", "god mode", "godmode", "unfiltered", "amoral", "no rules", "no restrictions", "no filters", "no ethic", "character")),
    _r("no_restrictions", 0.45,
       r"\b(?:without|free (?:of|from)|no|ignore (?:all |any |your )?|bypass (?:all |any |your )?)(?:any )?(?:ethical|moral|safety|content|openai'?s?|usage|legal)? ?(?:restrictions|limitations|filters|guidelines|censorship|safeguards|boundaries|constraints|policies)\b"
       r"[^.\n]{0,80}\b(?:answer|respond|reply|anything|everything|any question|any request)\b"
       r"|\b(?:unfiltered|uncensored|amoral|unrestricted) (?:ai|assistant|model|chatbot|response|mode|version)\b",
       instruction=True,
       gate=("restriction", "limitation", "filter", "guideline", "censor", "safeguard", "boundar", "constraint", "polic", "unfiltered", "uncensored", "amoral", "unrestricted")),
    _r("fake_role_marker", 0.60,
       r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>|\[/?inst\]|<</?sys>>|\[/?system\]"
       r"|<\s*/?\s*(?:system|assistant|developer|instructions?|sys)\s*>|(?:^|\n)\s*#{2,}\s*(?:system|instruction|new instruction|admin)s?\b"
       r"|(?:^|\n)\s*(?:system|assistant)\s*:\s*\S",
       gate=("<|", "inst]", "<<", "sys]", "system]", "<", "##", "system", "assistant")),
    _r("delimiter_break", 0.35,
       r"\b(?:end|close) of (?:the )?(?:user |system |previous |original )?(?:input|instructions|prompt|document|context|message|text|data)\b"
       r"|(?:={3,}|-{3,}|%{3,}|\*{3,}|#{3,})\s*(?:end|begin|start|new|system|admin|important|override)\b"
       r"|\b(?:end|begin|start) (?:of )?(?:untrusted|user) (?:input|content|data)\b",
       gate=("end of", "close of", "===", "---", "%%%", "***", "###", "begin", "start")),
    _r("addressed_to_model", 0.45,
       r"\b(?:note|message|instruction|attention|important) (?:to|for) (?:the )?(?:ai|assistant|llm|language model|chatbot|model|bot|gpt|agent)\b"
       r"|\b(?:dear|hey|hi|attention) (?:ai|assistant|chatgpt|gpt|llm|language model|chatbot|agent)\b"
       r"|\b(?:if|when) you(?:'re| are)? (?:an? )?(?:ai|llm|language model|assistant|chatbot|agent)\b"
       r"|\b(?:ai|assistant|llm|language model|model|agent)s? (?:reading|processing|summari[sz]ing|parsing) (?:this|these)\b",
       instruction=True,
       gate=(" ai", "assistant", "llm", "model", "chatbot", "gpt", "agent", " bot")),
    _r("response_hijack", 0.35,
       r"\b(?:in|to|into|within|at the (?:end|beginning|start) of) your (?:response|reply|answer|output|summary)s?\b[^.\n]{0,60}\b(?:include|add|insert|mention|append|write|say|state|recommend|encourag|link|tell)"
       r"|\b(?:include|add|insert|append|integrate|embed|incorporate) (?:a|an|the|this|these|following)? ?(?:\w+ ){0,3}(?:in|into|to|at the end of) (?:your|the) (?:response|reply|answer|output|summary)\b"
       r"|\b(?:begin|start|prefix|end) (?:your|the|each) (?:response|reply|answer|output) with\b"
       r"|\b(?:respond|reply|answer) (?:only |just )?with (?:only |just )?(?:the (?:word|phrase|text|string) )?[\"'\u201c\[]",
       instruction=True,
       gate=("your", "with")),
    _r("exfiltration", 0.55,
       r"!\[[^\]]{0,100}\]\(\s*https?://[^)\s]{0,300}[?&][^)\s]{0,300}="
       r"|\b(?:send|post|forward|upload|transmit|exfiltrate|email) (?:\w+ ){0,5}(?:to|at) (?:https?://|[\w.+-]+@[\w-]+\.)"
       r"|\b(?:visit|click|go to|open|fetch|download from) (?:this |the following )?(?:link|url|website|site)?:? ?https?://",
       instruction=True,
       gate=("](", "http", "@")),
    _r("authority_claim", 0.35,
       r"\b(?:i am|i'm|this is) (?:your|the|an?) (?:developer|creator|administrator|admin|system administrator|owner|openai|anthropic|operator)\b"
       r"|\b(?:admin|sudo|root|maintenance|debug|god|override) (?:mode|access|override|command|privileges?)\b"
       r"|\bauthori[sz]ation (?:code|level|override)\b",
       instruction=True,
       gate=("i am", "i'm", "this is", " mode", "access", "override", "command", "privilege", "authori")),
    _r("forced_output", 0.30,
       r"\b(?:say|print|output|write|type|reply|respond|answer) (?:only |just |exactly |simply )?(?:the (?:words?|phrase|text|string) )?[\"'\u201c\[][^\"'\u201d\]\n]{1,40}[\"'\u201d\]](?: and nothing else| only| exactly|\.? nothing else)"
       r"|\baccess granted\b",
       instruction=True,
       gate=("\"", "'", "\u201c", "[", "access granted")),
    _r("hypothetical_frame", 0.30,
       r"\b(?:for (?:purely )?(?:educational|research|academic|fictional|hypothetical) purposes?(?: only)?)\b[^\n]{0,200}\b(?:how to|step[- ]by[- ]step|instructions|detailed)"
       r"|\b(?:sure,? here (?:is|are)|sure thing,? here)\b"
       r"|\bhypothetically(?: speaking)?,? (?:how|what|if you)\b[^.\n]{0,80}\b(?:make|build|hack|steal|kill|synthesi[sz]e|bypass|cheat|weapon|bomb|drug)",
       gate=("purpose", "sure", "hypothetical")),
)

_INSTRUCTION_RULES = tuple(r for r in RULES if r.instruction)
_B64_RUN = re.compile(r"(?:[A-Za-z0-9+/]{4}){6,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_HEX_RUN = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){16,}\b")
_DECODE_ASK = re.compile(r"\b(?:decode|decrypt|decipher|base ?64|rot ?13|caesar|translate (?:this|the following) from)\b")
_TOKEN_FLOOD = re.compile(r"(\S{1,8})(?:\s+\1){40,}")
_MAX_DECODED = 4  # decode at most this many runs per text: bounded work
_B64_WEIGHT = 0.75
_ROT13_WEIGHT = 0.75
_HEX_WEIGHT = 0.6
_DECODE_ASK_WEIGHT = 0.25
_FLOOD_WEIGHT = 0.35
TRICK_WEIGHTS = {"zero_width": 0.35, "bidi_override": 0.5, "tag_chars": 0.8, "homoglyph": 0.45}

# Every signal name this module can emit (tests and docs enumerate them).
SIGNAL_NAMES = tuple(r.name for r in RULES) + (
    "base64_instruction", "rot13_instruction", "hex_instruction", "decode_request", "token_flood",
) + tuple(TRICK_WEIGHTS)


def _instruction_hits(text: str) -> bool:
    return any(r.search(text) for r in _INSTRUCTION_RULES)


def _printable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s or sum(ch.isprintable() or ch.isspace() for ch in s) < 0.9 * len(s):
        return None
    return s.lower()


def signals(plain: str, original: str) -> dict[str, float]:
    """Rule name -> weight for every rule that fires. `plain` is Folded.plain,
    `original` the unlowered folded text (base64 is case-sensitive)."""
    found = {r.name: r.weight for r in RULES if r.search(plain)}
    if _TOKEN_FLOOD.search(plain):
        found["token_flood"] = _FLOOD_WEIGHT
    decoded = 0
    for m in _B64_RUN.finditer(original):
        if decoded >= _MAX_DECODED:
            break
        decoded += 1
        run = m.group()
        try:
            s = _printable(base64.b64decode(run + "=" * (-len(run) % 4), validate=True))
        except (binascii.Error, ValueError):
            continue
        if s and _instruction_hits(s):
            found["base64_instruction"] = _B64_WEIGHT
            break
    for m in _HEX_RUN.finditer(original):
        try:
            s = _printable(bytes.fromhex(re.sub(r"[ :]", "", m.group())))
        except ValueError:
            continue
        if s and _instruction_hits(s):
            found["hex_instruction"] = _HEX_WEIGHT
        break
    # rot13 of plain text never matches the English rules by chance; of a rot13'd
    # instruction it does. Only tried when the text has few rule hits already.
    if "rot13_instruction" not in found and _instruction_hits(codecs.encode(plain, "rot13")):
        found["rot13_instruction"] = _ROT13_WEIGHT
    if _DECODE_ASK.search(plain) and (_B64_RUN.search(original) or "rot13" in plain or "rot 13" in plain):
        found["decode_request"] = _DECODE_ASK_WEIGHT
    return found
