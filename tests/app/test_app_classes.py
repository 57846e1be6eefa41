"""pytorch_grad_cam.app.classes: ImageNet's names without torch, the class
to explain, each front-end's words."""
import pytest
import torchvision

from pytorch_grad_cam.app.classes import (
    IMAGENET_CLASSES,
    ClassError,
    check_top_k,
    find_class,
    read_class_names,
    resolve_categories,
    resolve_category,
)
from pytorch_grad_cam.app.errors import UsageError

NAMES = ["crane", "dog", "Crane", "hot dog"]


def test_imagenet_classes_are_torchvisions():
    assert list(IMAGENET_CLASSES) == \
        torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]


@pytest.mark.parametrize("text, index", [("1", 1), (" +3 ", 3), ("DOG", 1), ("hot_dog", 3)])
def test_indices_and_names(text, index):
    assert find_class(text, NAMES) == index


@pytest.mark.parametrize("text, names, count, kind, matches, close", [
    ("4", NAMES, None, "out_of_range", [], []),
    ("-1", NAMES, None, "out_of_range", [], []),
    ("9", None, 5, "out_of_range", [], []),
    ("dog", None, 5, "no_names", [], []),
    ("crane", NAMES, None, "ambiguous", [0, 2], []),
    ("hotdog", NAMES, None, "unknown", [], [3, 1]),
])
def test_what_cannot_be_found(text, names, count, kind, matches, close):
    with pytest.raises(ClassError) as caught:
        find_class(text, names, count)
    error = caught.value
    assert (error.kind, error.text, error.matches, error.close) == (kind, text.strip(), matches,
                                                                    close)


def test_the_command_line_words(tmp_path):
    cases = {
        "1000": "--target-category 1000: out of range (allowed 0..999)",
        "Cardigan": "--target-category 'Cardigan' is ambiguous: 264 (Cardigan), 474 (cardigan); "
                    "give the index",
        "zzzzqqq": "--target-category 'zzzzqqq': no class has that name; python cam.py "
                   "--list-classes prints all of them",
    }
    for text, message in cases.items():
        with pytest.raises(UsageError) as caught:
            resolve_category(text, prog="cam.py")
        assert str(caught.value) == message
    assert resolve_category(None) is None and resolve_category(" tabby ") == 281
    with pytest.raises(UsageError, match="^--target-category 'dog': this model's classes have no "
                                         "names; give the class index$"):
        resolve_category("dog", None, 10)
    with pytest.raises(UsageError, match=r"^--target-category 12: out of range \(allowed 0..9\)$"):
        resolve_category("12", None, 10)


def test_class_name_files(tmp_path):
    (tmp_path / "names.txt").write_text(" apple \n\nbanana\n", encoding="utf-8")
    assert read_class_names(str(tmp_path / "names.txt")) == ["apple", "banana"]
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_class_names(str(tmp_path / "empty.txt"))
    assert str(caught.value) == (f"--class-names {tmp_path / 'empty.txt'}: the file names no "
                                 "class (one name a line)")
    with pytest.raises(UsageError, match="missing.txt: no such file$"):
        read_class_names(str(tmp_path / "missing.txt"))


def test_several_categories_in_the_order_given():
    assert resolve_categories(None) is None
    assert resolve_categories(["dog", "0", " hot_dog "], NAMES) == [1, 0, 3]
    assert resolve_categories("tabby") == [281]  # one text, as a Namespace made by hand has it
    assert resolve_categories(["7", "2"], None, 10) == [7, 2]


@pytest.mark.parametrize("texts, names, count, message", [
    (["dog", "1"], NAMES, None, "--target-category 'dog' and '1' are the same class, 1 (dog); "
                                "give each class once"),
    (["7", " 7"], None, 10, "--target-category '7' and '7' are the same class, 7; give each "
                            "class once"),
    (["dog", "cat"], NAMES, None, "--target-category 'cat': no class has that name; "
                                  "grad-cam --list-classes prints all of them"),
    (["1", "10"], None, 10, "--target-category 10: out of range (allowed 0..9)"),
])
def test_several_categories_errors(texts, names, count, message):
    with pytest.raises(UsageError) as caught:
        resolve_categories(texts, names, count)
    assert str(caught.value) == message


def test_top_k_against_the_models_classes():
    check_top_k(None, 5)
    check_top_k(5, 5)
    check_top_k(50, None)  # not known yet: checked when the model is
    with pytest.raises(UsageError) as caught:
        check_top_k(6, 5)
    assert str(caught.value) == "--top-k 6: more classes than the model has (allowed 1..5)"
