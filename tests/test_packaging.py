"""The shipped weights must reach a non-editable install: their folder is a package with package data."""
from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_asset_is_package_data():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "ovbench.assets" in find_packages(str(REPO), include=["ovbench", "ovbench.*"])
    patterns = [p.strip() for p in cfg["options.package_data"]["ovbench.assets"].split(",")]
    assets = [f.name for f in (REPO / "ovbench" / "assets").iterdir() if f.is_file() and f.suffix != ".py"]
    assert assets, "no shipped assets found"
    missed = [a for a in assets if not any(fnmatch.fnmatch(a, p) for p in patterns)]
    assert not missed, f"setup.cfg [options.package_data] ovbench.assets does not cover {missed}"
