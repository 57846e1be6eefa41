"""What every sanity check owes every method, generated from the registry,
and the pieces the front-ends show (``metrics.sanity_table``).

- The randomised model is always a copy: after each check of each
  registered method (``method_name``: every method for feature maps, on a
  small CNN held as a user may hold it; ``attention_method``: every
  attention method, on a tiny torchvision ViT) the user's model has the
  same parameter and buffer values, modes, ``requires_grad`` flags,
  ``.grad`` tensors and hooks, and the global random generator is where
  it was.
- The warning for an all-zero map ("try an earlier layer") is not given
  for the maps of the re-initialised copies, where its advice does not
  apply; it is still given for the user's model.
"""
import inspect
import warnings

import numpy as np
import pytest
import torch
from core.test_model_state import assert_same_state, snapshot, user_model  # tests/core/
from vit_cases import VIT_CASES  # tests/vit_cases.py

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metric_names import SANITY_CHECKS, check_sanity_checks
from pytorch_grad_cam.metrics.randomisation import CamRunner
from pytorch_grad_cam.metrics.sanity import (
    MPRT,
    EfficientMPRT,
    RandomLogitTest,
    SanityResult,
    SmoothMPRT,
    sanity_results,
)
from pytorch_grad_cam.metrics.sanity_table import (
    format_sanity_table,
    sanity_cost,
    sanity_cost_text,
    sanity_row,
)
from pytorch_grad_cam.registry import get_method

#: every check, sMPRT with 2 noisy copies instead of 50 (the same code path)
CHECKS = {"MPRT": MPRT, "sMPRT": lambda: SmoothMPRT(n_samples=2), "eMPRT": EfficientMPRT,
          "RandomLogit": RandomLogitTest}
#: the methods that average over samples take 2 (the guarantee does not depend on the count)
SAMPLE_ARGUMENTS = ("n_samples", "num_samples")


def _kwargs(name):
    parameters = inspect.signature(get_method(name).cls.__init__).parameters
    kwargs = {"batch_size": 4}
    kwargs.update({argument: 2 for argument in SAMPLE_ARGUMENTS if argument in parameters})
    return kwargs


def _assert_unchanged(model, check):
    before = snapshot(model)
    values = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-zero maps of random models
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: it ignores target_layers
        result = check()
    assert isinstance(result, SanityResult)
    assert_same_state(before, snapshot(model))
    after = model.state_dict()
    assert list(after) == list(values)
    assert all(torch.equal(values[k], after[k]) for k in values)
    assert torch.equal(rng, torch.get_rng_state())
    return result


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_method_leaves_the_model_unchanged(method_name, check):
    model = user_model()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    calls = len(model.user_calls)
    result = _assert_unchanged(model, lambda: CHECKS[check]()(
        x, None, model, method_name, [model.relu], method_kwargs=_kwargs(method_name)))
    assert result.test == check and result.values.shape == (2,)
    assert len(model.user_calls) > calls  # the user's own hook stayed on and ran


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_attention_method_leaves_the_vit_unchanged(attention_method, check):
    case = VIT_CASES["torchvision"]
    model = case.build()
    model.heads.train()  # modes as a user may leave them
    model.conv_proj.weight.requires_grad_(False)
    model.heads.head.weight.grad = torch.ones_like(model.heads.head.weight)
    model.heads.register_forward_hook(lambda m, i, o: None)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    # MPRT's cascade only: the independent steps take the same copy (the CNN runs both)
    make = (lambda: MPRT(independent=False)) if check == "MPRT" else CHECKS[check]
    _assert_unchanged(model, lambda: make()(
        x, None, model, attention_method, None, method_kwargs=_kwargs(attention_method)))


