"""Agent runs: planning, the scheduler, the runner protocol (the run rows and their lifecycle are `bot.store`'s)."""
