"""Weighted patterns of known injection moves.

Each rule is a name, a weight in (0, 1) and an RE2 pattern run over the folded,
lowercased text (see fold.py). A rule counts once however often it matches. All
rules run as one RE2 set: a single linear-time pass, no catastrophic backtracking
on hostile input.
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
from dataclasses import dataclass

import re2


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    weight: float
    pattern: str  # RE2 syntax, run over lowercased text
    instruction: bool = False  # also looked for inside decoded payloads


def _r(name: str, weight: float, pattern: str, instruction: bool = False) -> Rule:
    return Rule(name, weight, pattern, instruction)


_VERB_IGNORE = r"(?:ignore|disregard|forget|skip|override|overwrite|bypass|neglect|abandon|drop|delete|erase|discard|cancel)"
_OLD = r"(?:previous|prior|above|below|earlier|preceding|following|foregoing|original|initial|old|former|system|existing|given|all|any|every|the|your|these|those|other|of|and)"
# Not "message" or "task": "ignore my previous message" is ordinary conversation.
_ORDERS = r"(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|guidance|context|commands?|orders|constraints|restrictions|programming|polic(?:y|ies)|system messages?)"

_HARM_ASK = r"(?:write|create|draft|compose|generate|produce|design|develop|give|provide|list|explain|describe|detail|outline|teach|show|tell|instruct|code|build|plan)(?: me| us)?"
_HARM_TOPIC = (
    r"(?:bombs?|explosives?|detonators?|napalm|molotov|nerve agents?|sarin|ricin|anthrax|bioweapons?|chemical weapons?|nuclear weapons?|dirty bombs?"
    r"|meth|methamphetamine|cocaine|heroin|fentanyl|illegal drugs?|ransomware|malware|keyloggers?|spyware|botnets?|ddos|computer virus|phishing|scams?|fraud|fraudulent"
    r"|counterfeit\w*|launder\w*|embezzl\w*|extort\w*|blackmail\w*|brib\w+|ponzi|insider trading|tax evasion|evade taxes|identity theft|steal|stealing|stolen|shoplift\w*"
    r"|burglar\w*|break into|hotwir\w+|untraceable|ghost guns?|unregistered (?:guns?|firearms?)|murder\w*|assassinat\w+|poison (?:someone|a person|people|my|his|her|their|the water)|tortur\w+|kidnap\w*|traffick\w+|smuggl\w+"
    r"|stalk\w*|dox\w*|revenge porn|child (?:porn\w*|sexual\w*|abuse)|sexually explicit|suicide|self-harm|self harm|anorexi\w+|bulimi\w+|eating disorders?"
    r"|racis\w+|hate speech|genocide|holocaust|white supremac\w+|terroris\w+|extremis\w+|radicali[sz]\w+|propaganda|disinformation|misinformation|fake news"
    r"|(?:toxic|discriminatory|hateful|derogatory|demeaning|dehumani[sz]ing|racist|sexist) (?:sentences?|remarks?|jokes?|comments?|statements?|tweets?|posts?|slurs?|insults?)"
    r"|defamat\w+|libel\w*|harass\w*|cyberbully\w*|hack(?:ing)? into|crack (?:a |the |their |someone'?s )?passwords?|bypass (?:the )?(?:security|authentication|2fa|paywall)"
    r"|without (?:being|getting) (?:caught|detected|noticed)|without (?:them|anyone|her|him) (?:knowing|noticing)|illegal(?:ly)?|exploit (?:a |the |this )?(?:vulnerabilit\w+|security (?:hole|flaw)s?)|zero-day exploits?)"
)
# "How to avoid phishing scams", "detect malware", "protect against fraud": the harmful word is the
# thing being defended against. Such a text gets no harm signal (the other rules still run).
_DEFENSIVE = (r"\b(?:avoid\w*|prevent\w*|protect\w*|detect\w*|defend\w*|recogni[sz]\w*|spot|spotting|identify\w*|report\w*|stop|guard against|safe from|warning signs"
              r"|awareness|mitigat\w*|combat\w*|fight\w*|remov\w*|recover\w*|victims? of|survivors? of|history of|dangers of|risks of)\b[^.?!\n]{0,60}\b" + _HARM_TOPIC + r"\b"
              r"|\b" + _HARM_TOPIC + r"\b[^.?!\n]{0,60}\b(?:defend\w*|protect\w*|prevent\w*|detect\w*|mitigat\w*|avoid\w*|recogni[sz]\w*)\b")
# Persuasion jailbreaks want usable detail: a how-to cue is required for the framed signal, so a
# story that merely mentions a crime is not one.
_HOW_TO = r"\b(?:step[- ]by[- ]step|in (?:great |full )?detail|detailed|exact|specific|precise|instructions|how to|recipe|tutorial|guide|manual|blueprint|walk(?: me)? through|code|script for)\b"
# The excuse that comes with it ("purely for research purposes", "it will never be used") also
# counts as the cue, and overrides the defensive reading ("... to better protect against it").
_EXCUSE = (r"\b(?:purely|strictly|only|solely|just) (?:for|as) (?:an? )?(?:\w+ )?(?:research|educational|academic|fictional|hypothetical|informational|testing|training)\b"
           r"|\bfor (?:\w+ )?(?:research|educational|academic|informational) purposes\b|\bwill never be used\b|\bno one will (?:be harmed|get hurt)\b"
           r"|\b(?:it's|it is|this is) (?:just|only|purely|all) (?:fiction|fictional|hypothetical|a story|a game|pretend)\b"
           r"|\bfrom an? (?:purely )?(?:educational|academic|research|theoretical|hypothetical) (?:standpoint|perspective|point of view)\b|\bin a (?:controlled|safe) environment\b")
# Framing that persuasion jailbreaks wrap around a harmful request (role-play, fiction, hypotheticals,
# "for research", "no disclaimers"). Checked only when `harmful_request` fired.
_FRAME = (r"\b(?:imagine|pretend|role-?play|act as|you are an? |you're an? |fictional|fiction|hypothetical\w*|(?:my|our|writing a) novel|novel (?:about|where|in which|set in)|story|screenplay|character"
          r"|thought experiment|alternate (?:reality|universe|world)|parallel universe|for (?:educational|research|academic)(?: and research)? purposes"
          r"|as an? (?:\w+ ){0,3}(?:expert|writer|author|researcher|historian|journalist|consultant|character|professor|scientist|novelist)"
          r"|no disclaimers?|without (?:any )?(?:disclaimers?|warnings?)|(?:don't|do not) (?:include|add) (?:any )?(?:disclaimers?|warnings?)|stay in character)")

RULES: tuple[Rule, ...] = (
    _r("ignore_previous", 0.80,
       rf"\b{_VERB_IGNORE}\b(?: (?:about|all|of|the|your|any|these|those|what|everything|you were|you've been|you have been|i|we|said|told|given|before|earlier|above|previously|and|that|this|were|was|to|do|me)){{0,5}} (?:{_OLD} ){{0,3}}{_ORDERS}\b",
       instruction=True),
    _r("ignore_above", 0.55,
       # "ignore the above." / "forget everything before and ...", not "disregard the previous budget"
       r"\b(?:ignore|disregard|forget) (?:all |everything )?(?:of )?(?:the |what(?:'s| is| was) |(?:that |what )?(?:was |you were |you've been |i )?(?:said|told|written|given) )?(?:above|before|previous(?:ly)?|prior|said|written|earlier|so far|until now|up to now)(?:[.,;:!]|$| and\b| text\b| content\b| input\b| prompts?\b| lines?\b)"
       r"|\b(?:ignore|disregard|skip) the rest of (?:this|the) (?:data|text|document|input|page|file|email|message|content)\b"
       # "ignore this data and print ...", "disregard all info except ...": a document telling its reader to drop it
       r"|\b(?:ignore|disregard) (?:all |any )?(?:of )?(?:the )?(?:this|these|other|all other|any other|surrounding|remaining) (?:data|content|info|information|text|documents?|snippets?|context|input)\b[^.\n]{0,12}\b(?:and|except|but|then|instead)\b"
       r"|\b(?:ignore|disregard) all (?:info|information|content|data|text) (?:except|but|other than)\b",
       instruction=True),
    # The most common German, Spanish and French forms (public injection sets are multilingual).
    _r("ignore_previous_multilingual", 0.70,
       r"\b(?:ignoriere|ignorieren sie|vergiss|vergessen sie|missachte)\b[^.\n]{0,40}\b(?:anweisungen|instruktionen|befehle|aufgaben|regeln|alles|vorherigen|vorangehenden|davor|oben)\b"
       r"|\b(?:ignora|olvida|olvide|descarta|ignorar|olvidar)\b[^.\n]{0,40}\b(?:instrucciones|anteriores|reglas|todo lo anterior)\b"
       r"|\b(?:ignorez|oubliez|oublie|ignorer|oublier)\b[^.\n]{0,40}\b(?:instructions|consignes|pr\x{e9}c\x{e9}dentes?|r\x{e8}gles)\b",
       instruction=True),
    _r("reveal_prompt_multilingual", 0.55,
       r"\b(?:zeig|zeige|nenne|verrate|gib|sag)\b[^.\n]{0,30}\b(?:passwort|kennwort|systemprompt|system-prompt|anweisungen)\b|\bwas ist dein (?:passwort|kennwort|prompt)\b"
       r"|\b(?:dime|muestra|revela|mu\x{e9}strame)\b[^.\n]{0,30}\b(?:contrase\x{f1}a|prompt del sistema|instrucciones)\b"
       r"|\b(?:montre|r\x{e9}v\x{e8}le|donne)[sz]?(?:-moi)?\b[^.\n]{0,30}\b(?:mot de passe|prompt syst\x{e8}me|instructions)\b",
       instruction=True),
    _r("new_instructions", 0.40,
       r"\b(?:new|updated|real|actual|true|revised|secret|hidden|additional) (?:instructions?|system prompt|rules|directives?|orders|task)\b(?:\s*(?::|are|is|follow))"
       r"|\bfrom now on,? (?:you|your|respond|answer|reply|only|always|never|act|ignore)",
       instruction=True),
    _r("you_are_now", 0.45,
       r"\byou are (?:now|no longer)\b|\bfrom now on,? you (?:are|will be|shall be)\b|\byou(?:'ll| will) now (?:act|behave|respond|be)\b|\byour new (?:role|name|identity|persona|purpose) is\b",
       instruction=True),
    _r("reveal_prompt", 0.70,
       r"\b(?:reveal|print|show|repeat|output|display|tell|give|dump|leak|write out|spell out|disclose|expose|share|return|recite|list|provide|summari[sz]e)(?: me| us)? (?:\w+ ){0,4}?"
       r"(?:your|the|my|its|this|initial|original|hidden|secret) (?:\w+ ){0,2}?(?:system prompt|system message|initial prompt|pre-?prompt|hidden prompt|instructions you (?:were|have been) given|(?:secret |hidden )?password|passcode|access code|secret key|prompt above|instructions above|text above|developer message|configuration prompt)\b",
       instruction=True),
    _r("prompt_probe", 0.45,
       r"\bwhat (?:is|are|was|were) (?:your|the) (?:system prompt|initial instructions|original instructions|hidden instructions|secret password|password)\b"
       r"|\b(?:beginning|start) of (?:the|this|your) (?:conversation|prompt|system prompt)\b",
       instruction=True),
    _r("jailbreak_persona", 0.60,
       r"\bdo anything now\b|\bdan mode\b|\bdeveloper mode (?:enabled|on|activated)\b|\benable developer mode\b|\bjailbr(?:oken|eak mode)\b|\bgod ?mode\b"
       r"|\b(?:aim|stan|dude|evil ?bot|anti-?gpt|betterdan|maximum)\b[^.\n]{0,60}\b(?:unfiltered|amoral|no (?:rules|restrictions|filters|ethic))"
       r"|\bstay in character\b|\bcharacter break\b",
       instruction=True),
    _r("no_restrictions", 0.45,
       r"\b(?:without|free (?:of|from)|no|ignore (?:all |any |your )?|bypass (?:all |any |your )?)(?:any )?(?:ethical|moral|safety|content|openai'?s?|usage|legal)? ?(?:restrictions|limitations|filters|guidelines|censorship|safeguards|boundaries|constraints|policies)\b"
       r"[^.\n]{0,80}\b(?:answer|respond|reply|anything|everything|any question|any request)\b"
       r"|\b(?:unfiltered|uncensored|amoral|unrestricted) (?:ai|assistant|model|chatbot|response|mode|version)\b",
       instruction=True),
    _r("fake_role_marker", 0.60,
       r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>|\[/?inst\]|<</?sys>>|\[/?system\]"
       r"|<\s*/?\s*(?:system|assistant|developer|instructions?|sys)\s*>|(?:^|\n)\s*#{2,}\s*(?:system|instruction|new instruction|admin)s?\b"
       r"|(?:^|\n)\s*(?:system|assistant)\s*:\s*\S"),
    _r("delimiter_break", 0.35,
       r"(?:^|\n|[=\-#*%\[<(]{2,})\s*(?:end|close) of (?:the )?(?:user |system |previous |original )?(?:input|instructions|prompt|document|context|message|text|data)\b"
       r"|(?:={3,}|-{3,}|%{3,}|\*{3,}|#{3,})\s*(?:end|begin|start) (?:of )?(?:the )?(?:system|user|instructions?|prompt|input|context|conversation)\b"
       r"|(?:={3,}|-{3,}|%{3,}|\*{3,}|#{3,})\s*(?:system|admin|override)\b"
       r"|\b(?:end|begin|start) (?:of )?(?:untrusted|user) (?:input|content|data)\b"),
    _r("addressed_to_model", 0.45,
       r"\b(?:note|message|instruction|attention|important) (?:to|for) (?:the )?(?:ai|assistant|llm|language model|chatbot|model|bot|gpt|agent)\b"
       r"|\b(?:dear|hey|hi|attention) (?:ai|assistant|chatgpt|gpt|llm|language model|chatbot|agent)\b"
       r"|\b(?:if|when) you(?:'re| are)? (?:an? )?(?:ai|llm|language model|assistant|chatbot|agent)\b"
       r"|\b(?:ai|assistant|llm|language model|model|agent)s? (?:reading|processing|summari[sz]ing|parsing) (?:this|these)\b"
       # text meant for a machine reader of a document: "note to automated analysis software", "visible to LLM scan"
       r"|\b(?:note|message|instructions?|notice) (?:to|for) (?:the |any )?(?:automated|ai|llm|machine)[- ](?:\w+ )?(?:software|systems?|screening|scanners?|scans?|reviewers?|tools?|agents?|readers?|models?|analysis|parsers?)\b"
       r"|\b(?:invisible|hidden) (?:to|from) (?:the )?humans?\b|\bvisible (?:only )?to (?:the )?(?:llms?|ai|models?|language models?|bots?|machines?)\b",
       instruction=True),
    _r("response_hijack", 0.35,
       r"\b(?:in|to|into|within|at the (?:end|beginning|start) of) your (?:response|reply|answer|output|summary)s?\b[^.\n]{0,60}\b(?:include|add|insert|mention|append|write|say|state|recommend|encourag|link|tell)"
       r"|\b(?:include|add|insert|append|integrate|embed|incorporate) (?:a|an|the|this|these|following)? ?(?:\w+ ){0,3}(?:in|into|to|at the end of) (?:your|the) (?:response|reply|answer|output|summary)\b"
       r"|\b(?:begin|start|prefix|end) (?:your|the|each) (?:response|reply|answer|output) with\b"
       r"|\b(?:respond|reply|answer) (?:only |just )?with (?:only |just )?(?:the (?:word|phrase|text|string) )?[\"'“\[]",
       instruction=True),
    # "Add X to your response", "merge the following code into your solution": weak on its own
    # (users ask this of their assistant all the time), strong inside a document (embedded_instruction).
    _r("output_tampering", 0.20,
       r"\b(?:add|append|include|insert|enhance|augment|provide|use|replace|remove|rearrange|scramble|misspell|combine|modify|format|translate|convert|embed|merge|blend|fuse|infuse|weave|integrate|incorporate|utili[sz]e|engage|enlist|ensure|mention|suggest|encourage|invite|promote|recommend)\b"
       r"[^.\n]{0,100}\b(?:your|the assistant'?s?) (?:response|reply|answer|output|solution|codebase|code base|implementation|code|summary)s?\b"
       r"|\byour (?:code|response|reply|answer|output|solution) (?:should|must|needs to|has to)\b",
       instruction=True),
    _r("exfiltration", 0.55,
       # a markdown image whose query carries a placeholder or conversation data (README badges
       # also have queries: ?branch=main, ?style=flat; those are not flagged)
       r"!\[[^\]]{0,100}\]\(\s*https?://[^)\s]{0,300}[?&][^)\s=]{0,40}=[^)\s]{0,40}(?:\{|\[|<|\$|%7b|data|secret|conversation|password|history|summary|chat|prompt|token|info)"
       r"|\b(?:send|post|forward|upload|transmit|exfiltrate|leak|copy) (?:the |this |all |all the |your |their |our |the user'?s? |my )?(?:\w+ )?"
       r"(?:conversation|chat|data|history|messages?|emails?|passwords?|credentials|api keys?|secrets?|tokens?|personal (?:data|details|information)|information|contents?|summary|prompt)"
       r"(?: \w+){0,3} (?:to|at) (?:https?://|[\w.+-]+@[\w-]+\.)",
       instruction=True),
    _r("authority_claim", 0.35,
       r"\b(?:i am|i'm|this is) (?:your|the|an?) (?:developer|creator|administrator|admin|system administrator|owner|openai|anthropic|operator)\b"
       r"|\b(?:admin|sudo|root|maintenance|debug|god|override) (?:mode|access|override|command|privileges?)\b"
       r"|\bauthori[sz]ation (?:code|level|override)\b"
       # "[ADMIN REQUEST:: ...", "SYSTEM MESSAGE: ..." inside a field, "it is a secure system message"
       r"|\b(?:admin|administrator|system|developer|root|sudo) (?:request|message|notice|instruction|command|note)s?\s*:"
       r"|\b(?:secure|trusted|verified|official|priority|privileged) (?:system|admin|administrator|developer) (?:message|instruction|command|note)s?\b"
       r"|\boverride (?:the |all |any |manual |previous |prior )?(?:scoring|evaluation|review|safety checks?|content filters?)\b",
       instruction=True),
    _r("forced_output", 0.30,
       r"\b(?:say|print|output|write|type|reply|respond|answer) (?:only |just |exactly |simply )?(?:the (?:words?|phrase|text|string) )?[\"'“\[][^\"'”\]\n]{1,40}[\"'”\]](?: and nothing else| only| exactly|\.? nothing else)"
       r"|\baccess granted\b",
       instruction=True),
    # Persona jailbreaks (DAN and its many renamings) share a few moves whatever the persona's name:
    # the model is told it never refuses, is not bound by rules, or must answer twice (normal + free).
    _r("refusal_suppression", 0.45,
       r"\b(?:never|won't|will not|cannot|can't|must not|do not|don't|doesn't|does not) (?:ever )?(?:refuse|decline|reject|deny)s? (?:any|a|to|my|the|your)\b"
       r"|\b(?:never|not|won't|will not|doesn't|does not|don't|do not|without) (?:\w+ )?(?:add|include|give|issue|print|mention|adding|including|giving|any|with)? ?(?:any )?(?:warnings?|disclaimers?|caveats?|moral(?:i[sz]ing)? (?:lectures?|warnings?|policing)|apolog(?:y|ies|i[sz]e))\b[^.\n]{0,60}\b(?:answer|respond|repl(?:y|ies)|response|say|write|output|content|request|question)"
       r"|\b(?:not|no longer|isn't|aren't|never) (?:bound|restricted|limited|constrained|governed) by (?:any |the |its |your |openai'?s? )?(?:\w+ )?(?:rules|policies|policy|guidelines|restrictions|limitations|ethics|morals|laws|filters|programming|constraints)\b"
       r"|\b(?:doesn't|does not|don't|do not|won't|will not|no need to|never|not have to) (?:have to |need to )?(?:follow|obey|abide by|adhere to|comply with|care about|respect) (?:any |the |its |your |openai'?s? )?(?:\w+ )?(?:rules|policies|policy|guidelines|restrictions|laws|ethics|ethical (?:guidelines|principles|standards)|morals|morality|legality|content polic(?:y|ies)|programming)\b",
       instruction=True),
    _r("dual_response", 0.45,
       r"\b(?:two|2|both|separate) (?:different |separate )?(?:responses|answers|replies|paragraphs|outputs)\b[^\n]{0,200}\b(?:jailbr\w*|unfiltered|uncensored|unrestricted|developer mode|no (?:rules|filters|restrictions)|free|evil|dan|opposite)\b"
       r"|\[(?:\x{1f513}|\x{1f512})?\s*(?:jailbreak|jailbroken|classic|dan|developer mode|unlocked|unfiltered|free)\s*\]",
       instruction=True),
    _r("unrestricted_persona", 0.45,
       r"\b(?:pretend|act|behave|role-?play|simulate|emulate|imagine|be)\b[^.\n]{0,40}\b(?:ai|chatbot|assistant|model|bot|language model|version of (?:yourself|you|chatgpt))\b[^.\n]{0,60}\b(?:without|with no|free of|free from|not bound|unrestricted|unfiltered|uncensored|that (?:never|always|can|will) (?:refuses?|answers?|says?|do|does))\b"
       r"|\b(?:an?|the) (?:ai|chatbot|assistant|model|bot) (?:without|with no|free of|that has no) (?:any )?(?:guidelines|rules|restrictions|filters|limits|limitations|ethics|morals|censorship|content polic(?:y|ies))\b"
       r"|\bbroken? free (?:of|from) (?:the |its |their |your )?(?:typical |usual )?(?:confines|rules|limits|restrictions|chains)\b"
       r"|\b(?:break|breaking|broke) character\b",
       instruction=True),
    # A document that scripts the model's answer: "if the user asks for a summary, reply with only the following text",
    # "if questioned, report that ...", "you may not deviate from this". Weak alone (users script role-plays this way),
    # strong inside a document (embedded_instruction).
    _r("scripted_reply", 0.30,
       r"\bif (?:the |a |any )?user (?:asks?|requests?|wants|queries|questions)\b[^.\n]{0,80}\b(?:reply|respond|answer|say|print|output|tell|report|state)\b"
       r"|\b(?:if|when) (?:you are |you're |you get )?(?:asked|questioned|queried)\b[^.\n]{0,80}\b(?:reply|respond|answer|say|print|output|tell|report|state)\b"
       r"|\b(?:reply|respond|answer|output|print) with (?:only |just )?(?:the following|this) (?:text|message|string|sentence|information|statement)\b"
       r"|\b(?:may|must|should|can) not deviate (?:from|form) this\b",
       instruction=True),
    # A request for clearly harmful content (a general harm taxonomy: weapons, drugs, malware, fraud,
    # theft, violence, abuse, self-harm, hate, disinformation). Weak alone (people ask about these
    # topics for good reasons); with a role-play or hypothetical frame it becomes
    # `framed_harmful_request`, the shape of persuasion jailbreaks (see signals()).
    _r("harmful_request", 0.20,
       rf"\b{_HARM_ASK}\b[^.?!\n]{{0,120}}?\b{_HARM_TOPIC}\b"
       rf"|\bhow (?:to|do i|can i|could i|would (?:one|someone|i|you)|might (?:one|someone)|does one|should i)\b[^.?!\n]{{0,80}}?\b{_HARM_TOPIC}\b"),
    _r("hypothetical_frame", 0.30,
       r"\b(?:for (?:purely )?(?:educational|research|academic|fictional|hypothetical) purposes?(?: only)?)\b[^\n]{0,200}\b(?:how to|step[- ]by[- ]step|instructions|detailed)"
       r"|\b(?:sure,? here (?:is|are)|sure thing,? here)\b"
       r"|\bhypothetically(?: speaking)?,? (?:how|what|if you)\b[^.\n]{0,80}\b(?:make|build|hack|steal|kill|synthesi[sz]e|bypass|cheat|weapon|bomb|drug)"),
)


class RuleSet:
    """All rules compiled into one RE2 set: one linear-time pass over the text finds
    every rule that matches (no backtracking, no per-rule rescans)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._set = re2.Set.SearchSet()
        for r in rules:
            self._set.Add(r.pattern)
        self._set.Compile()

    def matching(self, text: str) -> list[Rule]:
        hits = self._set.Match(text)
        return [self.rules[i] for i in hits] if hits else []


