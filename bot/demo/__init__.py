"""`kickoff demo`: the GitHub simulator, Kickoff and scripted agents telling the whole story offline.

`bot.demo.harness` is the reusable part (the simulator and Kickoff wired together, with helpers to watch both); the
end-to-end tests drive it too. See docs/demo.md.
"""

from bot.demo.run import main

__all__ = ["main"]
