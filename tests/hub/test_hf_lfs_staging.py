"""LFS objects staged for a commit that never came are collected."""

from __future__ import annotations


def test_staged_lfs_objects_no_commit_took_are_collected(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from hub.hf import lfs

    key = lfs.staged_key(7, "a" * 64)
    default_storage.save(key, ContentFile(b"abandoned"))
    assert lfs.staged_collect_garbage(grace_seconds=3600) == []  # a push may still commit it
    assert lfs.staged_collect_garbage(grace_seconds=0, dry_run=True) == [key]
    assert default_storage.exists(key)
    assert lfs.staged_collect_garbage(grace_seconds=0) == [key]
    assert not default_storage.exists(key)
