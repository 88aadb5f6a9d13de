import os
import stat

import pytest

from gitract.utils.io import atomic_path, write_text_atomic


def test_atomic_write_has_the_usual_mode(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "b.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_file_on_the_way_is_named_as_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("mine")
    for target in (tmp_path / "f" / "x.csv", tmp_path / "f" / "a" / "b" / "x.csv"):
        with pytest.raises(NotADirectoryError) as info:
            write_text_atomic(target, "x")
        assert (info.value.filename, info.value.strerror) == (str(tmp_path / "f"),
                                                              "is a file, not a folder")
    assert (tmp_path / "f").read_text() == "mine"


def test_errors_name_the_target_never_the_temporary_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_text_atomic(tmp_path / "d", "x")
    assert (info.value.filename, info.value.strerror) == (str(tmp_path / "d"),
                                                          "is a folder, not a file")
    target = tmp_path / "out.csv"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))  # as a full disk says it
    assert info.value.filename == str(target) and info.value.errno == 28
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
