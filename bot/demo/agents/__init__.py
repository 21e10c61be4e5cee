"""Scripted agents for `kickoff demo`: deterministic programs run by the `command` adapter, one fix each.

Each takes the checkout (`{workdir}`) and the prompt file (`{prompt_file}`), edits files, and ends its output with
the JSON object the `command` adapter reads (summary and usage).
"""
