"""The operator's view: a server-rendered dashboard (`GET /`, bot.dashboard.routes) with its JSON twins, and the
queries behind it (bot.dashboard.queries, also used by `kickoff status`). The package imports nothing itself, so the
terminal's `kickoff status` does not load the web stack (FastAPI, Jinja) that the routes need."""
