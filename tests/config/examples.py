"""Config texts shared by the config tests."""

# ruff: noqa: E501  (the design example is kept verbatim)

# The YAML block of DESIGN.md, verbatim: the contract for what users write.
DESIGN_EXAMPLE = """\
agents:                     # name → how to run it; built-ins: claude, codex, aider, gemini
  claude: {}                # a built-in adapter with its defaults
  house-fixer:              # a custom agent
    adapter: command        # claude | codex | aider | gemini | command
    command: ["python", "tools/fix.py", "{prompt_file}"]   # argv, never a shell string
    env: [HOUSE_API_KEY]    # names passed through to the agent; nothing else from the runner's environment is
    model: null
tasks:                      # name → label `agent:<name>` and command `/agent <name>`
  research: {agents: [claude], output: report}   # built-in defaults exist for research, fix, implement
  fix: {agents: [claude, codex], attempts: 1}    # fan-out: one run, and one pull request, per agent × attempt
runner: local               # local | github-actions | kubernetes | fly
limits:
  max_parallel_runs: 3      # per repository
  max_open_prs: 5           # review capacity: no new run starts while this many agent PRs await review
  run_timeout_minutes: 30
  max_fix_attempts: 2       # automatic fix runs on red CI or conflicts, per pull request
  max_changed_files: 200
  max_cost_usd: null        # per run, where the agent can be bounded
  daily_cost_usd: null      # per repository: no new run starts past it
protected_paths: [".github/workflows/**", ".github/kickoff.yml"]   # a run that touches them fails, nothing is pushed
verify: {command: null}     # e.g. "pytest -q", run by the runner; a failing verify opens a draft PR
permissions: {min_permission: write, allow_users: [], allow_bots: []}
pull_requests: {draft: false, title: "{task}: {issue_title} (#{issue}) [{agent}]", labels: [kickoff], request_review: true}
queue:
  enabled: true
  review_window: 1          # how many PRs are "next for review" at once
  merge: manual             # manual | auto (Kickoff merges the head once approved and green)
  merge_method: squash
  update_method: merge      # merge | rebase | agent: how the next head is brought up to date with its base
  aging_hours: 24           # a waiting PR rises one priority band per this many hours
  hold_overlaps: true       # hold a PR that changes files a PR ahead of it changes
  close_siblings: true      # when one PR of a fan-out merges, close the others as superseded
  check_name: review-queue
"""
