"""pytorch_grad_cam.app.errors: problems as one line."""
import warnings

from pytorch_grad_cam import messages
from pytorch_grad_cam.app import errors
from pytorch_grad_cam.app.errors import first_line, one_line, one_line_warnings
from pytorch_grad_cam.cli import errors as cli_errors


def test_first_line_of_an_exception():
    assert first_line(ValueError("  first\nsecond ")) == "first"
    assert first_line(KeyError()) == "KeyError"
    assert messages.first_line(OSError("disk\nfull")) == "OSError: disk"
    assert messages.first_line(OSError("disk"), with_type=False) == "disk"


def test_a_list_of_candidates_as_one_line():
    assert one_line("none found. Candidates:\n  a (1, 2)\n\n  b (3, 4)\n") == \
        "none found. Candidates: a (1, 2); b (3, 4)"
    assert one_line("  just one  ") == "just one"


def test_warnings_as_lines(capsys):
    with one_line_warnings("cam.py"):
        warnings.warn("two\n   lines", UserWarning)
    assert capsys.readouterr().err == "cam.py: warning: two lines\n"


def test_the_command_lines_earlier_names_are_the_same():
    assert cli_errors.UsageError is errors.UsageError
    assert cli_errors.os_error_line is errors.os_error_line
