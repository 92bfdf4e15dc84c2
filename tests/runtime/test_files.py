from __future__ import annotations

import hashlib
import os

import pytest

from seunet_monai.runtime.files import atomic_write_text, file_sha256, prepare_output_dir


def test_atomic_write_failure_keeps_old_content_and_removes_temporary(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_prepare_output_dir_refuses_non_empty_and_cleans_with_overwrite(tmp_path):
    fresh = prepare_output_dir(tmp_path / "new" / "dst")
    assert fresh.is_dir()
    assert prepare_output_dir(fresh) == fresh  # empty: accepted

    (fresh / "keep.txt").write_text("x")
    (fresh / "sub").mkdir()
    (fresh / "sub" / "f.txt").write_text("y")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("z")
    (fresh / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(FileExistsError, match="dst.*not empty"):
        prepare_output_dir(fresh)
    assert (fresh / "keep.txt").exists()  # nothing touched

    assert prepare_output_dir(fresh, overwrite=True) == fresh
    assert list(fresh.iterdir()) == []
    assert (outside / "precious.txt").read_text() == "z"  # links are removed, never followed


def test_prepare_output_dir_refuses_a_file_and_the_working_directory(tmp_path, monkeypatch):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(FileExistsError, match="file.txt"):
        prepare_output_dir(f, overwrite=True)
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    monkeypatch.chdir(work / "inner")
    with pytest.raises(ValueError, match="refusing"):
        prepare_output_dir(work, overwrite=True)
    assert (work / "inner").is_dir()


def test_file_sha256_is_the_digest_of_the_files_bytes(tmp_path):
    data = os.urandom(3 << 20 | 5)  # more than one 1 MiB block, not a whole number of them
    (tmp_path / "model.pt").write_bytes(data)
    assert file_sha256(tmp_path / "model.pt") == hashlib.sha256(data).hexdigest()
