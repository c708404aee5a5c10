"""Compile the stage's settings and the policy's tenants once into per-tenant detector sets."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from proxy.leak.fingerprint import FingerprintDetector, PromptFingerprint
from proxy.leak.identifier import IdentifierIndex
from proxy.leak.literal import literal_forms, trie_pattern, word_literals
from proxy.leak.encoded import encoded_alternatives
from proxy.leak.markup import ansi_alternatives, ansi_text_alternatives, image_alternatives, link_alternatives, xss_alternatives
from proxy.leak.pattern import Alternative, AlternativeSet, Check, Compiled, PatternDetector
from proxy.leak.scanner import Detector, SlotScanner, quick_searches
from proxy.leak.secret import secret_alternatives
from proxy.leak.settings import DEFAULT_ACTIONS, LeakModeration, LeakPromptSettings

OVERFLOW_MARKER = "[REDACTED:overflow]"
_KEY_CHARS = 4096  # PrintCache: shorter prompts are their own key
_BUILT_PER_TENANT = 16  # fingerprint detectors kept per tenant (distinct request system prompts)
_MISSING = object()


@dataclass(frozen=True)
class TenantInfo:
    """What the policy says about one tenant (from policy.tenants)."""

    system_prompt: str | None
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class TenantRules:
    tenant: str
    detectors: tuple[Detector, ...]  # everything but the per-request fingerprint
    prints: tuple[PromptFingerprint, ...]  # the tenant's configured system prompt
    actions: Mapping[str, str]
    markers: Mapping[str, str]
    prompt: LeakPromptSettings
    max_hold: int
    # request prints -> (detectors, max hold, quick searches) for the tenant's prints plus those: a request's
    # system prompt is usually the one the app always sends, so its fingerprint detector is built once, not per slot.
    _built: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def _build(self, request_prints: Iterable[PromptFingerprint]) -> tuple:
        sent = request_prints if request_prints.__class__ is tuple else tuple(request_prints)
        built = self._built.get(sent)
        if built is None:
            prints = self.prints + sent
            dets = list(self.detectors)
            if prints and self.actions.get("system_prompt") != "off":
                dets.append(FingerprintDetector(prints))
            built = (tuple(dets), max([self.max_hold] + [d.max_span for d in dets]), quick_searches(dets))
            if len(self._built) >= _BUILT_PER_TENANT:
                self._built.pop(next(iter(self._built)))  # the oldest
            self._built[sent] = built
        return built

    def scanner(self, request_prints: Iterable[PromptFingerprint] = ()) -> SlotScanner:
        built = self._build(request_prints)
        return SlotScanner(built[0], self.actions, self.markers, built[1], built[2])

    def is_clean(self, request_prints: Iterable[PromptFingerprint], text: str) -> bool:
        """Whether a complete text passes untouched: what `scanner(request_prints).whole(text) == text`
        says (no detector finds anything in it or holds any of it), without building a scanner."""
        n = len(text)
        for d in self._build(request_prints)[0]:
            found, hold = d.scan(text, 0, True)
            if found or hold < n:
                return False
        return True


def compile_rules(config: Any, tenants: Mapping[str, TenantInfo]) -> dict[str, TenantRules]:
    """`config`: the stage's LeakConfig. Raises ValueError for settings that name unknown tenants."""
    unknown = sorted(set(config.tenants) - set(tenants))
    if unknown:
        raise ValueError(f"leak: tenants {unknown} are not in the policy")
    base_actions = {**DEFAULT_ACTIONS, **config.actions.given()}
    secrets = secret_alternatives([(p.name, p.regex, p.max_len, tuple(p.anchors)) for p in config.secrets.patterns],
                                  config.secrets.builtin)
    encoded = encoded_alternatives()
    index = IdentifierIndex({
        tid: tuple(info.identifiers) + ((tid,) if config.cross_tenant.tenant_ids else ())
        for tid, info in tenants.items()
    })
    compiled: dict[str, Compiled] = {}  # regex source -> compiled, shared by every tenant
    sets: dict[tuple[Alternative, ...], AlternativeSet] = {}  # same alternatives -> one anchor index
    out: dict[str, TenantRules] = {}
    for tid, info in tenants.items():
        own = config.tenants.get(tid)
        actions = {**base_actions, **(own.actions.given() if own else {})}
        markers = {d: f"[REDACTED:{d}]" for d in actions}
        markers["ansi"] = ""  # escapes are stripped, not marked
        markers["overflow"] = OVERFLOW_MARKER
        markers.update(config.markers)
        on = lambda d: actions.get(d) != "off"  # noqa: E731
        alts: list[Alternative] = []
        checks: dict[str, Check] = {}
        if on("secret"):
            alts += secrets[0]
            checks.update(secrets[1])
            if config.secrets.builtin:  # base64 / hex / rot13 of the built-in key shapes
                alts += encoded[0]
                checks.update(encoded[1])
        if on("cross_tenant"):
            found = index.alternative_for(tid)
            if found is not None:
                alts.append(found[0])
                checks[found[0].group] = found[1]
        canaries = list(config.canaries) + (list(own.canaries) if own else [])
        if on("canary") and canaries:
            lits = literal_forms(canaries)  # as written and case-folded: "straße" is not found by "strasse"
            alts.append(Alternative("canary__canary", "canary", "canary", "(?i:" + trie_pattern(lits) + ")",
                                    max(len(c) for c in lits), tuple(lits), False))
        if on("moderation"):
            alts += _moderation(config.moderation, own.moderation if own else None)
        if on("markdown_image"):
            img, img_checks = image_alternatives(list(config.markdown_image.allow_hosts) + (list(own.allow_image_hosts) if own else []))
            alts += img
            checks.update(img_checks)
        if on("markdown_link"):
            links, link_checks = link_alternatives(list(config.markdown_image.allow_hosts) + (list(own.allow_image_hosts) if own else []))
            alts += links
            checks.update(link_checks)
        if on("xss"):
            alts += xss_alternatives()
        if on("ansi"):
            alts += ansi_alternatives()
        if on("ansi_text"):
            alts += ansi_text_alternatives()
        dets: list[Detector] = []
        if alts:
            groups = [a.group for a in alts]
            if len(set(groups)) != len(groups):
                raise ValueError(f"leak: pattern names collide for tenant {tid!r}: {sorted(groups)}")
            key = tuple(alts)
            if key not in sets:
                sets[key] = AlternativeSet(alts, compiled)
            dets.append(PatternDetector(sets[key], checks))
        prints: tuple[PromptFingerprint, ...] = ()
        if on("system_prompt") and info.system_prompt:
            prints = (fingerprint(info.system_prompt, config.system_prompt),)
        out[tid] = TenantRules(tid, tuple(dets), prints, actions, markers, config.system_prompt,
                               config.max_hold_chars)
    return out


