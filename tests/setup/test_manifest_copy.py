"""The manifest users read sits at the top level; the package ships an identical copy for `pip install` users."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_manifest_is_the_top_level_one() -> None:
    assert (ROOT / "bot" / "app-manifest.yml").read_text() == (ROOT / "app-manifest.yml").read_text(), (
        "copy app-manifest.yml to bot/app-manifest.yml"
    )
