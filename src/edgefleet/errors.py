"""The errors edgefleet raises, rooted at :class:`EdgefleetError`.

Every error carries a stable domain ``code``. Transport layers (the Open Inference Protocol
server, later the control plane API and the CLI) map codes to HTTP statuses or exit codes in one
catalog each; nothing here knows about HTTP. :func:`error_class` finds the class of a code,
so a client turns an error body back into the error the server raised.

::

    EdgefleetError                      code
    ├── ConfigurationError              config.invalid
    │   └── MissingExtraError           config.missing_extra
    ├── ModelLoadError                  model.load
    ├── ModelNotFoundError              model.not_found
    ├── ModelUnavailableError           model.unavailable
    ├── InputError                      input.invalid
    │   ├── MissingInputError           input.missing
    │   ├── UnexpectedInputError        input.unexpected
    │   ├── InputDTypeError             input.dtype
    │   ├── InputShapeError             input.shape
    │   └── NonFiniteInputError         input.non_finite
    ├── InferenceError                  inference.failed
    ├── PipelineError                   pipeline.invalid
    ├── ProtocolError                   protocol.malformed
    │   ├── PayloadTooLargeError        protocol.too_large
    │   └── UnsupportedError            protocol.unsupported
    ├── MeterError                      energy.meter
    ├── TargetError                     bench.target
    ├── AuthError                       auth.denied
    │   └── ForbiddenError              auth.forbidden
    ├── NotFoundError                   resource.not_found
    ├── ConflictError                   resource.conflict
    ├── StoreError                      store.failed
    ├── VerificationError               trust.verification
    │   ├── DowngradeError              trust.downgrade
    │   └── ExpiredError                trust.expired
    ├── CompatibilityError              model.incompatible
    ├── SmokeTestError                  model.smoke_test
    ├── UplinkError                     agent.uplink
    ├── DataDirInUseError               agent.data_dir_in_use
    └── BindError                       agent.bind
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BindError",
    "CompatibilityError",
    "ConfigurationError",
    "ConflictError",
    "DataDirInUseError",
    "DowngradeError",
    "EdgefleetError",
    "ExpiredError",
    "ForbiddenError",
    "InferenceError",
    "InputDTypeError",
    "InputError",
    "InputShapeError",
    "MeterError",
    "MissingExtraError",
    "MissingInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "NonFiniteInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PipelineError",
    "ProtocolError",
    "SmokeTestError",
    "StoreError",
    "TargetError",
    "UnexpectedInputError",
    "UnsupportedError",
    "UplinkError",
    "VerificationError",
    "error_class",
    "error_classes",
]


class EdgefleetError(Exception):
    """Root of every error edgefleet raises on purpose."""

    code = "edgefleet.error"


class ConfigurationError(EdgefleetError):
    """A setting, option or command-line argument is invalid."""

    code = "config.invalid"


class MissingExtraError(ConfigurationError):
    """A command needs an optional extra (``pip install 'edgefleet[server]'``) that is absent.

    Examples
    --------
    >>> print(MissingExtraError.of("edgefleet server", ("server",), ["fastapi"]))
    edgefleet server needs the 'server' extra, not installed here (no module fastapi): \
pip install 'edgefleet[server]'
    """

    code = "config.missing_extra"

    @classmethod
    def of(cls, command: str, extras: tuple[str, ...], missing: list[str]) -> MissingExtraError:
        """The error for ``command``, which needs ``extras``; ``missing`` modules are named."""
        which = " and ".join(repr(e) for e in extras)
        noun = "extra" if len(extras) == 1 else "extras"
        return cls(
            f"{command} needs the {which} {noun}, not installed here (no module "
            f"{', '.join(missing)}): pip install 'edgefleet[{','.join(extras)}]'"
        )


class ModelLoadError(EdgefleetError):
    """A model file is missing, unreadable, not ONNX, corrupt or unsupported."""

    code = "model.load"


class ModelNotFoundError(EdgefleetError):
    """No model (or model version) is known under the requested name."""

    code = "model.not_found"


class ModelUnavailableError(EdgefleetError):
    """The model exists but cannot serve right now (closed, or not loaded yet)."""

    code = "model.unavailable"


class InputError(EdgefleetError):
    """An inference input does not match what the model expects."""

    code = "input.invalid"


class MissingInputError(InputError):
    """A required input was not given."""

    code = "input.missing"


class UnexpectedInputError(InputError):
    """An input was given that the model does not have."""

    code = "input.unexpected"


class InputDTypeError(InputError):
    """An input has the wrong element type."""

    code = "input.dtype"


class InputShapeError(InputError):
    """An input has the wrong rank or a fixed dimension of the wrong size."""

    code = "input.shape"


class NonFiniteInputError(InputError):
    """An input contains NaN or infinity and the model's policy refuses them."""

    code = "input.non_finite"


