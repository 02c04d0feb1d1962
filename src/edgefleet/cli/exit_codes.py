"""Exit codes of every ``edgefleet`` command, defined once, and the error each one stands for.

:func:`exit_code_for` maps every error of :mod:`edgefleet.errors` (raised here or sent back by
the control plane and rebuilt by the operator client) to its code, most specific class first;
``docs/cli.md`` prints the same table.

==== ======================== ==================================================================
code name                     meaning
==== ======================== ==================================================================
0    ``EXIT_OK``              success
1    ``EXIT_ERROR``           an unexpected error (a bug, or a failure nothing else describes)
2    ``EXIT_USAGE``           bad option, argument, input or configuration; a missing extra
3    ``EXIT_MODEL``           a model or pipeline cannot be loaded, run, or is refused
                              (incompatible, failed its smoke test)
4    ``EXIT_ADDRESS``         the address cannot be bound (port in use, no permission)
5    ``EXIT_TARGET``          a benchmark target is unreachable or serves a different model
6    ``EXIT_AUTH``            a token or credential was refused, or may not do this
7    ``EXIT_UNREACHABLE``     the control plane cannot be reached (or its proxy says so)
8    ``EXIT_DATA_DIR_IN_USE`` another agent holds the data dir
9    ``EXIT_NOT_FOUND``       the named resource (device, model version, rollout, job) is absent
10   ``EXIT_CONFLICT``        the request conflicts with what is stored or running
11   ``EXIT_VERIFICATION``    signed metadata or downloaded bytes failed verification
12   ``EXIT_SERVER``          the control plane was reached but failed (its database); retry
13   ``EXIT_TIMED_OUT``       timed out waiting (``deploy --wait``: devices not yet serving)
130  ``EXIT_INTERRUPTED``     interrupted (Ctrl-C)
==== ======================== ==================================================================
"""

from __future__ import annotations

from typing import Final

from edgefleet.errors import (
    AuthError,
    BindError,
    CompatibilityError,
    ConfigurationError,
    ConflictError,
    DataDirInUseError,
    EdgefleetError,
    InferenceError,
    InputError,
    MeterError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    PipelineError,
    ProtocolError,
    SmokeTestError,
    StoreError,
    TargetError,
    UplinkError,
    VerificationError,
)

__all__ = [
    "BY_ERROR",
    "EXIT_ADDRESS",
    "EXIT_AUTH",
    "EXIT_CONFLICT",
    "EXIT_DATA_DIR_IN_USE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_SERVER",
    "EXIT_TARGET",
    "EXIT_TIMED_OUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EXIT_VERIFICATION",
    "exit_code_for",
]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_MODEL: Final = 3
EXIT_ADDRESS: Final = 4
EXIT_TARGET: Final = 5
EXIT_AUTH: Final = 6
EXIT_UNREACHABLE: Final = 7
EXIT_DATA_DIR_IN_USE: Final = 8
EXIT_NOT_FOUND: Final = 9
EXIT_CONFLICT: Final = 10
EXIT_VERIFICATION: Final = 11
EXIT_SERVER: Final = 12
EXIT_TIMED_OUT: Final = 13
EXIT_INTERRUPTED: Final = 130

BY_ERROR: Final[dict[type[EdgefleetError], int]] = {
    EdgefleetError: EXIT_ERROR,
    ConfigurationError: EXIT_USAGE,  # and MissingExtraError: the hint says what to install
    InputError: EXIT_USAGE,
    ProtocolError: EXIT_USAGE,  # what we sent was refused as malformed: the user's input
    MeterError: EXIT_ERROR,  # a meter asked for by name is absent on this machine
    ModelLoadError: EXIT_MODEL,
    ModelUnavailableError: EXIT_MODEL,
    InferenceError: EXIT_MODEL,
    PipelineError: EXIT_MODEL,
    CompatibilityError: EXIT_MODEL,
    SmokeTestError: EXIT_MODEL,
    TargetError: EXIT_TARGET,
    AuthError: EXIT_AUTH,  # and ForbiddenError
    UplinkError: EXIT_UNREACHABLE,
    ModelNotFoundError: EXIT_NOT_FOUND,
    NotFoundError: EXIT_NOT_FOUND,
    ConflictError: EXIT_CONFLICT,
    VerificationError: EXIT_VERIFICATION,  # and DowngradeError, ExpiredError
    StoreError: EXIT_SERVER,
    DataDirInUseError: EXIT_DATA_DIR_IN_USE,
    BindError: EXIT_ADDRESS,
}
"""Exit code per error class; a subclass not listed takes its nearest listed parent's code."""


def exit_code_for(error: EdgefleetError) -> int:
    """The exit code for ``error``: its own class's, else its nearest listed parent's.

    Examples
    --------
    >>> from edgefleet.errors import ForbiddenError, MissingExtraError
    >>> exit_code_for(MissingExtraError("needs the server extra"))
    2
    >>> exit_code_for(ForbiddenError("a device token on an operator endpoint"))
    6
    """
    for cls in type(error).__mro__:
        if cls in BY_ERROR:
            return BY_ERROR[cls]
    return EXIT_ERROR
