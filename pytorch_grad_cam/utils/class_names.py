"""Finding a class by its name, for the command line and the web demo."""
from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["normalise_class_name", "match_class_name"]


def normalise_class_name(text: str) -> str:
    """Lower case, underscores as spaces, single spaces."""
    return " ".join(text.replace("_", " ").lower().split())


def match_class_name(text: str, class_names: Sequence[str],
                     most: int = 8) -> tuple[list[int], list[int]]:
    """``(exact, close)``: the indices of the classes whose name is ``text``
    (case and underscores do not matter; several for a name two classes
    share, such as ImageNet's two "cardigan"s), and, for none, up to
    ``most`` close ones: similar spellings first (difflib), then names that
    contain the text, then names that share one of its words ("tabby cat":
    "tiger cat", "Persian cat")."""
    wanted = normalise_class_name(text)
    normalised = [normalise_class_name(name) for name in class_names]
    exact = [i for i, name in enumerate(normalised) if name == wanted]
    if exact:
        return exact, []
    close = [normalised.index(name) for name in
             difflib.get_close_matches(wanted, normalised, n=5, cutoff=0.6)]
    close += [i for i, name in enumerate(normalised) if wanted in name]
    words = set(wanted.split())
    if len(words) > 1:
        close += [i for i, name in enumerate(normalised) if words & set(name.split())]
    return [], list(dict.fromkeys(close))[:most]
