"""The operator's view: a server-rendered dashboard (`GET /`) with its JSON twins, and the queries behind it."""

from bot.dashboard.auth import require_viewer
from bot.dashboard.routes import router

__all__ = ["require_viewer", "router"]
