"""``scoring``: the target scores of a batch equal the scores taken one by one, gradients
included.
"""
import torch

from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget


def test_target_scores_of_class_targets_equal_the_scores_taken_one_by_one():
    from pytorch_grad_cam.base_cam import BaseCAM
    outputs = torch.randn(4, 10, requires_grad=True)
    targets = [ClassifierOutputTarget(c) for c in (3, -1, 0, 9)]
    fast = BaseCAM.target_scores(targets, outputs)
    one_by_one = torch.stack([t(o) for t, o in zip(targets, outputs)])
    torch.testing.assert_close(fast, one_by_one, rtol=0, atol=0)
    grad_fast, = torch.autograd.grad(fast.sum(), outputs)
    grad_slow, = torch.autograd.grad(one_by_one.sum(), outputs)
    torch.testing.assert_close(grad_fast, grad_slow)
    # a mixed list and subclasses take the general path with the same meaning
    mixed = [ClassifierOutputTarget(1), ClassifierOutputSoftmaxTarget(2),
             ClassifierOutputTarget(3), ClassifierOutputTarget(4)]
    torch.testing.assert_close(BaseCAM.target_scores(mixed, outputs),
                               torch.stack([t(o) for t, o in zip(mixed, outputs)]))
