"""A local stand-in for Vercel (`marketplace-provider simulate`); the test suite uses the same parts.

- `tokens`: `TokenKit` and `SigningKey`: OIDC tokens as Vercel signs them (pyjwt), their JWKS, and forgeries.
- `vercel_api` (+ `vercel_answers`): `FakeVercel`, the Vercel REST API, recorded, with fault injection.
- `webhooks`: the signature (`sign`, `signed_headers`) and a body for every documented event type.
- `server`: `Simulator`, all of it on one port with control endpoints under `/_simulator`; `recording`: what
  it shows of the calls, secrets hidden.
- `client`: `Api`, the HTTP client to a Partner API server; `driver`, `flows`, `deliveries`: the flows Vercel runs.
"""
