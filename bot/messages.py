"""User-facing text: everything Kickoff says on GitHub, kept in one place, one section per feature.

Rules for every message: say what happened and the next step; never include a token, a key, a secret or a raw
exception; quote user text only through `bot.untrusted` helpers. (The command parser's own error texts live at
the top of `bot/commands.py`.)
"""

from __future__ import annotations

from typing import Final

# ---- Foundation -------------------------------------------------------------------------------------------------

GITHUB_NOT_CONFIGURED: Final = "GitHub is not configured: set APP_ID and PRIVATE_KEY (see `kickoff setup`)."
