"""Hostile checkpoint files for the tests of every loader (the library's,
the image command's, explain-dataset's).

Not a conftest.py: tests import it as a module (tests/ is on their path).
"""
import pathlib

import torch


class CreatesMarker:
    """Unpickled, it calls ``pathlib.Path(marker).touch()``: the stand-in for
    whatever code a hostile checkpoint would run (no shell involved)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def write_hostile_checkpoint(path: pathlib.Path, marker: pathlib.Path,
                             wrapped: bool = False) -> pathlib.Path:
    """A torch.save file whose unpickling creates ``marker``; ``wrapped``:
    inside a training script's dict, where a state_dict is looked for."""
    payload = CreatesMarker(marker)
    torch.save({"epoch": 1, "state_dict": payload} if wrapped else payload, path)
    return path


#: the message's end, after the names of the pickled objects (the library's wording)
LIBRARY_REFUSAL_END = ("), and loading them can run arbitrary code; refused unless you trust "
                       "the file: then pass trust_checkpoint=True")
#: the message's end on the command line (and in its loaders' UsageError)
COMMAND_REFUSAL_END = ("), and loading them can run arbitrary code; refused unless you trust "
                       "the file: then add --trust-checkpoint (trust_checkpoint=True in Python)")
