"""The one error type that leaves neurodeploy on purpose.

Every failure a user can cause (a bad file, an unsupported op, a weight the target cannot
store, a network larger than the chip) is raised as `NeurodeployError` with three parts:
what went wrong, where (file, node or layer) and what to do.  The CLI prints it as one line
and exits with status 2; anything else escaping is a bug in neurodeploy.
"""
from __future__ import annotations


class NeurodeployError(Exception):
    """A user-facing error: `what` happened at `where`; `hint` says what to do."""

    exit_code = 2

    def __init__(self, what: str, where: str = "", hint: str = ""):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f" -- {self.hint}"
        return text


class UnsupportedError(NeurodeployError):
    """The model uses an operation or a topology the chosen scheme cannot express."""


class TargetLimitError(NeurodeployError):
    """A parameter or the network as a whole does not fit the target hardware."""
