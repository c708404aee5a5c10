"""Authentication engine: JWT verification and JWKS key cache (no HTTP: fetching is injected)."""
