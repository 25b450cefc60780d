"""A local stand-in for Vercel: OIDC tokens and their JWKS, the Vercel REST API, webhooks, SSO, and the flows that
drive a Partner API server (`marketplace-provider simulate`). The test suite uses the same code."""
