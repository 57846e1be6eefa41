"""The method ``--method recommended`` picks for each model family, as
measured by ``bench/quality_benchmark.py`` (written by that script; do not
edit by hand). See docs/quality.md."""
from __future__ import annotations

#: the benchmark run these choices come from
SOURCE = "python bench/quality_benchmark.py"
#: model family -> the method and why it was chosen
RECOMMENDED: dict[str, dict[str, str]] = {
    "cnn": {
        "method": "finercam",
        "reason": ("best mean of PointingGame / RelevanceMassAccuracy (0.621) among the methods "
                   "that pass the MPRT and RandomLogit sanity checks on the quality benchmark, "
                   "docs/quality.md"),
    },
    "vit": {
        "method": "attnlrp",
        "reason": ("best mean of PointingGame / RelevanceMassAccuracy (0.708) among the methods "
                   "that pass the MPRT and RandomLogit sanity checks on the quality benchmark, "
                   "docs/quality.md"),
    },
}
