"""Agent: a fix, then a final JSON report of its summary and usage on stdout."""

import json
from pathlib import Path

Path("src/app.py").write_text("def answer() -> int:\n    return 42\n")
print("thinking…")
print(json.dumps({"summary": "Changed the answer to 42.",
                  "usage": {"input_tokens": 1200, "output_tokens": 345, "cost_usd": 0.0123, "turns": 3,
                            "model": "house-model-1"}}, indent=2))
