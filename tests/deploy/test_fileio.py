"""Atomic writes are durable: the file is fsynced before the rename, its folder after."""

import os

import pytest

from gradgroup.deploy import fileio
from gradgroup.deploy.errors import RunError


@pytest.fixture
def calls(monkeypatch):
    """Every fsync (with the path of the synced descriptor) and rename, in order."""
    seen = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        seen.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return seen


PROC = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds through /proc")


@PROC
def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, calls):
    path = fileio.write_text_atomic(tmp_path / "a.json", "{}\n")
    assert path.read_text() == "{}\n"
    (kind1, synced), (kind2, src, dst), (kind3, folder) = calls
    assert (kind1, kind2, kind3) == ("fsync", "replace", "fsync")
    assert synced == src and src != dst and dst == str(path)  # the temp file, before the rename
    assert folder == str(tmp_path)
    assert not os.path.exists(src)


def test_a_failed_fsync_leaves_nothing_and_is_one_error(tmp_path, monkeypatch):
    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(RunError, match="cannot write .*a.json: Input/output error"):
        fileio.write_text_atomic(tmp_path / "a.json", "x")
    assert list(tmp_path.iterdir()) == []


@PROC
def test_a_folder_that_refuses_fsync_does_not_fail_the_write(tmp_path, monkeypatch):
    real = os.fsync

    def files_only(fd):
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(22, "Invalid argument")  # some file systems refuse folder fsyncs
        real(fd)

    monkeypatch.setattr(os, "fsync", files_only)
    assert fileio.write_text_atomic(tmp_path / "b.txt", "ok").read_text() == "ok"
