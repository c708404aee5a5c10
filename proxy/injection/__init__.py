"""Prompt-injection scoring engine (no aiohttp, no network).

    from proxy.injection.classifier import Classifier
    from proxy.injection.scorer import Scorer
    Scorer(Classifier.load()).score(text)  # -> Score(value in [0, 1], signals, classifier)

fold.py (unicode/spacing tricks) -> heuristic.py (RE2 rule set) + classifier.py (hashed
n-gram logistic regression, numpy) -> scorer.py (noisy-OR). band.py maps a score to an
action, tag.py strips role-like tags. train.py / evaluate.py are the CLI commands.
"""
