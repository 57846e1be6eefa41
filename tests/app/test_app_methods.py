"""pytorch_grad_cam.app.methods: method lists, checked by name without
importing any method; each front-end's words."""
import pytest

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.methods import (
    MethodError,
    affordable,
    check_method_option,
    method_error_message,
    method_tokens,
    select_methods,
)
from pytorch_grad_cam.demo.models import DemoError
from pytorch_grad_cam.demo.request import parse_methods as demo_methods
from pytorch_grad_cam.registry import get_method


def test_names_class_names_commas_and_repeats():
    assert method_tokens(["GradCAM", "gradcam", "GRADCAM++, xgradcam", " "]) == \
        ["gradcam", "gradcam++", "xgradcam"]
    for key, cls in METHODS.items():
        assert method_tokens([cls.__name__.upper()]) == [key]
    assert method_tokens(["all", "everything,gradcam"], ("all", "everything")) == \
        ["all", "everything", "gradcam"]


def test_unknown_names_none_and_not_names():
    with pytest.raises(MethodError) as caught:
        method_tokens(["gradcam", "gradcm"])
    assert (caught.value.text, caught.value.close) == ("gradcm", ["gradcam", "xgradcam", "gradcam++"])
    with pytest.raises(MethodError) as caught:
        method_tokens(["all"])  # the groups only where they are allowed
    assert caught.value.text == "all"
    with pytest.raises(MethodError) as caught:
        method_tokens([" , "])
    assert caught.value.text is None and str(caught.value) == "no method given"
    with pytest.raises(TypeError, match="a method must be a name such as gradcam, got 3"):
        method_tokens([3])


def test_the_command_line_words():
    with pytest.raises(UsageError) as caught:
        check_method_option(["gradcm"])
    assert str(caught.value) == (f"--method: unknown method 'gradcm' (did you mean gradcam, xgradcam, "
                                 f"gradcam++?); "
                                 f"choose from {', '.join(METHODS)}, all, everything or recommended")
    with pytest.raises(UsageError, match="^--method: give at least one method$"):
        check_method_option([""])


def test_all_depends_on_the_device_and_everything_does_not():
    cpu, left_out = select_methods(["all"], "cpu")
    assert cpu == [name for name in METHODS if not get_method(name).sampling] == affordable("cpu")
    assert left_out == ["sscam", "iscam"]
    assert select_methods(["all"], "cuda:1") == (list(METHODS), [])
    assert select_methods(["sscam", "all"], "cpu")[1] == ["iscam"]
    assert select_methods(["everything"], "cpu") == (list(METHODS), [])


def test_the_demo_words():
    assert [info.name for info in demo_methods("gradcam, LayerCAM,gradcam")] == \
        ["gradcam", "layercam"]
    with pytest.raises(DemoError) as caught:
        demo_methods(["all"])
    assert str(caught.value) == f"unknown method 'all' (the methods: {', '.join(METHODS)})"
    with pytest.raises(DemoError, match="^choose at least one method"):
        demo_methods(None)
    with pytest.raises(DemoError, match="a method must be a name such as gradcam, got 7"):
        demo_methods([7])


def test_method_error_message_fills_a_front_ends_templates():
    """The one home of "no method / unknown method, did you mean": each
    front-end gives its words (the command line's and the demo's tests
    above check theirs)."""
    words = ("none given", "unknown {name} [{text}]{hint} of {methods}", "; close: {close}")
    methods = ", ".join(METHODS)
    assert method_error_message(MethodError(None), *words) == "none given"
    assert method_error_message(MethodError("gradcm", ["gradcam", "xgradcam"]), *words) == \
        f"unknown 'gradcm' [gradcm]; close: gradcam, xgradcam of {methods}"
    assert method_error_message(MethodError("nosuch"), *words) == \
        f"unknown 'nosuch' [nosuch] of {methods}"
    # the name given is put in as it is, never read as a template
    assert method_error_message(MethodError("{close}{0}"), *words) == \
        f"unknown '{{close}}{{0}}' [{{close}}{{0}}] of {methods}"
    assert method_error_message(MethodError("x" * 100), "", "{name}", "") == \
        "'" + "x" * 76 + "..."

