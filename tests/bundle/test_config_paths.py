"""Every ``seunet_monai`` name a bundle config mentions (``_target_`` components, ``$`` expressions, imports)
resolves to a module or an attribute of one, so that a renamed module cannot leave a config pointing nowhere."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bundle" / "configs").rglob("*.json"))
NAME = re.compile(r"seunet_monai(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_the_configs_are_found():
    assert any(p.name == "train.json" for p in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_package_name_in_a_config_resolves(config):
    names = sorted(set(NAME.findall(config.read_text(encoding="utf-8"))))
    missing = [n for n in names if not _resolves(n)]
    assert not missing, f"{config.name} names what the package does not define: {missing}"
