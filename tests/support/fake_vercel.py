from marketplace_provider.adapters.simulator.vercel_api import *  # noqa: F403  (moved; this re-export goes soon)
from marketplace_provider.adapters.simulator.vercel_api import Call, FakeVercel  # noqa: F401
