"""marketplace-provider: sell your product on the Vercel Marketplace as a native integration.

The one import root of the distribution: `marketplace_provider.domain`, `.ports`, `.adapters`, `.entrypoints` and
`.config` live in the repository's top-level folders of those names (mapped in pyproject.toml).
"""
