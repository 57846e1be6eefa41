"""pytorch_grad_cam.datasets.cost: what explain-dataset prints before the
first image, against the forward passes the run then makes."""
import pytest
from dataset_helpers import LAYER, SMALL, TinyNet, write_photos

from pytorch_grad_cam.datasets import explain_dataset
from pytorch_grad_cam.datasets.cost import run_cost

FAST = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False}


def _run(folder, out, model, **options):
    """explain_dataset; returns (what on_start got, the images the model
    forwarded after it: the run's passes, the layer probe left out)."""
    starts, images = [], []
    model.register_forward_hook(lambda module, args, output: images.append(args[0].shape[0]))

    def on_start(start):
        starts.append(start)
        images.clear()

    explain_dataset(folder, model, out=out, on_start=on_start, **dict(FAST, **options))
    assert len(starts) == 1
    return starts[0], sum(images)


def test_the_cost_is_the_forward_passes_the_run_makes(tmp_path):
    write_photos(tmp_path / "photos", 3)
    start, forwarded = _run(
        tmp_path / "photos", tmp_path / "out", TinyNet(), methods=["gradcam", "scorecam"],
        batch_size=2, n_steps=10,
        metrics=["DropInConfidence", "ROADCombined", "Deletion", "Complexity", "Coherency"],
        method_options={"scorecam": {"constant_channel_shortcut": False}})  # exactly 8 + 1
    assert (start.items, start.skipped, start.to_explain, start.channels) == (3, 0, 3, [8])
    # per image: gradcam 1, scorecam 9; each map: 2 + 8 + 11 + 0, and Coherency its method's
    # passes again (1 and 9): 10 + 2 * 21 + 10 = 62 forward passes; backward: gradcam's and
    # its Coherency's
    assert run_cost(start).splitlines() == [
        "explaining 3 of 3 images with gradcam, scorecam at features[-1] on cpu",
        "cost per image:",
        "  gradcam: 1 forward + 1 backward pass on cpu",
        "  scorecam: ~9 forward passes on cpu",
        "  metrics, for each method's map: DropInConfidence 2, ROADCombined 8, Deletion 11, "
        "Complexity 0, Coherency (the method's passes again) forward passes",
        "  in all: ~186 forward + 6 backward passes for 3 images on cpu"]
    assert forwarded == 186


@pytest.mark.parametrize("metrics, per_image", [
    (["ROADMoRF", "ROADLeRF", "ROADCombined"], 1 + 5 + 5 + 0),  # Combined from MoRF and LeRF
    (["ARCC"], 1 + 8 + 0 + 1),  # its parts: ROADCombined, Complexity, Coherency
    (["Insertion", "IncreaseInConfidence"], 1 + 11 + 2),
])
def test_the_metrics_passes(tmp_path, metrics, per_image):
    write_photos(tmp_path / "photos", 2)
    start, forwarded = _run(tmp_path / "photos", tmp_path / "out", TinyNet(),
                            methods="gradcam", metrics=metrics, n_steps=10)
    assert forwarded == 2 * per_image
    assert run_cost(start).splitlines()[-1] == (
        f"  in all: {2 * per_image} forward + {2 * (2 if 'ARCC' in metrics else 1)} backward "
        "passes for 2 images on cpu")


def test_a_resumed_run_counts_only_what_is_left(tmp_path):
    paths = write_photos(tmp_path / "photos", 5)
    explain_dataset(paths[:3], TinyNet(), out=tmp_path / "out", **FAST)
    start, forwarded = _run(paths, tmp_path / "out", TinyNet())
    assert run_cost(start).splitlines() == [
        "explaining 2 of 5 images (3 already done) with gradcam at features[-1] on cpu",
        "cost per image:",
        "  gradcam: 1 forward + 1 backward pass on cpu",
        "  in all: 2 forward + 2 backward passes for 2 images on cpu"]
    assert forwarded == 2
    start, forwarded = _run(paths, tmp_path / "out", TinyNet())
    assert run_cost(start) == ("explaining 0 of 5 images (5 already done) with gradcam at "
                               "features[-1] on cpu")
    assert forwarded == 0


def test_on_start_is_checked_before_any_work(tmp_path):
    write_photos(tmp_path / "photos", 1)
    with pytest.raises(TypeError, match="on_start must be None or a callable, got 'print'"):
        explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "out", on_start="print",
                        **FAST)
    assert not (tmp_path / "out").exists()
