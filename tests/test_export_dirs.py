"""Model directories that never lose a model: concurrent exports, killed overwrites, stale staging, loading the
highest complete version, and one-line errors for file problems (exports, .keras files, backups)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time
import zipfile

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo import cli, export_dirs, run_files
from mmzoo.classifier import ModelFileError

pytestmark = pytest.mark.xdist_group("export")

HEX = "0123456789abcdef" * 2  # a staging token


def _tiny_model():
    image = keras.Input((8, 8, 3), name="image")
    return keras.Model({"image": image}, keras.layers.Dense(2)(keras.layers.Flatten()(image)))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return _tiny_model()


@pytest.fixture(scope="module")
def keras_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    model.save(path)
    return path


def _fake_version(path, *, complete=True):
    """A directory shaped like a SavedModel (export_dirs looks at names only)."""
    os.makedirs(path)
    if complete:
        (path / "saved_model.pb").write_bytes(b"pb")
        (path / "variables").mkdir()
    return path


def _cli(capsys, *argv):
    status = cli.main(list(argv))
    return status, capsys.readouterr().err.strip()


# === concurrent exports ===

_EXPORTER = textwrap.dedent("""
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, mmzoo
    image = keras.Input((8, 8, 3), name="image")
    model = keras.Model({"image": image}, keras.layers.Dense(2)(keras.layers.Flatten()(image)))
    open(sys.argv[2] + ".ready-" + sys.argv[3], "w").close()
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    print(mmzoo.export_model(model, sys.argv[1]))
""")


def test_concurrent_exports_get_distinct_complete_versions(tmp_path):
    script, go, root = tmp_path / "exporter.py", tmp_path / "go", tmp_path / "models" / "tiny"
    script.write_text(_EXPORTER)
    processes = [subprocess.Popen([sys.executable, str(script), str(root), str(go), str(i)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(3)]
    deadline = time.time() + 240
    while len(list(tmp_path.glob("go.ready-*"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    go.touch()  # all three export at once
    results = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err[-2000:] for _, err in results]
    written = sorted(out.strip().splitlines()[-1] for out, _ in results)
    assert written == [str(root / n) for n in ("1", "2", "3")]
    assert sorted(os.listdir(root)) == ["1", "2", "3"]  # no staging left
    assert all(export_dirs.is_complete(path) for path in written)
    assert mmzoo.load_exported(root).path == str(root / "3")


def test_two_exports_staged_at_once_publish_distinct_versions(tmp_path):
    with export_dirs.Staging(str(tmp_path), None) as first, export_dirs.Staging(str(tmp_path), None) as second:
        for staging in (first, second):
            _fake_version(pathlib.Path(staging.path))
        assert (second.publish(), first.publish()) == (str(tmp_path / "1"), str(tmp_path / "2"))
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]


def test_a_taken_number_is_skipped_not_replaced(tmp_path, monkeypatch):
    _fake_version(tmp_path / "1")
    (tmp_path / "1" / "mine").write_text("first")
    monkeypatch.setattr(export_dirs, "_next_version", lambda model_dir: 1)  # a listing already out of date
    with export_dirs.Staging(str(tmp_path), None) as staging:
        _fake_version(pathlib.Path(staging.path))
        assert staging.publish() == str(tmp_path / "2")
    assert (tmp_path / "1" / "mine").read_text() == "first"


def test_a_version_number_held_by_a_retired_copy_is_not_reused(tmp_path):
    _fake_version(tmp_path / "1")
    _fake_version(tmp_path / f".2.old-{HEX}")  # 2 may yet be restored from it
    assert export_dirs._next_version(str(tmp_path)) == 3


# === overwrite ===


def test_an_overwrite_killed_between_its_renames_is_restored_by_the_next_export(model, tmp_path, monkeypatch):
    root = tmp_path / "tiny"
    first = mmzoo.export_model(model, root)
    (root / "1" / "assets.extra" / "note.txt").write_text("old")
    real_rename, calls = os.rename, []

    def killed_after_first_rename(source, target):
        calls.append(target)
        if len(calls) > 1:  # the process "dies": neither the second rename nor the restore happen
            raise KeyboardInterrupt
        real_rename(source, target)

    monkeypatch.setattr(export_dirs.os, "rename", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        mmzoo.export_model(model, first, overwrite=True)
    monkeypatch.setattr(export_dirs.os, "rename", real_rename)
    assert not (root / "1").exists() and [p.name[:7] for p in root.iterdir()] == [".1.old-"]
    assert mmzoo.export_model(model, root) == str(root / "2")  # the next export restores 1 before numbering
    assert (root / "1" / "assets.extra" / "note.txt").read_text() == "old"
    assert sorted(os.listdir(root)) == ["1", "2"]


def test_an_orphaned_retired_version_is_restored_by_a_load(model, tmp_path):
    root = tmp_path / "tiny"
    mmzoo.export_model(model, root)
    os.rename(root / "1", root / f".1.old-{HEX}")
    assert mmzoo.load_exported(root / "1").path == str(root / "1")
    assert sorted(os.listdir(root)) == ["1"]


def test_overwrite_replaces_and_a_failed_second_rename_keeps_the_old_version(tmp_path, monkeypatch):
    _fake_version(tmp_path / "1")
    (tmp_path / "1" / "old").write_text("old")
    real_rename = os.rename

    def failing_second(source, target):
        if ".tmp-" in os.fspath(source):
            raise OSError(28, "No space left on device", os.fspath(source))
        real_rename(source, target)

    with export_dirs.Staging(str(tmp_path), 1, overwrite=True) as staging:
        _fake_version(pathlib.Path(staging.path))
        monkeypatch.setattr(export_dirs.os, "rename", failing_second)
        with pytest.raises(OSError, match="No space"):
            staging.publish()
        monkeypatch.setattr(export_dirs.os, "rename", real_rename)
    assert (tmp_path / "1" / "old").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["1"]
    with export_dirs.Staging(str(tmp_path), 1, overwrite=True) as staging:
        _fake_version(pathlib.Path(staging.path))
        staging.publish()
    assert not (tmp_path / "1" / "old").exists() and sorted(os.listdir(tmp_path)) == ["1"]


# === stale staging ===


def test_stale_staging_is_removed_and_live_staging_kept(tmp_path):
    _fake_version(tmp_path / "1")
    stale = [tmp_path / f".new.tmp-{HEX}", tmp_path / f".3.tmp-{HEX[::-1]}", tmp_path / f".1.old-{HEX}"]
    for path in stale:
        _fake_version(path / "model" if ".tmp-" in path.name else path)
    (tmp_path / ".hidden-by-someone-else").mkdir()
    with export_dirs.Staging(str(tmp_path), None) as live:
        assert not any(path.exists() for path in stale)
        with export_dirs.Staging(str(tmp_path), None) as other:  # its tidy-up sees `live` locked
            assert os.path.isdir(live.container) and os.path.isdir(other.container)
    assert sorted(os.listdir(tmp_path)) == [".hidden-by-someone-else", "1"]


def test_staging_of_a_killed_process_is_removed_by_the_next_export(model, tmp_path):
    root = tmp_path / "tiny"
    killer = tmp_path / "killed.py"
    killer.write_text(textwrap.dedent(f"""
        import os
        from mmzoo import export_dirs
        staging = export_dirs.Staging({str(root)!r}, None).__enter__()
        os.makedirs(staging.path)
        os._exit(9)  # like kill -9: no clean-up runs, the kernel drops the lock
    """))
    subprocess.run([sys.executable, str(killer)], check=False, timeout=120)
    assert len(list(root.glob(".new.tmp-*"))) == 1
    assert mmzoo.export_model(model, root) == str(root / "1")
    assert sorted(os.listdir(root)) == ["1"]


# === loading the highest complete version ===


def test_load_falls_back_to_the_highest_complete_version(model, tmp_path):
    root = tmp_path / "tiny"
    mmzoo.export_model(model, root / "2")
    _fake_version(root / "1")
    (root / "3").mkdir()  # empty
    _fake_version(root / "4", complete=False)
    (root / "4" / "saved_model.pb").write_bytes(b"")  # no variables/
    assert export_dirs.choose_version(str(root)) == str(root / "2")
    assert mmzoo.load_exported(root).path == str(root / "2")
    with pytest.raises(ValueError, match="saved_model.pb without a variables/"):
        mmzoo.load_exported(root / "4")


def test_no_complete_version_is_one_line_naming_the_directory(tmp_path, capsys):
    (tmp_path / "m" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"No complete SavedModel version in .*m'.*versions 1 each lack"):
        mmzoo.load_exported(tmp_path / "m")
    status, err = _cli(capsys, "evaluate", "--model", str(tmp_path / "m"))
    assert status == 2 and len(err.splitlines()) == 1 and "No complete SavedModel version" in err


def test_a_damaged_savedmodel_is_one_line_naming_it(tmp_path, capsys):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(tf.ones([100]))
    tf.saved_model.save(module, str(tmp_path / "m" / "1"))
    for shard in (tmp_path / "m" / "1" / "variables").iterdir():
        shard.write_bytes(shard.read_bytes()[:10])  # cut short
    with pytest.raises(ValueError, match=r"Cannot load the export .*1: .*the SavedModel is damaged"):
        mmzoo.load_exported(tmp_path / "m")
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"garbage")
    status, err = _cli(capsys, "evaluate", "--model", str(tmp_path / "m"))
    assert status == 2 and len(err.splitlines()) == 1 and "saved_model.pb" in err, err


# === exports into directories that cannot take them ===


def test_export_under_a_regular_file_is_one_line(model, keras_file, tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    for target in (tmp_path / "file" / "models", tmp_path / "file"):
        with pytest.raises(export_dirs.ExportDirectoryError, match=f"Cannot export to {target}"):
            mmzoo.export_model(model, target / "1")
    status, err = _cli(capsys, "export", "--model", str(keras_file), "--output", str(tmp_path / "file" / "m"))
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("mmzoo export: error: Cannot export to") and "writable directory" in err


def test_export_into_a_directory_refusing_writes_is_one_line(model, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    monkeypatch.setattr(export_dirs.os, "mkdir", refused)  # what a read-only mount does, even to root
    with pytest.raises(export_dirs.ExportDirectoryError, match=r"Cannot export to .*models: Permission denied"):
        mmzoo.export_model(model, tmp_path / "models")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "models") == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through permission bits")
def test_export_into_a_read_only_directory_is_one_line(model, tmp_path):
    (tmp_path / "models").mkdir()
    os.chmod(tmp_path / "models", 0o500)
    try:
        with pytest.raises(export_dirs.ExportDirectoryError, match="Permission denied"):
            mmzoo.export_model(model, tmp_path / "models")
    finally:
        os.chmod(tmp_path / "models", 0o700)


# === .keras files ===


def _rewrite(source, target, change):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            content = change(name, old.read(name))
            if content is not None:
                new.writestr(name, content)
    return target


def _unregistered(name, content):
    if name != "config.json":
        return content
    config = json.loads(content)
    config["config"]["layers"][-1].update(class_name="NoSuchLayer", module="nowhere", registered_name=None)
    return json.dumps(config)


def test_broken_keras_files_are_one_line_naming_the_file(keras_file, tmp_path, capsys):
    (tmp_path / "text.keras").write_text("hello")
    (tmp_path / "cut.keras").write_bytes(keras_file.read_bytes()[:2000])
    cases = {
        tmp_path / "text.keras": "not a .keras archive",
        tmp_path / "cut.keras": "not a .keras archive",
        _rewrite(keras_file, tmp_path / "noconfig.keras", lambda n, c: None if n == "config.json" else c):
            "has no config.json",
        _rewrite(keras_file, tmp_path / "unregistered.keras", _unregistered): "names 'NoSuchLayer'",
        tmp_path / "missing.keras": "No model file at",
    }
    for path, expected in cases.items():
        with pytest.raises(ModelFileError, match=expected) as caught:
            mmzoo.load_model(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    for path in list(cases)[:4]:
        status, err = _cli(capsys, "export", "--model", str(path), "--output", str(tmp_path / "out"))
        assert status == 2 and len(err.splitlines()) == 1 and str(path) in err, err
    assert not (tmp_path / "out").exists()


# === training backups ===


def test_a_backup_damaged_past_its_header_is_reported_damaged(model, tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    weights = backup / "latest.weights.h5"
    model.save_weights(weights)
    good = weights.read_bytes()
    (backup / "training_metadata.json").write_text('{"epoch": 2}')
    damaged = bytearray(good)
    damaged[len(good) // 2: len(good) // 2 + 400] = b"\xff" * 400
    weights.write_bytes(bytes(damaged))
    import h5py

    with h5py.File(weights, "r"):
        pass  # the header is intact: the file opens
    with pytest.raises(Exception):  # noqa: B017  (KeyError or RuntimeError, by where the damage is)
        model.load_weights(weights)  # what Keras's BackupAndRestore would meet
    with pytest.raises(ValueError, match="backup in .* is damaged"):
        run_files.resume_epoch(str(backup))
    (backup / "latest.weights.h5.bkp").write_bytes(good)
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 1}')
    assert run_files.resume_epoch(str(backup)) == 1
    assert weights.read_bytes() == good
    assert run_files.readable_h5(str(weights)) and np.isfinite(model.get_weights()[0]).all()
