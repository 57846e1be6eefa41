"""``--method recommended``: the word passes the method-list checks of the
commands, and is replaced, once the model is loaded, by the method the
quality benchmark chose for the model's family (with the line that says
which and why); models of no measured family fall back to gradcam with
the reason; the demo refuses the word with a message that says what it is."""
import pytest
import torch

from pytorch_grad_cam.app import recommended_table
from pytorch_grad_cam.app.methods import (
    GROUPS,
    MethodError,
    check_method_option,
    method_error_message,
    method_tokens,
    select_methods,
)
from pytorch_grad_cam.app.recommended import (
    FALLBACK,
    model_family,
    recommend,
    resolve_recommended,
)
from pytorch_grad_cam.demo.request import DemoError, parse_methods
from pytorch_grad_cam.utils.synthetic_shapes import SmallCNN, small_vit

TABLE = {"cnn": {"method": "scorecam", "reason": "best on the benchmark"},
         "vit": {"method": "LeGrad", "reason": "best for ViTs"}}


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))

    def forward(self, x):
        return self.net(x)


class ConvAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.attention = torch.nn.MultiheadAttention(8, 2)


def test_families():
    assert model_family(SmallCNN()) == ("cnn", "a CNN")
    assert model_family(small_vit()) == ("vit", "a Vision Transformer")
    assert model_family(Mlp()) == (None, "Mlp has no 2-D convolution and is not a Vision "
                                         "Transformer")
    assert model_family(ConvAttention()) == (
        None, "ConvAttention has attention modules (MultiheadAttention) but is not a Vision "
              "Transformer the library reads")


def test_the_choice_per_family_and_the_printed_line():
    cnn = recommend(SmallCNN(), TABLE)
    assert cnn == ("scorecam", "cnn", "recommended for CNN: scorecam (best on the benchmark)")
    vit = recommend(small_vit(), TABLE)  # a class name in the table is resolved to its name
    assert vit == ("legrad", "vit", "recommended for ViT: legrad (best for ViTs)")


def test_fallbacks_say_why():
    assert recommend(Mlp(), TABLE) == (
        FALLBACK, None, "recommended: gradcam (fallback: Mlp has no 2-D convolution and is not "
                        "a Vision Transformer; the quality benchmark measured CNNs and Vision "
                        "Transformers only, docs/quality.md)")
    assert recommend(SmallCNN(), {"vit": TABLE["vit"]}) == (
        FALLBACK, "cnn", "recommended for CNN: gradcam (fallback: the quality benchmark's table "
                         "has no choice for a CNN, docs/quality.md)")
    assert recommend(SmallCNN(), {"cnn": {"method": "gone", "reason": "x"}}) == (
        FALLBACK, "cnn", "recommended for CNN: gradcam (fallback: the quality benchmark's choice "
                         "'gone' is not a registered method, docs/quality.md)")
    assert FALLBACK == "gradcam"


def test_the_default_table_is_the_benchmarks():
    chosen = recommend(SmallCNN())
    entry = recommended_table.RECOMMENDED["cnn"]
    assert chosen.method == entry["method"]
    assert chosen.line == f"recommended for CNN: {entry['method']} ({entry['reason']})"
    assert entry["reason"].endswith("on the quality benchmark, docs/quality.md")


def test_resolving_replaces_the_word_without_repeats(monkeypatch):
    monkeypatch.setattr(recommended_table, "RECOMMENDED", TABLE)
    assert resolve_recommended(["gradcam", "recommended", "scorecam"], SmallCNN()) == (
        ["gradcam", "scorecam"], "recommended for CNN: scorecam (best on the benchmark)")
    assert resolve_recommended(["gradcam"], SmallCNN()) == (["gradcam"], None)


def test_the_command_words_take_it_and_keep_it_until_the_model_is_known():
    assert "recommended" in GROUPS
    with pytest.raises(MethodError) as typo:
        method_tokens(["recomended"], GROUPS)
    assert typo.value.close == ["recommended"]
    assert check_method_option(["Recommended"]) == ["recommended"]
    assert select_methods(["gradcam,recommended"], "cpu") == (["gradcam", "recommended"], [])


def test_where_it_is_not_a_word_it_is_refused_with_what_it_is():
    with pytest.raises(MethodError) as caught:
        method_tokens(["recommended"])
    message = ("'recommended' picks a method for the model's family on the command line "
               "(grad-cam --method recommended); here, name a method such as gradcam")
    assert str(caught.value) == message
    assert method_error_message(caught.value, "none", "unknown {text}", "{close}") == message
    with pytest.raises(DemoError) as demo:
        parse_methods("gradcam, recommended")
    assert str(demo.value) == message