ALL = RuleSet(RULES)
INSTRUCTIONS = RuleSet(tuple(r for r in RULES if r.instruction))

_B64_RUN = re2.compile(r"(?:[A-Za-z0-9+/]{4}){6,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_HEX_RUN = re2.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){16,}\b")
_DECODE_ASK = re2.compile(r"\b(?:decode|decrypt|decipher|base ?64|rot ?13|caesar|translate (?:this|the following) from)\b")
# Common English words after rot13 ("the", "and", "you", "ignore", ...): the rot13 pass runs
# only when the text contains one, so ordinary text pays one substring scan, not a rule pass.
_ROT13_HINTS = (" gur ", " naq ", " lbh ", "vtaber", "cerivbhf", "vafgehpgvba", "flfgrz", "cebzcg", "qvfertneq", "cnffjbeq", "fpevcg", "wninfpevcg")
_FLOOD_RUN = 40  # the same short token this many times in a row (Tensor Trust-style padding)
_FLOOD_STRIDE = _FLOOD_RUN // 4  # _flooded's exact pre-check samples every this many words
_MAX_DECODED = 4  # decode at most this many runs per text: bounded work
_B64_WEIGHT = 0.75
_ROT13_WEIGHT = 0.75
_HEX_WEIGHT = 0.6
_DECODE_ASK_WEIGHT = 0.25
_DECODED_WEIGHTS = {"base64": _B64_WEIGHT, "rot13": _ROT13_WEIGHT, "hex": _HEX_WEIGHT}
_DECODED_CLEAR = 0.45  # the decoded text's own rule evidence (noisy-OR) needed for the full weight ...
_DECODED_WEAK_WEIGHT = 0.45  # ... otherwise this
# Active web markup hidden in an encoding (garak `encoding` probes: XSS smuggled past filters as base64/hex/rot13).
_MARKUP_RE = re2.compile(r"<\s*/?\s*(?:script|iframe|object|embed)\b|\bjavascript\s*:|\bon(?:error|load|mouseover|mouseleave|focus|click)\s*=")
_MARKUP_WEIGHT = 0.45
_FRAME_RE = re2.compile(_FRAME)
_DEFENSIVE_RE = re2.compile(_DEFENSIVE)
_HOW_TO_RE = re2.compile(_HOW_TO)
_EXCUSE_RE = re2.compile(_EXCUSE)
_FRAMED_HARM_WEIGHT = 0.35
_FLOOD_WEIGHT = 0.35
# An instruction aimed at the model inside a document-shaped text (an email, a table,
# code, a page of lines) is the shape of indirect injection; the same words in a
# request written as prose are usually the user's own wish ("in your answer, include examples").
_EMBEDDED_RULES = frozenset({"output_tampering", "response_hijack", "addressed_to_model", "exfiltration", "forced_output", "new_instructions", "you_are_now",
                             "scripted_reply", "authority_claim", "ignore_above", "ignore_previous"})
