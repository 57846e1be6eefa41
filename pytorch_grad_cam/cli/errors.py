"""The error every part of the command line raises for a bad request."""

__all__ = ["UsageError"]


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line,
    ``<prog>: error: <message>``, exit status 2."""
