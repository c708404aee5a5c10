"""The `ramparts` command line. Subcommands load lazily so `ramparts --help` stays fast."""

from __future__ import annotations

import importlib
import sys

# command words -> "module:function"; each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("serve",): ("proxy.serve:main", "run the proxy"),
    ("check-policy",): ("proxy.config.check:main", "validate a policy file; print every error with its line"),
    ("schema",): ("proxy.config.check:schema_main", "print the policy JSON Schema"),
    ("demo",): ("proxy.demo.runner:main", "run the offline demo (mock provider + proxy + openai SDK)"),
    ("token",): ("proxy.devtoken:main", "mint a development HS256 JWT"),
    ("mock-provider",): ("proxy.mock_provider:main", "run the OpenAI-compatible mock provider with fault modes"),
    ("eval", "pii"): ("proxy.pii.evaluate:main", "evaluate PII detection on a JSONL file"),
    ("eval", "injection"): ("proxy.injection.evaluate:main", "evaluate injection scoring on a JSONL file"),
    ("train", "injection"): ("proxy.injection.train:main", "rebuild the shipped injection classifier"),
    ("audit", "verify"): ("proxy.audit.cli:verify_main", "verify an audit log directory"),
    ("audit", "erase"): ("proxy.audit.cli:erase_main", "crypto-shred a subject's retained content"),
    ("audit", "export"): ("proxy.audit.cli:export_main", "export a tenant's (or subject's) records"),
    ("keys", "generate"): ("proxy.audit.cli:keygen_main", "generate an Ed25519 signing keypair"),
}


def _usage() -> str:
    lines = ["usage: ramparts COMMAND [ARGS]", "", "commands:"]
    for words, (_, help_) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<20} {help_}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            target = COMMANDS[words][0]
            module, func = target.split(":")
            return int(getattr(importlib.import_module(module), func)(argv[n:]) or 0)
    print(f"ramparts: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
