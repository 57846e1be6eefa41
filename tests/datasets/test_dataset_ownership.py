"""pytorch_grad_cam.datasets.ownership: a run writes only into a new or
empty folder or a results store (marked by grad-cam-store.json), and
overwrite deletes only the files the store recorded as its own; the
refusals name the option as the library or the command line spells it."""
import json

import pytest
from dataset_helpers import LAYER, SMALL, TinyNet, write_photos

from pytorch_grad_cam.cli.models import LoadedModel
from pytorch_grad_cam.datasets import StoreRefused, explain_dataset, open_results, write_report
from pytorch_grad_cam.datasets.cli import PROG, main
from pytorch_grad_cam.datasets.ownership import MARKER_NAME, read_marker, record, remove_owned
from pytorch_grad_cam.datasets.store import Store, config_differences

OPTIONS = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False, "shard_size": 2}


def _snapshot(folder):
    """Every file under ``folder`` (relative posix path -> bytes) and every folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _tiny(args):
    return LoadedModel(TinyNet(), "tiny", input_size=32)


def _cli(photos, out, *extra):
    return main([str(photos), "--out", str(out), "--target-layer", LAYER, "--no-progress",
                 "--workers", "0", *extra], load=_tiny)


@pytest.fixture
def photos(tmp_path):
    write_photos(tmp_path / "photos", 3)
    return tmp_path / "photos"


@pytest.fixture
def users_folder(tmp_path):
    """A folder of the user's that has the store's file names but is no store."""
    folder = tmp_path / "mine"
    (folder / "shards").mkdir(parents=True)
    (folder / "report_files").mkdir()
    (folder / "config.json").write_text('{"learning_rate": 0.1}')
    (folder / "index.json").write_text('["my", "index"]')
    (folder / "report.html").write_text("<p>my report</p>")
    (folder / "shards" / "x.npz").write_bytes(b"my array")
    (folder / "report_files" / "y.png").write_bytes(b"my picture")
    (folder / "notes.txt").write_text("my notes")
    return folder


NOT_A_STORE = ("out {folder!r} is not a grad-cam results store (it holds other files and no "
               "grad-cam-store.json); nothing was changed: choose an empty or new folder")


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_store_is_refused_and_left_unchanged(photos, users_folder,
                                                                    overwrite):
    before = _snapshot(users_folder)
    with pytest.raises(StoreRefused) as raised:
        explain_dataset(photos, TinyNet(), "gradcam", out=users_folder, overwrite=overwrite,
                        **OPTIONS)
    assert str(raised.value) == NOT_A_STORE.format(folder=str(users_folder))
    assert _snapshot(users_folder) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_the_command_line_refuses_a_folder_that_is_not_a_store(photos, users_folder, overwrite,
                                                               capsys):
    before = _snapshot(users_folder)
    assert _cli(photos, users_folder, *overwrite) == 2
    error = capsys.readouterr().err
    assert error == f"{PROG}: error: " + NOT_A_STORE.format(folder=str(users_folder)) + "\n"
    assert _snapshot(users_folder) == before


def test_overwrite_deletes_the_stores_files_and_nothing_else(photos, tmp_path):
    out = tmp_path / "out"
    explain_dataset(photos, TinyNet(), "gradcam", out=out, report=True, **OPTIONS)
    written = _snapshot(out)
    assert {"config.json", "index.json", "report.html", MARKER_NAME, "shards",
            "report_files"} <= set(written)
    marker = read_marker(out)
    pictures = sorted(name for name in written if name.startswith("report_files/"))
    assert pictures and set(pictures) <= set(marker["files"])  # the report's files, recorded
    assert sorted(marker["folders"]) == ["report_files", "shards"]
    (out / "notes.txt").write_text("keep me")
    (out / "shards" / "mine.npz").write_bytes(b"my array, in the store's folder")
    (out / "report_files" / "y.png").write_bytes(b"my picture")

    Store(out).clear()
    assert _snapshot(out) == {MARKER_NAME: (out / MARKER_NAME).read_bytes(),
                              "notes.txt": b"keep me", "report_files": None,
                              "report_files/y.png": b"my picture", "shards": None,
                              "shards/mine.npz": b"my array, in the store's folder"}
    marker = json.loads((out / MARKER_NAME).read_text())
    assert (marker["files"], marker["series"], marker["source"]) == ([], [], None)
    assert marker["folders"] == ["report_files", "shards"]  # not empty: kept, still the store's

    # the same with a run: the old results go, the user's files stay
    (out / "report_files" / "y.png").unlink()
    summary = explain_dataset(photos, TinyNet(), "gradcam", out=out, overwrite=True, **OPTIONS)
    assert (summary.processed, summary.skipped) == (3, 0)
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "shards" / "mine.npz").read_bytes() == b"my array, in the store's folder"
    assert not (out / "report_files").exists()  # the store's folder, left empty: deleted
    assert len(open_results(out).frame) == 3


def test_the_report_of_a_folder_that_is_not_a_store_is_refused(photos, tmp_path):
    out = tmp_path / "out"
    explain_dataset(photos, TinyNet(), "gradcam", out=out, **OPTIONS)
    (out / MARKER_NAME).unlink()  # as written by an older version, or copied without it
    with pytest.raises(StoreRefused) as raised:
        write_report(out)
    assert str(raised.value) == NOT_A_STORE.format(folder=str(out))
    assert not (out / "report.html").exists() and not (out / "report_files").exists()


def test_empty_and_new_folders_are_fine(photos, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert explain_dataset(photos, TinyNet(), "gradcam", out=out, **OPTIONS).processed == 3
        assert read_marker(out)["files"] == ["config.json", "index.json"]


@pytest.mark.parametrize("marker, message", [
    ({"format": "grad-cam-store", "version": 2},
     "is a results store of a newer grad-cam (store format version 2; this version reads "
     "version 1); nothing was changed: use a newer grad-cam, or choose an empty or new folder"),
    ({"format": "something-else", "version": 1},
     "grad-cam-store.json is not a grad-cam results store marker (format 'something-else', "
     "expected 'grad-cam-store'); nothing was changed: choose an empty or new folder"),
    ({"format": "grad-cam-store", "version": 1, "files": ["../outside.txt"]},
     "grad-cam-store.json lists files that are not paths inside the store: ['../outside.txt']"),
    ({"format": "grad-cam-store", "version": 1, "files": ["/etc/hosts"]},
     "grad-cam-store.json lists files that are not paths inside the store: ['/etc/hosts']"),
])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_marker_of_another_format_or_version_is_refused(photos, tmp_path, marker, message,
                                                          overwrite):
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER_NAME).write_text(json.dumps(marker))
    (tmp_path / "outside.txt").write_text("not the store's")
    before = _snapshot(out)
    with pytest.raises(StoreRefused) as raised:
        explain_dataset(photos, TinyNet(), "gradcam", out=out, overwrite=overwrite, **OPTIONS)
    assert message in str(raised.value) and str(raised.value).startswith(f"out {str(out)!r}")
    assert _snapshot(out) == before and (tmp_path / "outside.txt").exists()


def test_overwrite_does_not_follow_a_link_out_of_the_store(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "a.jpg").write_text("not the store's")
    record(out, files=["report_files/a.jpg"], folders=["report_files"])
    (out / "report_files").symlink_to(elsewhere, target_is_directory=True)
    remove_owned(out)
    assert (elsewhere / "a.jpg").read_text() == "not the store's"


def test_the_refusals_name_the_option_as_each_front_end_spells_it(photos, tmp_path, capsys):
    out = tmp_path / "out"
    explain_dataset(photos, TinyNet(), "gradcam", out=out, **OPTIONS)
    with pytest.raises(StoreRefused) as raised:
        explain_dataset(photos, TinyNet(), "gradcam", out=out, targets=1, **OPTIONS)
    expected = (f"out {str(out)!r} holds results of another configuration (targets: \"top\" in "
                "the store, 1 now); resume only with the same configuration, or choose another "
                "folder, or pass {option} to replace its results")
    assert str(raised.value) == expected.format(option="overwrite=True")
    assert _cli(photos, out, "--target-category", "1") == 2
    assert capsys.readouterr().err == (f"{PROG}: error: "
                                       + expected.format(option="--overwrite") + "\n")


def test_a_long_value_is_shown_by_whole_entries_never_cut():
    """A short value whole; of a long list the entry that differs, by its
    index, and a long list of another length by its first and last
    entries, whole, around the number left out."""
    layers = [f"blocks[{i}].attention.output" for i in range(6)]
    old = {"target_layers": layers, "preprocess": {"size": [224, 224]}}
    new = {"target_layers": layers[:-1] + ["blocks[5].mlp"], "preprocess": {"size": [224, 256]}}
    assert config_differences(old, new) == [
        "preprocess.size: [224, 224] in the store, [224, 256] now",
        'target_layers[5]: "blocks[5].attention.output" in the store, "blocks[5].mlp" now']
    shown, = config_differences(old, {"target_layers": layers[:-1], "preprocess": {"size": [224, 224]}})
    assert shown == ('target_layers: ["blocks[0].attention.output", ... 4 more ..., '
                     '"blocks[5].attention.output"] (6 entries) in the store, '
                     '["blocks[0].attention.output", ... 3 more ..., '
                     '"blocks[4].attention.output"] (5 entries) now')
    assert config_differences({"methods": ["gradcam"]}, {"methods": ["gradcam", "scorecam"]}) \
        == ['methods: ["gradcam"] in the store, ["gradcam", "scorecam"] now']
