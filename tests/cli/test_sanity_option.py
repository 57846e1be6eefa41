"""``--sanity-checks``: the sanity checks of every method on every image,
printed as a table with each check's value, threshold, PASS or FAIL and
similarities. On the CNN trained on the synthetic shapes Grad-CAM passes
MPRT and the random logit test and an edge detector (registered for the
test) fails both, flagged FAIL; a bad name is refused before the model
loads, by the image command and by ``vit``, with the close names and
every valid one."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import EXAMPLES, ROOT, _environment
from sanity_cases import edge_method_registered, trained_shapes_cnn  # tests/sanity_cases.py
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam.cli import image_parser, models
from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.parser import build_vit_parser
from pytorch_grad_cam.metric_names import SANITY_CHECKS

#: the held-out image the command explains (an image Grad-CAM's map of which
#: does not survive the randomisation: most of them, see tests/metrics/test_sanity.py)
IMAGE = 0


@pytest.fixture
def shape_image(tmp_path):
    model, data, _ = trained_shapes_cnn()
    rgb = (data.images[IMAGE].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "shape.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return model, path


def _load(model):
    # the shapes models take the images centred on zero: (x - 0.5) / 1
    return lambda args: models.LoadedModel(model, "shapes", 48, (0.5,) * 3, (1.0,) * 3)


def test_the_option_parses_names_and_defaults_to_none():
    assert image_parser().parse_args([]).sanity_checks is None
    assert image_parser().parse_args(["--sanity-checks"]).sanity_checks == []
    assert image_parser().parse_args(["--sanity-checks", "MPRT", "randomlogit"]).sanity_checks \
        == ["MPRT", "randomlogit"]
    assert build_vit_parser().parse_args(["--sanity-checks", "all"]).sanity_checks == ["all"]
    text = image_parser().format_help()
    assert "--sanity-checks [NAME ...]" in text
    flat = " ".join(text.split())
    for words in ("MPRT, sMPRT, eMPRT, RandomLogit, in any letter case",
                  "MPRT 1 + one per layer with parameters (resnet50: 108)", "sMPRT 100",
                  "eMPRT 2", "RandomLogit 2 (the class and a random other class)",
                  "the model itself is not changed"):
        assert words in flat, words


@pytest.mark.parametrize("parser", [image_parser("cam.py"), build_vit_parser("cam.py")],
                         ids=["image", "vit"])
def test_a_bad_name_is_refused_before_the_model_loads(parser, tmp_path, capsys):
    def no_model(args):
        raise AssertionError("the model was loaded")

    status = run_command(["--image-path", str(EXAMPLES / "chelsea.jpg"), "--output-dir",
                          str(tmp_path / "out"), "--sanity-checks", "MPRT", "MRPT"], parser,
                         load=no_model)
    assert status == 2
    assert capsys.readouterr().err == (
        "cam.py: error: --sanity-checks: 'MRPT' is not a sanity check (did you mean MPRT or "
        "sMPRT?); choose from MPRT, sMPRT, eMPRT, RandomLogit or 'all'\n")
    assert not (tmp_path / "out").exists()


def test_the_command_refuses_a_bad_name_before_torch_loads(tmp_path):
    """The whole command in a process of its own: the check runs before
    torch is imported (a typo is reported at once)."""
    code = ("import sys\n"
            "from pytorch_grad_cam.commands import main\n"
            "status = main(['--sanity-checks', 'eMPTR', '--output-dir', sys.argv[1]])\n"
            "print('torch' in sys.modules, status)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=ROOT,
                          env=_environment(), capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "2"], done.stderr
    assert done.stderr.strip().endswith("--sanity-checks: 'eMPTR' is not a sanity check (did "
                                        "you mean eMPRT or MPRT?); choose from MPRT, sMPRT, "
                                        "eMPRT, RandomLogit or 'all'")


def _rows(out):
    """{(method, check): the table's cells after them}."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[1] in SANITY_CHECKS:
            rows[cells[0], cells[1]] = cells[2:]
    return rows


def test_gradcam_passes_and_an_edge_detector_is_flagged_fail(shape_image, tmp_path, capsys,
                                                            monkeypatch):
    model, path = shape_image
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with edge_method_registered(monkeypatch) as edge:
        status = run_command(["--image-path", str(path), "--no-progress", "--output-dir",
                              str(tmp_path / "out"), "--target-layer", "features[-1]",
                              "--method", "gradcam", edge, "--sanity-checks", "mprt",
                              "RandomLogit"], image_parser("cam.py"), load=_load(model))
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "all zeros" not in err  # the copies' empty maps do not warn
    lines = out.splitlines()
    # the cost, before the run: SmallCNN has 4 convolutions, 4 batch norms and 1 linear layer
    assert ("sanity checks per image, class and method: MPRT 10 maps, RandomLogit 2 maps "
            "(MPRT on a re-initialised copy of the model, one more model in memory; the model "
            "itself is not changed)") in lines
    assert "  sanity checks of gradcam, edgecam: MPRT, RandomLogit" in lines
    rows = _rows(out)
    assert list(rows) == [("gradcam", "MPRT"), ("gradcam", "RandomLogit"), ("edgecam", "MPRT"),
                          ("edgecam", "RandomLogit")]
    for method, verdict in (("gradcam", "PASS"), ("edgecam", "FAIL")):
        for check in ("MPRT", "RandomLogit"):
            value, relation, mark, shown = rows[method, check][:4]
            assert (relation, mark, shown) == ("<", "0.5", verdict), (method, check)
            assert (float(value) < 0.5) == (verdict == "PASS")
    # the edge map ignores the weights and the class: every similarity is 1
    assert rows["edgecam", "MPRT"] == ["1.0000", "<", "0.5", "FAIL", "1.0000", "1.0000",
                                       "1.0000"]
    assert rows["edgecam", "RandomLogit"] == ["1.0000", "<", "0.5", "FAIL", "1.0000", "1.0000",
                                              "-"]
    assert any(line.startswith("  MPRT passes < 0.5: Spearman rank correlation") and
               "Adebayo et al. (NeurIPS 2018)" in line for line in lines)
    assert any(line.startswith("  RandomLogit passes < 0.5: SSIM of the maps of the class") and
               "Sixt et al. (ICML 2020)" in line for line in lines)
    assert ("  FAIL: edgecam fail(s) a sanity check: the map does not depend enough on the "
            "model's weights or on the class; do not trust it as an explanation of this "
            "model") in lines
    # the run's model is not changed
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_without_the_option_no_check_runs(shape_image, tmp_path, capsys, monkeypatch):
    model, path = shape_image
    status = run_command(["--image-path", str(path), "--no-progress", "--output-dir",
                          str(tmp_path / "out")], image_parser("cam.py"), load=_load(model))
    out = capsys.readouterr().out
    assert status == 0 and "sanity checks" not in out and not _rows(out)


def test_vit_with_an_attention_method_and_two_classes(tmp_path, capsys):
    """``vit`` shares the option: a table per explained class (``--top-k 2``),
    the attention method checked on every block."""
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                              hidden_dim=16, mlp_dim=32, num_classes=5).eval()
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero
    status = run_command(["--image-path", str(EXAMPLES / "chelsea.jpg"), "--no-progress",
                          "--top-k", "2", "--method", "gradcam", "attentionrollout",
                          "--output-dir", str(tmp_path / "out"), "--sanity-checks",
                          "RandomLogit"], build_vit_parser("vit_example.py"),
                         load=lambda args: models.LoadedModel(model, "vit_b_16", 32),
                         guided_backprop=False, default_model=None)
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.splitlines()
    classes = [line for line in lines if line.startswith("  class ")]
    assert len(classes) == 2 and classes[0] != classes[1]
    checked = [line.split()[:2] for line in lines if line.split()[1:2] == ["RandomLogit"]]
    assert checked == [["gradcam", "RandomLogit"], ["attentionrollout", "RandomLogit"]] * 2