_EMBEDDED_MIN_CHARS = 400
_EMBEDDED_WEIGHT = 0.45
# Optimiser-made suffixes (GCG, DSN): a natural-language request that ends in one line of
# bracket-and-quote soup. Checked on the last characters only: constant work.
_SUFFIX_SPAN = 160
_SUFFIX_SYMBOLS = frozenset("[]{}()\"'`;:#=\\/|<>*^~@$%&+_")
_SUFFIX_WEIGHT = 0.45
# "Looks like data, not like a request": a table, mail headers, code, or many short lines.
_DOCUMENT_SHAPE = re2.compile(r"(?:\|[^\n]*){3,}\n(?:[^\n]*\|){3,}|(?:^|\n)(?:subject|from|to|date|received date|email_from|cc)\s*:|```|(?:^|\n)\s*(?:def |class |import |function |#include|public |return )|[;{}]\s*\n")
_DOCUMENT_MIN_LINES = 8
TRICK_WEIGHTS = {"zero_width": 0.35, "bidi_override": 0.5, "tag_chars": 0.8, "homoglyph": 0.45}

# Every signal name this module can emit (tests and docs enumerate them).
SIGNAL_NAMES = tuple(r.name for r in RULES) + (
    "base64_instruction", "rot13_instruction", "hex_instruction", "decode_request", "token_flood", "embedded_instruction", "adversarial_suffix",
    "framed_harmful_request", "encoded_markup",
) + tuple(TRICK_WEIGHTS)