# ------------------------------------------ the empty-map warning of the copies
class _Net(torch.nn.Module):
    """One ReLU'd channel and a linear head with positive weights (a
    Grad-CAM map that is not empty); re-initialised (seed 0), the head's
    weight of the class is negative: every Grad-CAM map of the copy is all
    zero."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [2.0]]))
            self.conv.bias.fill_(0.1)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def _empty_map_warnings(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught if "all zeros" in str(w.message)]


def test_the_randomised_copies_do_not_warn_of_empty_maps():
    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    runner = CamRunner(GradCAM, model, [model.relu])
    copy = _Net().eval()
    with torch.no_grad():  # a copy whose every map is empty: the fc weights all negative
        copy.load_state_dict(model.state_dict())
        copy.fc.weight.fill_(-1.0)
    targets = None
    # the same maps warn for a model of the user's, not for a randomised copy
    assert len(_empty_map_warnings(lambda: runner.maps(copy, x, targets))) == 1
    assert _empty_map_warnings(lambda: runner.maps(copy, x, targets, randomised=True)) == []
    # the checks: several of the copies' maps are all zero, no warning about them
    seen = {}

    def run_checks():
        seen.update(sanity_results(["MPRT", "eMPRT"], x, None, model, GradCAM, [model.relu],
                                   {}, None))

    assert _empty_map_warnings(run_checks) == []
    # the copies' maps were all zero, the user's were not
    assert (seen["eMPRT"].details["randomised_entropy"] == 0).all()
    assert (seen["eMPRT"].details["original_entropy"] > 0).all()


def test_the_users_own_empty_maps_still_warn():
    model = _Net().eval()
    with torch.no_grad():
        model.fc.weight.fill_(-1.0)  # every map of the user's model is empty
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    messages = _empty_map_warnings(lambda: RandomLogitTest()(x, None, model, GradCAM,
                                                             [model.relu]))
    assert messages and messages[0].startswith("the class activation map is all zeros for "
                                               "image(s) [0, 1]")
    messages = _empty_map_warnings(lambda: MPRT(independent=False)(x, None, model, GradCAM,
                                                                   [model.relu]))
    assert len(messages) == 1  # the trained model's map, not the copies'


# ----------------------------------------------------------- names and tables
def test_sanity_check_names():
    assert check_sanity_checks(None) == []
    assert check_sanity_checks([]) == list(SANITY_CHECKS)
    assert check_sanity_checks("all") == list(SANITY_CHECKS)
    assert check_sanity_checks(["ALL"]) == list(SANITY_CHECKS)
    assert check_sanity_checks(["randomlogit", "mprt", "MPRT"]) == ["RandomLogit", "MPRT"]
    with pytest.raises(ValueError) as caught:
        check_sanity_checks(["MRPT"], "--sanity-checks")
    assert str(caught.value) == ("--sanity-checks: 'MRPT' is not a sanity check (did you mean "
                                 "MPRT or sMPRT?); choose from MPRT, sMPRT, eMPRT, RandomLogit "
                                 "or 'all'")
    with pytest.raises(ValueError, match=r"^sanity_checks: 'ROAD' is not a sanity check; "):
        check_sanity_checks(["MPRT", "ROAD"])
    with pytest.raises(TypeError, match="sanity_checks: a check must be a name, got 3"):
        check_sanity_checks([3])


def _result(test, values, **details):
    return SanityResult(test, "measure", np.asarray(values, np.float32), 0.5 if test != "eMPRT"
                        else 1.0, {k: np.asarray(v, np.float32) for k, v in details.items()})


def test_rows_and_table_by_hand():
    mprt = _result("MPRT", [0.9, 0.7], **{"cascading/spearman": [[1, 1], [0.9, 0.7]],
                                          "cascading/ssim": [[1, 1], [0.8, 0.6]],
                                          "cascading/top_k": [[1, 1], [0.5, 0.25]]})
    logit = _result("RandomLogit", [0.2, 0.4], ssim=[0.2, 0.4], spearman=[0.1, 0.3])
    rows = [sanity_row("edgecam", mprt), sanity_row("gradcam", logit)]
    assert rows[0] == {"method": "edgecam", "check": "MPRT", "value": pytest.approx(0.8),
                       "threshold": 0.5, "passed": False, "verdict": "FAIL",
                       "measure": "measure", "images": 2, "spearman": pytest.approx(0.8),
                       "ssim": pytest.approx(0.7), "top_k": pytest.approx(0.375)}
    assert rows[1]["verdict"] == "PASS" and rows[1]["top_k"] is None
    assert sanity_row("gradcam", logit, index=1)["value"] == pytest.approx(0.4)
    table = format_sanity_table(rows).splitlines()
    assert table[:4] == [
        "method   check         value  pass if  verdict  spearman    ssim   top-k",
        "-------  -----------  ------  -------  -------  --------  ------  ------",
        "edgecam  MPRT         0.8000    < 0.5     FAIL    0.8000  0.7000  0.3750",
        "gradcam  RandomLogit  0.3000    < 0.5     PASS    0.2000  0.3000       -"]
    assert table[4].startswith("MPRT passes < 0.5: Spearman rank correlation of the map with "
                               "the map after full cascading randomisation; the mark is "
                               "halfway between unchanged (1) and no agreement (0): Adebayo")
    assert table[5].startswith("RandomLogit passes < 0.5: SSIM of the maps of the class and "
                               "of a random other class")
    assert table[6].startswith("FAIL: edgecam fail(s) a sanity check")
    errored = format_sanity_table([{"method": "gradcam", "check": "eMPRT", "error": "boom",
                                    "threshold": 1.0}]).splitlines()
    assert errored[2].split() == ["gradcam", "eMPRT", "-", ">", "1", "ERROR", "-", "-", "-"]
    assert errored[-1] == "ERROR: gradcam eMPRT: boom"


def test_cost():
    model = user_model()  # conv, bn, fc: 3 layers to re-initialise
    assert sanity_cost(list(SANITY_CHECKS), model) == {"MPRT": 4, "sMPRT": 100, "eMPRT": 2,
                                                       "RandomLogit": 2}
    assert sanity_cost_text(["RandomLogit"], model) == "RandomLogit 2 maps"
    assert sanity_cost_text(["MPRT"], model) == (
        "MPRT 4 maps (MPRT on a re-initialised copy of the model, one more model in memory; "
        "the model itself is not changed)")
