"""A verify command that leaves things behind: caches, a new file, an edit, a deletion. None may be pushed."""

from pathlib import Path

Path(".pytest_cache/v/cache").mkdir(parents=True)
Path(".pytest_cache/v/cache/lastfailed").write_text("{}\n")
Path("scribbled.txt").write_text("written by verify\n")
Path("src/app.py").write_text("def answer() -> int:\n    return 0\n")
Path("README.md").write_text("# rewritten by verify\n")
Path("NOTES.md").unlink()
print("1 passed")
