"""One pull request per agent run: opening (`opening`), its texts (`texts`), follow-ups, fix runs, siblings."""
