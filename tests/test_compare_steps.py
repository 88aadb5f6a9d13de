"""Step markers: a finished step is trusted only when its key matches and its files are there."""

from __future__ import annotations

import json

from gitract.compare._steps import mark_done, read_marker, step_status


def _step(tmp_path):
    d = tmp_path / "step"
    (d / "sub").mkdir(parents=True)
    (d / "model.bin").write_bytes(b"0123456789")
    (d / "sub" / "table.csv").write_text("a,b\n1,2\n")
    mark_done(d, "k1", fit_seconds=1.5)
    return d


def test_marker_lists_every_file_with_its_size(tmp_path):
    d = _step(tmp_path)
    marker = read_marker(d)
    assert marker["key"] == "k1" and marker["fit_seconds"] == 1.5
    assert marker["files"] == {"model.bin": 10, "sub/table.csv": 8}
    assert step_status(d, "k1") == (True, "")
    assert step_status(d, None) == (True, "")


def test_changed_key_missing_truncated_or_unlisted_files_mean_recompute(tmp_path):
    d = _step(tmp_path)
    assert step_status(d, "k2") == (False, "settings changed since it ran")
    (d / "model.bin").write_bytes(b"01234")
    done, why = step_status(d, "k1")
    assert not done and why == "model.bin has 5 bytes, 10 expected"
    (d / "model.bin").unlink()
    assert step_status(d, "k1") == (False, "model.bin is missing")


def test_markers_of_older_versions_and_broken_markers_are_not_trusted(tmp_path):
    d = _step(tmp_path)
    (d / "done.json").write_text(json.dumps({"key": "k1"}))
    done, why = step_status(d, "k1")
    assert not done and "older version" in why
    (d / "done.json").write_text("{not json")
    assert step_status(d, "k1") == (False, "done.json is unreadable")
    (d / "done.json").unlink()
    assert step_status(d, "k1") == (False, "not run yet")
    assert step_status(tmp_path / "nowhere", "k1") == (False, "not run yet")


def test_a_directory_where_a_file_should_be_is_not_a_file(tmp_path):
    d = _step(tmp_path)
    (d / "model.bin").unlink()
    (d / "model.bin").mkdir()
    assert step_status(d, "k1") == (False, "model.bin is missing")
