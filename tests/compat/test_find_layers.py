"""pytorch_grad_cam.utils.find_layers: grad-cam 1.5.7's helpers, same
results (depth first, registration order, exact types)."""
import pytest
import torch
from torch import nn

from pytorch_grad_cam.utils.find_layers import (
    find_layer_predicate_recursive,
    find_layer_types_recursive,
    replace_all_layer_type_recursive,
    replace_layer_recursive,
)


class MyReLU(nn.ReLU):
    pass


def model_with_shared_relu():
    shared = nn.ReLU()
    inner = nn.Sequential(nn.Conv2d(4, 4, 1), shared, MyReLU())
    return nn.Sequential(nn.Conv2d(3, 4, 1), shared, inner, nn.Conv2d(4, 2, 1)), shared, inner


def test_find_by_type_is_depth_first_exact_type_and_finds_a_shared_module_twice():
    model, shared, inner = model_with_shared_relu()
    assert find_layer_types_recursive(model, [nn.ReLU]) == [shared, shared]
    assert find_layer_types_recursive(model, [MyReLU]) == [inner[2]]
    convs = find_layer_types_recursive(model, [nn.Conv2d])
    assert convs == [model[0], inner[0], model[3]]


def test_find_by_predicate_includes_containers_but_not_the_model():
    model, _, inner = model_with_shared_relu()
    assert find_layer_predicate_recursive(model, lambda m: isinstance(m, nn.Sequential)) == [inner]
    assert len(find_layer_predicate_recursive(model, lambda m: True)) == 7


def test_replace_layer_replaces_the_first_place_only_and_says_whether_it_found_it():
    model, shared, inner = model_with_shared_relu()
    new = nn.GELU()
    assert replace_layer_recursive(model, shared, new) is True
    assert model[1] is new and inner[1] is shared
    assert replace_layer_recursive(model, nn.Tanh(), nn.GELU()) is False
    assert replace_layer_recursive(model, inner[0], nn.Identity()) is True
    assert isinstance(inner[0], nn.Identity)
    assert model(torch.rand(1, 3, 2, 2)).shape == (1, 2, 2, 2)


def test_replace_all_of_a_type_includes_subclasses():
    model, _, inner = model_with_shared_relu()
    new = nn.Tanh()
    replace_all_layer_type_recursive(model, nn.ReLU, new)
    assert model[1] is new and inner[1] is new and inner[2] is new
    assert find_layer_types_recursive(model, [nn.ReLU, MyReLU]) == []


@pytest.mark.parametrize("call", [
    lambda: find_layer_types_recursive("model", [nn.ReLU]),
    lambda: find_layer_predicate_recursive(None, bool),
    lambda: replace_layer_recursive([nn.ReLU()], nn.ReLU(), nn.ReLU()),
    lambda: replace_all_layer_type_recursive(3, nn.ReLU, nn.ReLU()),
])
def test_a_model_that_is_not_a_module_is_named(call):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got "):
        call()
