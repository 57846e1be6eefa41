"""The sanity checks of a dataset run (``--sanity-checks``, ``--sanity-images``,
``datasets.sanity``): a bounded sample (the first N images every method
explained), ``sanity.json`` written whole, the summary's and the report's
section with a visible FAIL for an edge detector (registered for the
test), names checked before the model loads, and resuming: a store made
without the checks resumes with them, a finished check is not run again,
and a run stopped during the checks keeps the methods done."""
import json

import pytest
import torch
from dataset_helpers import LAYER, SMALL, TinyNet, write_photos
from sanity_cases import edge_method_registered  # tests/sanity_cases.py

from pytorch_grad_cam.datasets import explain_dataset, load_results, options
from pytorch_grad_cam.datasets import sanity as dataset_sanity
from pytorch_grad_cam.datasets.cli import main
from pytorch_grad_cam.datasets.ownership import read_marker
from pytorch_grad_cam.models.loading import LoadedModel


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 4)
    (folder / "img_000a.png").write_bytes(b"not an image")  # second in order: skipped
    return folder


def _load(args):
    return LoadedModel(TinyNet(), "tiny", 32)


def _run(photos, out, *extra):
    return main([str(photos), "--out", str(out), "--no-progress", "--workers", "0",
                 "--target-layer", LAYER, *extra], load=_load)


def test_the_default_sample_size_is_the_modules():
    assert options.DEFAULT_SANITY_IMAGES == dataset_sanity.DEFAULT_SANITY_IMAGES == 8
    args = options.build_parser().parse_args(["photos"])
    assert args.sanity_checks is None and args.sanity_images is None


@pytest.mark.parametrize("argv, message", [
    (["--sanity-checks", "MPRT", "ROAD"],
     "--sanity-checks: 'ROAD' is not a sanity check; choose from MPRT, sMPRT, eMPRT, "
     "RandomLogit or 'all'"),
    (["--sanity-checks", "randomlogt"],
     "--sanity-checks: 'randomlogt' is not a sanity check (did you mean RandomLogit?); choose "
     "from MPRT, sMPRT, eMPRT, RandomLogit or 'all'"),
    (["--sanity-images", "4"],
     "--sanity-images is the sample of --sanity-checks; give --sanity-checks too"),
    (["--sanity-checks", "--sanity-images", "0"],
     "argument --sanity-images: must be a positive integer, got '0'"),
])
def test_bad_options_are_refused_before_the_model_loads(argv, message, photos, tmp_path,
                                                        capsys):
    def no_model(args):
        raise AssertionError("the model was loaded")

    out = tmp_path / "out"
    assert main([str(photos), "--out", str(out), *argv], load=no_model) == 2
    assert capsys.readouterr().err == f"grad-cam explain-dataset: error: {message}\n"
    assert not out.exists()
    with pytest.raises(ValueError, match="sanity_checks: 'ROAD' is not a sanity check"):
        explain_dataset(photos, TinyNet(), out=out, sanity_checks=["ROAD"])
    assert not out.exists()


