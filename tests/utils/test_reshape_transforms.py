"""``utils.reshape_transforms``: the Vision Transformer and Swin token layouts as maps.
"""
import pytest
import torch

from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform


# ------------------------------------------------------- reshape transforms
@pytest.mark.parametrize("tokens, prefix, side", [(197, 1, 14), (198, 2, 14), (50, 1, 7),
                                                 (17, 1, 4), (5, 1, 2), (196, 0, 14)])
def test_vit_reshape_transform_derives_the_grid(tokens, prefix, side):
    t = torch.arange(2 * tokens * 3, dtype=torch.float32).reshape(2, tokens, 3)
    out = vit_reshape_transform(t)
    assert out.shape == (2, 3, side, side)
    for b, c, i, j in [(0, 0, 0, 0), (1, 2, side - 1, side - 1), (1, 1, side // 2, 1)]:
        assert out[b, c, i, j] == t[b, prefix + i * side + j, c]


def test_vit_reshape_transform_explicit_grid_and_errors():
    t = torch.randn(1, 1 + 2 * 3, 4)
    out = vit_reshape_transform(t, height=2, width=3)
    assert out.shape == (1, 4, 2, 3) and torch.equal(out[0, :, 1, 0], t[0, 4])
    with pytest.raises(ValueError, match="B x tokens x channels"):
        vit_reshape_transform(torch.randn(197, 768))
    with pytest.raises(ValueError, match="height= and width="):
        vit_reshape_transform(torch.randn(1, 211, 4))  # 203..211 holds no square
    with pytest.raises(ValueError, match="7 tokens"):
        vit_reshape_transform(torch.randn(1, 7, 4), height=3, width=3)


def test_swin_reshape_transform_layouts():
    bhwc = torch.randn(2, 3, 4, 5)
    out = swinT_reshape_transform(bhwc)
    assert out.shape == (2, 5, 3, 4) and torch.equal(out[1, 2, 0, 3], bhwc[1, 0, 3, 2])
    blc = torch.randn(2, 16, 5)
    out = swinT_reshape_transform(blc)
    assert out.shape == (2, 5, 4, 4) and torch.equal(out[0, 4, 2, 1], blc[0, 2 * 4 + 1, 4])
    out = swinT_reshape_transform(torch.randn(1, 6, 5), height=2, width=3)
    assert out.shape == (1, 5, 2, 3)
    with pytest.raises(ValueError):
        swinT_reshape_transform(torch.randn(1, 17, 5))
