import jwt

from proxy.devtoken import main, mint

SECRET = b"x" * 32


def test_mint_has_the_claims_the_proxy_requires():
    tok = mint(SECRET, tenant="acme", scopes=["ai:completion", "ai:embed"], ttl_s=60)
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"], audience="ramparts", issuer="https://issuer.local")
    assert claims["tenant"] == "acme" and claims["scope"] == "ai:completion ai:embed"
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"] and claims["sub"]


def test_cli_refuses_a_weak_secret(monkeypatch, capsys):
    monkeypatch.setenv("RAMPARTS_JWT_SECRET", "short")
    assert main(["--tenant", "acme"]) == 2
    assert "at least 32" in capsys.readouterr().err


def test_cli_prints_a_token(monkeypatch, capsys):
    monkeypatch.setenv("RAMPARTS_JWT_SECRET", "s" * 40)
    assert main(["--tenant", "acme", "--scope", "ai:embed"]) == 0
    tok = capsys.readouterr().out.strip()
    assert jwt.decode(tok, "s" * 40, algorithms=["HS256"], audience="ramparts", issuer="https://issuer.local")["scope"] == "ai:embed"