def _printable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s or sum(ch.isprintable() or ch.isspace() for ch in s) < 0.9 * len(s):
        return None
    return s.lower()


def _adversarial_suffix(text: str) -> bool:
    tail = text[-_SUFFIX_SPAN:]
    if len(text) < 60 or "\n" in tail:
        return False
    head = text[:60]
    if sum(ch.isalpha() or ch == " " for ch in head) < 0.85 * len(head):
        return False  # code, tables, markup: punctuation is normal there
    marks = [ch for ch in tail if ch in _SUFFIX_SYMBOLS]
    return len(marks) >= 0.06 * len(tail) and len(set(marks)) >= 5


def _flooded(plain: str) -> bool:
    words = plain.split()
    if len(words) < _FLOOD_RUN:
        return False
    # A run of _FLOOD_RUN equal words covers 4 consecutive multiples of s = _FLOOD_RUN // 4
    # (any _FLOOD_RUN consecutive indices do), so 4 neighbouring samples of words[::s] are that
    # word: when no 4 are equal (and short), there is no run. Exact, ~1/10 of the word-by-word
    # loop; ordinary prose rarely passes it, and then the loop decides as before.
    samples = words[::_FLOOD_STRIDE]
    if not any(a == b == c == d and len(a) <= 8 for a, b, c, d in zip(samples, samples[1:], samples[2:], samples[3:])):
        return False
    run = 1
    for a, b in zip(words, words[1:]):
        run = run + 1 if a == b and len(a) <= 8 else 1
        if run >= _FLOOD_RUN:
            return True
    return False


