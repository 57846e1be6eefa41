"""``utils.image``'s pictures of a factorization: each pixel coloured by its strongest
concept, and the legend of the concepts' labels.
"""
import numpy as np

from pytorch_grad_cam.utils.image import create_labels_legend, show_factorization_on_image


def test_show_factorization_colours_by_the_strongest_concept():
    img = np.full((2, 2, 3), 0.5, dtype=np.float32)
    explanations = np.array([[[1.0, 0.2], [0.0, 0.5]], [[0.5, 0.4], [0.0, 1.0]]], dtype=np.float32)
    colors = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    out = show_factorization_on_image(img, explanations, colors=colors, image_weight=0.25)
    expected = np.empty((2, 2, 3))
    for y, x, color, value in [(0, 0, colors[0], 1.0), (0, 1, colors[1], 0.4),
                               (1, 0, colors[0], 0.0), (1, 1, colors[1], 1.0)]:
        expected[y, x] = 0.25 * 0.5 + 0.75 * color * value
    np.testing.assert_array_equal(out, np.uint8(255 * expected))
    with_legend = show_factorization_on_image(img, explanations, concept_labels=["a", "b"])
    assert with_legend.shape == (2, 4, 3) and with_legend.dtype == np.uint8


def test_labels_legend():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]])
    legend = create_labels_legend(scores, {0: "cat, tabby", 1: "dog", 2: "cup"}, top_k=2)
    assert legend == ["dog:0.70\ncup:0.20", "cat, tabby:0.50\ncup:0.40"]
