"""Finding a class by its name (the command line and the demo share it)."""
from pytorch_grad_cam.utils.class_names import match_class_name


def test_match_class_name_exact_ambiguous_and_close():
    names = ["tabby", "tiger cat", "Persian cat", "cardigan", "Cardigan", "Egyptian_cat"]
    assert match_class_name("Egyptian cat", names) == ([5], [])
    assert match_class_name("CARDIGAN", names) == ([3, 4], [])
    exact, close = match_class_name("tabby cat", names)
    assert exact == [] and close[0] == 0 and {1, 2} <= set(close)  # spelling first, then words
    assert match_class_name("zebra", names) == ([], [])
