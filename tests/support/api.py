from marketplace_provider.adapters.simulator.client import *  # noqa: F403  (moved; this re-export goes soon)
from marketplace_provider.adapters.simulator.client import Api, Reply  # noqa: F401
