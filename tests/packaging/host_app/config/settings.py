"""The host application's settings: same module name as the kit's `config/settings.py`, different contents.

Had the kit kept a top-level `from config.settings import ConfigError`, importing it here would fail: this
module has no `ConfigError`, no `Settings`.
"""

from __future__ import annotations

import os

from config import APP_NAME


def load_settings() -> dict[str, str]:
    return {"name": APP_NAME, "greeting": os.environ.get("HOST_APP_GREETING", "hello")}
