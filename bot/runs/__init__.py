"""Agent runs: the lifecycle, the scheduler, the runner protocol."""
