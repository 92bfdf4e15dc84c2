"""metadata.json: verified offline against the schema kept in the bundle, complete package list, one version."""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys

import pytest
import tomllib
from monai.bundle import ConfigParser, verify_metadata

from .conftest import REPO, run_cmd

META = REPO / "bundle" / "configs" / "metadata.json"
SCHEMA = REPO / "bundle" / "configs" / "schema" / "metadata_schema.json"


def _meta() -> dict:
    return json.loads(META.read_text())


def test_verify_metadata_passes_offline_with_the_schema_in_the_bundle(tmp_path):
    # the schema file exists, so MONAI skips the download of the `schema` URL: nothing goes over the network
    proc = run_cmd(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", str(META), "--filepath", str(SCHEMA)],
        cwd=tmp_path,
    )
    assert "skipped downloading" in proc.stdout and "metadata is verified with no error" in proc.stdout


def _documented_commands(text: str, start: str) -> list[list[str]]:
    """The commands of the ``bash`` code blocks of ``text`` that begin with ``start``, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith(start):
                commands.append(shlex.split(command))
    return commands


@pytest.mark.parametrize("doc", ["README.md", "bundle/docs/README.md"])
def test_the_documented_metadata_check_is_the_offline_form_and_passes(doc):
    """The metadata check a user sees first names the schema shipped in the bundle, so that it works offline."""
    commands = _documented_commands((REPO / doc).read_text(), "python -m monai.bundle verify_metadata")
    assert commands, f"{doc} shows no metadata check"
    first = commands[0]
    assert first[first.index("--filepath") + 1] == "bundle/configs/schema/metadata_schema.json"
    proc = run_cmd([sys.executable, *first[1:]], cwd=REPO)  # from the repository root, as documented
    assert "skipped downloading" in proc.stdout and "metadata is verified with no error" in proc.stdout


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("network_data_format", "outputs", "pred", "type"), "labels", "'labels' is not one of"),
        (("eval_metrics", "val_iou"), "0.65", "'0.65' is not of type 'number'"),
        (("required_packages_version", "scipy"), "latest", "'latest' does not match"),
        (("network_data_format", "inputs", "image", "num_channels"), None, "'num_channels' is a required property"),
    ],
    ids=["output-type", "metric-not-a-number", "package-version", "missing-num-channels"],
)
def test_the_schema_rejects_a_broken_metadata_file(tmp_path, path, value, message):
    meta = copy.deepcopy(_meta())
    *parents, key = path
    node = meta
    for p in parents:
        node = node[p]
    if value is None:
        del node[key]
    else:
        node[key] = value
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        verify_metadata(meta_file=str(broken), filepath=str(SCHEMA))


def test_one_version_everywhere_and_a_changelog_entry_for_it():
    import seunet_monai

    meta = _meta()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["version"] == project["version"] == seunet_monai.__version__
    assert meta["required_packages_version"]["seunet-monai"] == meta["version"]
    assert next(iter(meta["changelog"])) == meta["version"]


def test_every_dependency_is_listed_with_a_version():
    """Each runtime dependency of pyproject.toml is in required_packages_version (torch, MONAI and numpy have their
    own fields); optional packages are kept out of MONAI's deprecated `optional_packages_version`, which MONAI 1.6
    renames to (and so overwrites) `required_packages_version` when it reads the metadata."""
    meta = _meta()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}
    own_fields = {"torch", "monai", "numpy"}
    assert names - own_fields <= set(meta["required_packages_version"])
    assert "optional_packages_version" not in meta
    parser = ConfigParser()
    parser.read_meta(str(META))
    assert parser["_meta_#required_packages_version"] == meta["required_packages_version"]
    assert set(meta["optional_packages"]) == {"openslide-python", "cucim"}


def test_eval_metrics_are_numbers():
    metrics = _meta()["eval_metrics"]
    assert metrics and all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in metrics.values())
