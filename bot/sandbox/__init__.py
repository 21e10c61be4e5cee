"""A stateful GitHub simulator: the offline test bed for Kickoff and the engine of `kickoff demo`.

with Sandbox(tmp_path) as sb, SandboxServer(sb) as url:
    app = sb.create_app(webhook_url=receiver_url)
    sb.create_repo("octo", "demo", {"README.md": "hi"})
    installation_id = sb.install(app.app_id, "octo")
    sb.open_issue("octo", "demo", "Fix it", sender="alice")
"""

from bot.sandbox.clock import FakeClock, system_clock
from bot.sandbox.engine import AppCredentials, Violation
from bot.sandbox.sandbox import AsyncSandbox, Sandbox
from bot.sandbox.server import SandboxServer

__all__ = ["AppCredentials", "AsyncSandbox", "FakeClock", "Sandbox", "SandboxServer", "Violation", "system_clock"]
