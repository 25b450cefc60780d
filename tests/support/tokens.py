from marketplace_provider.adapters.simulator.tokens import *  # noqa: F403  (moved; this re-export goes soon)
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, OMIT, SigningKey, TokenKit, b64url  # noqa: F401
