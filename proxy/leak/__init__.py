"""Output leak filtering engine: detectors that work incrementally over a text stream.

Every detector reports complete hits and the index from which a match may still
be forming; `scanner.SlotScanner` holds back only that suffix. No aiohttp here.
"""
