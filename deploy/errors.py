"""The project's one family of errors.

Library code raises these with a single-line message: the value, what is wrong, what to do.
The CLI catches only these and prints ``gradgroup: error: ...``; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class GradgroupError(Exception):
    """Base class: a failure the user can act on. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InputError(GradgroupError):
    """Bad user input: a missing or corrupt file, a wrong shape, an unknown name (exit code 2)."""

    exit_code = 2


class RunError(GradgroupError):
    """A run that started but failed or did not verify (exit code 1)."""

    exit_code = 1


class MissingDependencyError(GradgroupError):
    """An optional package or tool is absent; the message says how to get it (exit code 2)."""

    exit_code = 2


class BudgetError(GradgroupError):
    """A benchmark missed its frame budget and the user asked that to fail (exit code 3)."""

    exit_code = 3


def first_line(exc: BaseException) -> str:
    """Return the first non-blank line of ``exc``'s message, or its type name if it has none.

    Third-party errors (ONNX, ONNX Runtime, protobuf, pickle) often carry multi-line messages or
    none at all; project errors quote one line of them so the CLI still prints a single line.

    Args:
        exc: Any exception.

    Returns:
        The message's first non-blank line, stripped; ``type(exc).__name__`` when the message is
        empty or only whitespace.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
