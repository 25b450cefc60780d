"""`marketplace-provider check`: drive any Partner API server, in any language, the way Vercel does and report,
check by check, what conforms to the documented contract (spec/partner-api.md, auth.md, webhooks.md).

The server under test must trust the checker's stand-ins on 127.0.0.1 (`stand_ins.py`): its JWKS, client id and
client secret, and call its Vercel API. Each group of checks (`endpoints.py`, `auth_matrix.py`, `webhooks.py`,
`bad_input.py`, `idempotency.py`, `billing.py`) works in installations of its own; `runner.py` runs them in order.
"""
