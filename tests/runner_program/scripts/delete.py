"""Agent: deletes a file and changes one line of another."""

from pathlib import Path

Path("README.md").unlink()
app = Path("src/app.py")
app.write_text(app.read_text().replace("41", "42"))
print("deleted README.md")
