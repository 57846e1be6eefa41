"""--sess: every method wrapped in SESS, its options, its cost and its file names."""
import argparse
import contextlib

import cli_helpers
import pytest
import torch
from cli_helpers import BUNDLED, EXAMPLES, LITE
from torch import nn

from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.cli import UsageError, cost, image_parser, job, main
from pytorch_grad_cam.sess import SESS
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def _args(*argv: str) -> argparse.Namespace:
    return image_parser().parse_args(list(argv))


def test_sess_options_become_sess_arguments():
    assert job.sess_options(_args()) is None
    assert job.sess_options(_args("--sess")) == {}
    assert job.sess_options(_args("--sess", "--sess-scales", "3", "--sess-step", "112",
                                  "--sess-pre-filter", "0.25", "--sess-pool", "max")) == {
        "num_scales": 3, "step_size": 112, "pre_filter_ratio": 0.25, "pool": "max"}


@pytest.mark.parametrize("argv, message", [
    (["--sess-pool", "max"], "--sess-pool only work with --sess"),
    (["--sess-scales", "2", "--sess-step", "8"], "--sess-scales, --sess-step only work with"),
])
def test_sess_options_without_sess_are_refused(argv, message):
    with pytest.raises(UsageError, match=message):
        job.sess_options(_args(*argv))


@pytest.mark.parametrize("argv", [["--sess-pre-filter", "1"], ["--sess-pre-filter", "x"],
                                  ["--sess-scales", "0"], ["--sess-pool", "median"]])
def test_bad_sess_values_are_usage_errors(argv):
    with pytest.raises(UsageError, match=f"argument {argv[0]}"):
        _args("--sess", *argv)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_the_sess_estimate_matches_the_images_the_model_scores(method):
    """One pass of the whole image, one scoring pass per window, and the
    base method's passes per window (ScoreCAM: its channels' masked copies
    plus one, which stands for its recording pass, as without SESS)."""
    torch.manual_seed(0)
    model = _Tiny().eval()
    scored = []
    model.fc.register_forward_hook(lambda module, args, output: scored.append(output.shape[0]))
    cam = SESS(model, [model.features[-1]], base_method=method, scales=[8, 12, 16],
               batch_size=4, progress=False)
    cam(torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(1)])
    patches = cam.patch_count(8, 8)
    assert patches == 1 + 4 + 4
    estimate = cost.method_cost(method.__name__.lower(), [6], cam=cam, input_size=8)
    assert sum(scored) == estimate.forward, (scored, estimate)
    assert estimate.backward == (patches if method is GradCAM else 0)


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    cli_helpers.use_loaded_bundled(monkeypatch, pretrained)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("efficientnet_lite_pytorch"),
                    reason="needs the examples extra (the bundled model)")
def test_a_sess_run_names_its_files_and_its_cost(bundled_once, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), *BUNDLED, "--method", "gradcam",
            "--sess", "--sess-scales", "2", "--no-progress", "--output-dir", str(out)]
    prepared = job.prepare(_args(*argv))
    assert prepared.sess == {"num_scales": 2} and prepared.name_parts[-1] == "sess"
    with contextlib.ExitStack() as stack:
        job.make_cams(prepared, stack)
        cam = prepared.cams["gradcam"]
        assert isinstance(cam, SESS) and type(cam.base_cam) is GradCAM
        assert cam.base_cam.target_layers == prepared.target_layers
        lines = job.header(prepared).splitlines()
    patches = cam.patch_count(224, 224)
    assert patches == 1 + 4  # 224 (the image) and 288 (2 x 2 windows)
    assert f"  gradcam: {1 + 2 * patches} forward + {patches} backward passes on cpu" in lines
    assert main(argv, prog="cam.py") == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"chelsea_{LITE}_sess_gradcam_{kind}.jpg"
                       for kind in ("cam", "cam_gb", "gb")]
    assert "wrapped in SESS" in capsys.readouterr().out
