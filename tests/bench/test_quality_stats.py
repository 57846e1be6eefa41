"""The pure parts of bench/quality_benchmark.py (bench/quality_stats.py): the
confidence intervals, the Markdown table with its FAIL flags and n/a rows,
the choice of the recommended method per model family, and the module of
``--method recommended`` that the benchmark writes."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import quality_benchmark  # noqa: E402
import quality_stats as stats  # noqa: E402

from pytorch_grad_cam.app import recommended_table  # noqa: E402


def _metrics(pg, rma, ms, mprt=0.1, logit=0.2, **extra):
    values = {"PointingGame": pg, "RelevanceMassAccuracy": rma, "ms": ms, "MPRT": mprt,
              "RandomLogit": logit, **extra}
    return {k: {"mean": v, "low": v - 0.01, "high": v + 0.01, "n": 10} for k, v in values.items()}


def _row(method, pg, rma, ms, model="cnn", variant="", implementation="ours", mprt=0.1,
         logit=0.2, randomised=False):
    return {"model": model, "method": method, "variant": variant,
            "implementation": implementation, "status": "ok", "reason": "",
            "randomised": randomised, "metrics": _metrics(pg, rma, ms, mprt, logit),
            "passed": {"MPRT": mprt < 0.5, "RandomLogit": logit < 0.5}}


def test_bootstrap_of_one_seed_with_two_images_spans_both_values():
    # the resampled means are 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% quantiles of 2000 of them are 0 and 1
    assert stats.bootstrap_ci([[0.0, 1.0]]) == {"mean": 0.5, "low": 0.0, "high": 1.0, "n": 2}


def test_bootstrap_of_equal_values_has_no_width_and_draws_seeds_too():
    assert stats.bootstrap_ci([[0.25] * 3, [0.25] * 5]) == {"mean": 0.25, "low": 0.25,
                                                             "high": 0.25, "n": 8}
    # two seeds whose images agree within the seed: only the seeds vary, so
    # the resampled means are 0 (both draws seed 0), 1, or 0.5
    result = stats.bootstrap_ci([[0.0, 0.0], [1.0, 1.0]])
    assert result == {"mean": 0.5, "low": 0.0, "high": 1.0, "n": 4}


def test_bootstrap_refuses_nothing_and_non_finite_values():
    with pytest.raises(ValueError, match="values_by_seed holds no values"):
        stats.bootstrap_ci([[], []])
    with pytest.raises(ValueError, match="values_by_seed holds values that are not finite"):
        stats.bootstrap_ci([[0.1, float("nan")]])


def test_cells_and_fail_flags():
    assert stats.format_cell({"mean": 0.9123, "low": 0.871, "high": 0.944}) == \
        "0.912 [0.871, 0.944]"
    assert stats.format_cell({"mean": 0.62, "low": 0.5, "high": 0.7}, failed=True) == \
        "0.620 [0.500, 0.700] **FAIL**"
    assert stats.format_cell({"mean": 123.4, "low": 12.34, "high": 1.234}) == \
        "123 [12.3, 1.23]"
    assert stats.format_cell(None) == "-"


def test_markdown_table_flags_failures_and_lists_rows_that_do_not_apply():
    rows = [_row("gradcam", 0.9, 0.5, 2.0),
            _row("edge", 0.4, 0.3, 1.0, mprt=0.93, logit=1.0),
            _row("gradcam", 0.8, 0.4, 3.0, model="vit"),
            {"model": "cnn", "method": "legrad", "variant": "", "implementation": "ours",
             "status": "n/a", "reason": "it reads a Vision Transformer's attention",
             "metrics": {}, "passed": {}}]
    table = stats.markdown_table(rows, "cnn").splitlines()
    assert table[0].startswith("| method | pointing game ↑ | relevance mass ↑ |")
    assert table[2] == ("| gradcam | 0.900 [0.890, 0.910] | 0.500 [0.490, 0.510] | - | - | - "
                        "| - | 0.100 [0.090, 0.110] | 0.200 [0.190, 0.210] | 2.00 [1.99, 2.01] |")
    assert table[3] == ("| edge | 0.400 [0.390, 0.410] | 0.300 [0.290, 0.310] | - | - | - | - "
                        "| 0.930 [0.920, 0.940] **FAIL** | 1.00 [0.990, 1.01] **FAIL** "
                        "| 1.00 [0.990, 1.01] |")
    assert table[-3:] == ["Not measured on the CNN (n/a):", "",
                          "- `legrad`: n/a, it reads a Vision Transformer's attention"]
    assert len(table) == 4 + 4  # no ViT row


def test_the_choice_passes_the_sanity_checks_is_plain_ours_and_breaks_ties_by_order():
    rows = [_row("first", 0.8, 0.6, 9.0),
            _row("best_but_fails", 1.0, 1.0, 1.0, mprt=0.9),
            _row("peer", 1.0, 1.0, 1.0, implementation="grad-cam 1.5.7"),
            _row("variant", 1.0, 1.0, 1.0, variant="aug_smooth"),
            _row("random", 1.0, 1.0, 1.0, randomised=True),
            _row("later_tie", 0.8, 0.6, 1.0),
            _row("vit_best", 0.7, 0.5, 9.0, model="vit")]
    assert stats.choose(rows, "cnn") == {
        "method": "first", "score": 0.7,
        "reason": "best mean of PointingGame / RelevanceMassAccuracy (0.700) among the methods "
                  "that pass the MPRT and RandomLogit sanity checks on the quality benchmark, "
                  "docs/quality.md"}
    assert stats.recommendations(rows)["vit"]["method"] == "vit_best"
    assert stats.choose([_row("fails", 1, 1, 1, logit=0.9)], "cnn") is None
    assert stats.recommendations([_row("fails", 1, 1, 1, logit=0.9)]) == {}


def test_the_situations_cite_their_rows():
    rows = [_row("gradcam", 0.9, 0.7, 4.0, logit=0.3), _row("layercam", 0.88, 0.7, 2.0, logit=0.1),
            _row("scorecam", 0.95, 0.75, 50.0, logit=0.6),
            _row("weak", 0.2, 0.1, 0.5, logit=0.01)]  # the most specific and fastest, but far off
    lines = stats.situations(rows)
    assert lines[0] == ("- **CNN**: `gradcam` (row `gradcam` of the CNN table: the best mean of "
                        "pointing game and relevance mass, 0.800, among the methods that pass "
                        "both sanity checks); `--method recommended` picks it for a CNN.")
    assert lines[1] == ("- **Several objects, CNN**: `layercam`, whose maps change most with the "
                        "class asked for (row `layercam`: the lowest random-logit SSIM, 0.100, "
                        "among the passing methods within 0.05 of the best score); explain each "
                        "object's class in its own call.")
    assert lines[2] == ("- **Speed budget, CNN**: `layercam` (row `layercam`: 2.00 ms per image, "
                        "the fastest passing method within 0.05 of the best score, scoring "
                        "0.790).")
    assert lines[3] == ("- **ViT**: no method of this library passed both sanity checks on this "
                        "run; see the table.")


def test_the_written_module_holds_the_choices():
    choices = {"cnn": {"method": "gradcam", "score": 0.9, "reason": "best 'x'"}}
    namespace: dict = {}
    exec(stats.recommended_module(choices, "python bench/quality_benchmark.py"), namespace)
    assert namespace["RECOMMENDED"] == {"cnn": {"method": "gradcam", "reason": "best 'x'"}}
    assert namespace["SOURCE"] == "python bench/quality_benchmark.py"


def test_the_checked_in_choice_is_what_the_benchmark_wrote():
    """pytorch_grad_cam/app/recommended_table.py is the benchmark's output
    for the checked-in results (bench/quality_results.json): same choice,
    same text."""
    results = json.loads((ROOT / "bench" / "quality_results.json").read_text())
    choices = stats.recommendations(results["rows"])
    assert choices == results["recommended"]
    expected = {family: {"method": c["method"], "reason": c["reason"]}
                for family, c in choices.items()}
    assert expected == recommended_table.RECOMMENDED
    written = Path(recommended_table.__file__).read_text()
    assert written == stats.recommended_module(choices, results["meta"]["command"])
    assert set(choices) == {"cnn", "vit"}, "the checked-in run has no choice for a family"
    assert np.isfinite([c["score"] for c in choices.values()]).all()


def test_the_recorded_command_leaves_out_where_things_are():
    # the benchmark's options that name places (environments, output files)
    # are not part of what was measured, so the results do not record them
    argv = ["--seeds", "3", "--torchcam-venv", "/somewhere/venv", "--json=/tmp/x.json",
            "--reference-python", "none", "--images", "24", "--markdown", "t.md"]
    assert quality_benchmark.sizes_given(argv) == ["--seeds", "3", "--images", "24"]