def fingerprint(text: str, s: LeakPromptSettings) -> PromptFingerprint:
    return PromptFingerprint(text, s.shingle, s.window, s.threshold)


def _moderation(common: LeakModeration, own: LeakModeration | None) -> list[Alternative]:
    terms = list(common.terms) + (list(own.terms) if own else [])
    pats = list(common.patterns) + (list(own.patterns) if own else [])
    alts = []
    if terms:
        forms = literal_forms(terms)
        alts.append(Alternative("moderation__blocked_term", "moderation", "blocked_term", word_literals(terms).pattern,
                                max(len(t) for t in forms) + 1, tuple(forms), True))
    alts += [Alternative(f"moderation__{p.name}", "moderation", p.name, p.regex, p.max_len, tuple(p.anchors) or None, False)
             for p in pats]
    return alts


class PrintCache:
    """Request system prompts repeat (same app, same prompt): compile each once, LRU-bounded.

    `get` is for the event loop's thread only; `compile` is pure and may run in a worker
    thread (a long prompt costs ~5 ms per 1,000 words), then `put` stores the result.
    """

    __slots__ = ("_settings", "_size", "_items")

    def __init__(self, settings: LeakPromptSettings, size: int = 256) -> None:
        self._settings = settings
        self._size = size
        self._items: OrderedDict[str | bytes, PromptFingerprint | None] = OrderedDict()

    @staticmethod
    def key(text: str) -> str | bytes:
        """The text itself while short (a dict lookup hashes it once), else a digest: the cache holds
        at most size x _KEY_CHARS characters of prompts."""
        if len(text) <= _KEY_CHARS:
            return text
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def cached(self, key: str | bytes) -> tuple[bool, PromptFingerprint | None]:
        if key in self._items:
            self._items.move_to_end(key)
            return True, self._items[key]
        return False, None

    def find(self, text: str) -> tuple[str | bytes, bool, PromptFingerprint | None]:
        """(key, hit, fingerprint): `key` and `cached` in one call (the stage's per-request lookup)."""
        key = text if len(text) <= _KEY_CHARS else self.key(text)
        items = self._items
        fp = items.get(key, _MISSING)
        if fp is _MISSING:
            return key, False, None
        items.move_to_end(key)
        return key, True, fp

    def compile(self, text: str) -> PromptFingerprint | None:
        try:
            return fingerprint(text, self._settings)
        except ValueError:
            return None  # too short to fingerprint

    def put(self, key: str | bytes, fp: PromptFingerprint | None) -> None:
        self._items[key] = fp
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, text: str) -> PromptFingerprint | None:
        key = self.key(text)
        hit, fp = self.cached(key)
        if not hit:
            fp = self.compile(text)
            self.put(key, fp)
        return fp