def test_the_sample_the_section_and_fail(photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    with edge_method_registered(monkeypatch) as edge:
        status = _run(photos, out, "--method", "gradcam", edge, "--sanity-checks", "mprt",
                      "RandomLogit", "--sanity-images", "2", "--report")
    printed, err = capsys.readouterr()
    assert status == 0, err
    lines = printed.splitlines()
    # the cost, before the run: TinyNet has 2 convolutions and 1 linear layer
    assert ("  sanity checks after the run, on the first 2 image(s) every method explained, "
            "per method: MPRT 4 maps, RandomLogit 2 maps (MPRT on a re-initialised copy of "
            "the model, one more model in memory; the model itself is not changed)") in lines
    # the unreadable file is left out of the sample; the first two explained images
    stored = json.loads((out / "sanity.json").read_text())
    assert stored["sample"] == ["img_000.png", "img_001.png"]
    frame = load_results(out)
    first = frame[(frame["method"] == "gradcam") & (frame["rank"] == 0)].set_index("id")
    assert stored["targets"] == [int(first.loc[i, "target"]) for i in stored["sample"]]
    assert stored["checks"] == ["MPRT", "RandomLogit"] and stored["images"] == 2
    rows = {(row["method"], row["check"]): row for row in stored["rows"]}
    assert list(rows) == [("gradcam", "MPRT"), ("gradcam", "RandomLogit"), ("edgecam", "MPRT"),
                          ("edgecam", "RandomLogit")]
    for check in ("MPRT", "RandomLogit"):
        edge_row = rows["edgecam", check]
        assert (edge_row["verdict"], edge_row["passed"], edge_row["images"]) == ("FAIL", False, 2)
        assert edge_row["value"] == pytest.approx(1.0, abs=1e-4)
        assert edge_row["threshold"] == 0.5
    # the summary's section
    start = lines.index("sanity checks on the first 2 image(s) every method explained "
                        "(img_000.png, img_001.png), mean over them:")
    table = lines[start + 1:]
    assert table[0].split() == ["method", "check", "value", "pass", "if", "verdict",
                                "spearman", "ssim", "top-k"]
    assert table[4].split() == ["edgecam", "MPRT", "1.0000", "<", "0.5", "FAIL", "1.0000",
                                "1.0000", "1.0000"]
    assert table[5].split()[:6] == ["edgecam", "RandomLogit", "1.0000", "<", "0.5", "FAIL"]
    assert ("  FAIL: edgecam fail(s) a sanity check: the map does not depend enough on the "
            "model's weights or on the class; do not trust it as an explanation of this "
            "model") in lines
    # the report's section, FAIL visible
    page = (out / "report.html").read_text()
    assert "<h2 id='sanity'>Sanity checks</h2>" in page
    assert ("On the first 2 image(s) that every method explained (img_000.png, img_001.png)"
            in page)
    assert ("<tr><td>edgecam</td><td>MPRT</td><td>1.0000</td><td>&lt; 0.5</td><td><strong "
            "class='fail'>FAIL</strong></td>") in page
    assert "<p class='fail'><strong>FAIL</strong>: edgecam fail(s) a sanity check" in page
    assert "Adebayo et al. (NeurIPS 2018)" in page and "Sixt et al. (ICML 2020)" in page
    # the store owns the file: --overwrite deletes it
    assert "sanity.json" in read_marker(out)["files"]
    assert _run(photos, out, "--overwrite") == 0
    assert not (out / "sanity.json").exists()
    assert "sanity checks" not in capsys.readouterr().out


def _counting(monkeypatch, stop_at=None):
    """Counts the methods the checks run for (``datasets.sanity``'s calls of
    ``sanity_results``); KeyboardInterrupt at the call ``stop_at``."""
    calls = []
    real = dataset_sanity.sanity_results

    def counted(names, inputs, targets, model, method, *args):
        calls.append((method.__name__, tuple(names)))
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(names, inputs, targets, model, method, *args)

    monkeypatch.setattr(dataset_sanity, "sanity_results", counted)
    return calls


def test_resume_with_sanity_checks(photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    model = TinyNet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {"methods": ["gradcam", "xgradcam"], "target_layers": [LAYER], "out": out,
                "progress": False, "workers": 0, "sanity_images": 3, "preprocess": SMALL}
    # a store made without the checks (as before they existed): no sanity.json
    first = explain_dataset(photos, model, **settings)
    assert first.sanity is None and not (out / "sanity.json").exists()
    # resumed with them: nothing explained again, the checks run on the stored rows
    calls = _counting(monkeypatch, stop_at=3)  # stopped at xgradcam's first check
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(photos, model, sanity_checks=["MPRT", "eMPRT"], **settings)
    kept = json.loads((out / "sanity.json").read_text())  # written whole, gradcam's rows
    assert kept["checks"] == ["MPRT", "eMPRT"]
    assert [(row["method"], row["check"]) for row in kept["rows"]] == [("gradcam", "MPRT"),
                                                                         ("gradcam", "eMPRT")]
    # run again: gradcam's checks are reused, only xgradcam's run
    calls = _counting(monkeypatch)
    summary = explain_dataset(photos, model, sanity_checks=["MPRT", "eMPRT"], **settings)
    assert calls == [("XGradCAM", ("MPRT",)), ("XGradCAM", ("eMPRT",))]
    assert summary.processed == 0 and summary.skipped == 5
    assert summary.sanity is not None and summary.sanity["sample"] == [
        "img_000.png", "img_001.png", "img_002.png"]
    assert summary.sanity["rows"][:2] == kept["rows"]
    assert [(row["method"], row["check"]) for row in summary.sanity["rows"][2:]] == [
        ("xgradcam", "MPRT"), ("xgradcam", "eMPRT")]
    # once more: nothing runs; another check runs the checks again
    calls = _counting(monkeypatch)
    again = explain_dataset(photos, model, sanity_checks=["eMPRT", "MPRT"], **settings)
    assert calls == []
    assert [r["check"] for r in again.sanity["rows"]] == ["eMPRT", "MPRT", "eMPRT", "MPRT"]
    more = explain_dataset(photos, model, sanity_checks=["RandomLogit"], **settings)
    assert [name for name, _ in calls] == ["GradCAM", "XGradCAM"]
    assert [(r["method"], r["check"]) for r in more.sanity["rows"]] == [
        ("gradcam", "RandomLogit"), ("xgradcam", "RandomLogit")]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_damaged_sanity_file_is_named(photos, tmp_path):
    out = tmp_path / "out"
    settings = {"target_layers": [LAYER], "out": out, "progress": False, "workers": 0,
                "preprocess": SMALL, "sanity_checks": ["RandomLogit"], "sanity_images": 1}
    explain_dataset(photos, TinyNet(), **settings)
    (out / "sanity.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"sanity.json' cannot be read \(.*\); delete it to "
                                         "run the sanity checks again"):
        explain_dataset(photos, TinyNet(), **settings)
    (out / "sanity.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="sanity.json' is not the sanity checks of a results "
                                         "store; delete it to run them again"):
        explain_dataset(photos, TinyNet(), **settings)