class InferenceError(EdgefleetError):
    """The model failed while running on valid inputs."""

    code = "inference.failed"


class PipelineError(EdgefleetError):
    """A pipeline definition is invalid (unknown stage, missing tensor, bad parameters)."""

    code = "pipeline.invalid"


class ProtocolError(EdgefleetError):
    """A request does not follow the wire protocol (bad JSON, short binary body, ...)."""

    code = "protocol.malformed"


class PayloadTooLargeError(ProtocolError):
    """A request body is larger than the configured limit."""

    code = "protocol.too_large"


class UnsupportedError(ProtocolError):
    """A request asks for something this server does not implement."""

    code = "protocol.unsupported"


class MeterError(EdgefleetError):
    """An energy meter or sensor was asked for but is absent, unreadable or malformed."""

    code = "energy.meter"


class TargetError(EdgefleetError):
    """A benchmark target cannot be reached or does not serve the model being measured."""

    code = "bench.target"


class AuthError(EdgefleetError):
    """A request carries no credential, or one that is unknown, revoked or expired."""

    code = "auth.denied"


class ForbiddenError(AuthError):
    """A valid credential asks for something it may not do (a device on an operator endpoint)."""

    code = "auth.forbidden"


class NotFoundError(EdgefleetError):
    """A fleet resource (device, model version, token, job) does not exist."""

    code = "resource.not_found"


class ConflictError(EdgefleetError):
    """A request conflicts with what is stored (a model version pushed twice with other bytes)."""

    code = "resource.conflict"


class StoreError(EdgefleetError):
    """A database (the control plane's store or an agent's spool) failed to open or write."""

    code = "store.failed"


class VerificationError(EdgefleetError):
    """Update metadata, a signature or downloaded bytes failed verification."""

    code = "trust.verification"


class DowngradeError(VerificationError):
    """An update would move a device to an older release than it already accepted."""

    code = "trust.downgrade"


class ExpiredError(VerificationError):
    """Signed metadata or a signed desired state has expired (a freeze attack or a stale server)."""

    code = "trust.expired"


class CompatibilityError(EdgefleetError):
    """A model cannot run on this device (opset, execution providers, memory)."""

    code = "model.incompatible"


class SmokeTestError(EdgefleetError):
    """A model's outputs on its golden inputs differ from the expected outputs."""

    code = "model.smoke_test"


class UplinkError(EdgefleetError):
    """The agent could not reach the control plane, or the control plane refused a request."""

    code = "agent.uplink"


class DataDirInUseError(EdgefleetError):
    """Another process holds an agent data dir's lock (another agent runs on it).

    Attributes
    ----------
    holder
        The PID of the holder, when it could be read.
    """

    code = "agent.data_dir_in_use"

    def __init__(self, message: str, *, holder: int | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class BindError(EdgefleetError):
    """A local server (the agent's inference endpoint) cannot listen on its address."""

    code = "agent.bind"


def error_classes() -> list[type[EdgefleetError]]:
    """Every error class defined in this module, the root first, parents before children.

    Examples
    --------
    >>> error_classes()[0] is EdgefleetError
    True
    >>> len({cls.code for cls in error_classes()}) == len(error_classes())
    True
    """
    found: list[type[EdgefleetError]] = []

    def walk(cls: type[EdgefleetError]) -> None:
        if cls.__module__ == __name__:
            found.append(cls)
            for child in cls.__subclasses__():
                walk(child)

    walk(EdgefleetError)
    return found


def error_class(code: str) -> type[EdgefleetError] | None:
    """The error class whose ``code`` is ``code``, or ``None`` for a code this version lacks.

    Examples
    --------
    >>> error_class("model.incompatible").__name__
    'CompatibilityError'
    >>> error_class("no.such") is None
    True
    """
    return next((cls for cls in error_classes() if cls.code == code), None)
