"""pytorch_grad_cam.metrics._common.perturbation_run: the one set-up of the
metrics that run the model on perturbed inputs (deletion/insertion, the
confidence metrics, ROAD): the checks in order, eval mode and inference
mode inside, the model's state put back after."""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam.metrics._common import PerturbationRun, perturbation_run
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Dropout(0.5), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3)).train()


def test_inside_the_block_the_arguments_are_checked_and_the_model_is_in_eval_mode():
    model = _model()
    images = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    cams = np.full((2, 6, 6), 0.5)
    targets = (ClassifierOutputTarget(1), ClassifierOutputTarget(2))
    with perturbation_run(images, cams, targets, model, None) as run:
        assert isinstance(run, PerturbationRun)
        assert not model.training and torch.is_inference_mode_enabled()
        assert not any(p.requires_grad for p in model.parameters())
        assert run.inputs.dtype == torch.float32  # the model's dtype
        assert torch.equal(run.inputs, images.float())
        assert run.cams.dtype == torch.float32 and run.cams.shape == (2, 6, 6)
        assert run.targets == list(targets)
        assert run.batch_size == 8  # the CPU's default
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert not torch.is_inference_mode_enabled()
    with perturbation_run(images, cams, None, model, 3) as run:
        assert (run.targets, run.batch_size) == (None, 3)


def test_the_model_state_comes_back_when_the_block_raises():
    model = _model()
    model[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"), \
            perturbation_run(torch.rand(1, 3, 6, 6), np.zeros((1, 6, 6)), None, model, None):
        raise RuntimeError("inside")
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_the_checks_run_in_order_before_the_block():
    model = _model()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got 'model' \\(str\\)"), \
            perturbation_run(torch.rand(1, 3, 6, 6), "not maps", None, "model", None):
        pass
    with pytest.raises(ValueError, match=r"grayscale_cams has shape \(1, 5, 5\), expected "
                                         r"\(1, 6, 6\)"), \
            perturbation_run(torch.rand(1, 3, 6, 6), np.zeros((1, 5, 5)), "not targets", model,
                             None):
        pass
    with pytest.raises(TypeError, match="targets must be a list"), \
            perturbation_run(torch.rand(1, 3, 6, 6), np.zeros((1, 6, 6)),
                             ClassifierOutputTarget(0), model, None):
        pass
    assert model.training and all(p.requires_grad for p in model.parameters())