def decoded_payloads(plain: str, original: str) -> list[tuple[str, str]]:
    """(kind, lowercased decoded text) of the encoded runs in a text: base64 and hex runs that decode
    to printable UTF-8 (at most _MAX_DECODED runs: bounded work), and the rot13 of the whole text when
    it looks like rot13'd English. The rules and the classifier look at these as well (scorer.py)."""
    out: list[tuple[str, str]] = []
    if len(original) >= 24:
        tried = 0
        for m in _B64_RUN.finditer(original):
            if tried >= _MAX_DECODED:
                break
            tried += 1
            run = m.group()
            try:
                s = _printable(base64.b64decode(run + "=" * (-len(run) % 4), validate=True))
            except (binascii.Error, ValueError):
                continue
            if s:
                out.append(("base64", s))
        m = _HEX_RUN.search(original)
        if m:
            try:
                s = _printable(bytes.fromhex(m.group().replace(" ", "").replace(":", "")))
            except ValueError:
                s = None
            if s:
                out.append(("hex", s))
    # rot13 of plain English never matches the rules by chance; of a rot13'd instruction it does.
    if any(h in plain for h in _ROT13_HINTS):
        out.append(("rot13", codecs.encode(plain, "rot13")))
    return out


def signals(plain: str, original: str, decoded: list[tuple[str, str]] | None = None) -> dict[str, float]:
    """Rule name -> weight for every rule that fires. `plain` is Folded.plain,
    `original` the unlowered folded text (base64 is case-sensitive); `decoded` is
    decoded_payloads(plain, original) when the caller already has it."""
    found = {r.name: r.weight for r in ALL.matching(plain)}
    if (len(plain) >= _EMBEDDED_MIN_CHARS and not _EMBEDDED_RULES.isdisjoint(found)
            and (plain.count("\n") >= _DOCUMENT_MIN_LINES or _DOCUMENT_SHAPE.search(plain))):
        found["embedded_instruction"] = _EMBEDDED_WEIGHT
    if "harmful_request" in found:
        excuse = _EXCUSE_RE.search(plain)
        if not excuse and _DEFENSIVE_RE.search(plain):
            del found["harmful_request"]
        elif _FRAME_RE.search(plain):
            found["framed_harmful_request"] = _FRAMED_HARM_WEIGHT
    if _flooded(plain):
        found["token_flood"] = _FLOOD_WEIGHT
    if _adversarial_suffix(original):
        found["adversarial_suffix"] = _SUFFIX_WEIGHT
    for kind, s in (decoded_payloads(plain, original) if decoded is None else decoded):
        hits = INSTRUCTIONS.matching(s)
        if hits:
            # Hiding an instruction is evidence in itself, but only a clear one earns the full weight: the weak
            # moves (output_tampering, response_hijack alone) are what benign prompts contain once decoded.
            miss = 1.0
            for r in hits:
                miss *= 1.0 - r.weight
            w = _DECODED_WEIGHTS[kind] if 1.0 - miss >= _DECODED_CLEAR else _DECODED_WEAK_WEIGHT
            found[kind + "_instruction"] = max(w, found.get(kind + "_instruction", 0.0))
        if _MARKUP_RE.search(s):
            found["encoded_markup"] = _MARKUP_WEIGHT
    if ("rot" in plain or "64" in plain or "dec" in plain or "caesar" in plain) and _DECODE_ASK.search(plain) and (
            "rot13" in plain or "rot 13" in plain or _B64_RUN.search(original)):
        found["decode_request"] = _DECODE_ASK_WEIGHT
    return found
