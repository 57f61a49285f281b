"""Every error pf shows a user; imports nothing from pf.

Each error carries the data a user needs (a stable ``code``, the ``message``, a
``hint``), the exit code the CLI uses and the HTTP status the server answers with.
Raise sites pass facts; the wording lives in the classes below.

    PfError                       root: anything pf reports to a user
    ├── ConfigError               a PF_* setting or pf.toml value is invalid
    ├── UsageError                bad command-line usage (exit 2)
    ├── RequestError              a compile request is invalid (HTTP 400)
    │   ├── UnsupportedLanguage
    │   ├── UnsupportedTarget
    │   ├── InvalidOption
    │   └── Unbuildable           sources pf cannot build here (says what it builds instead)
    ├── ToolchainMissing          no tool serves a language/target here (says how to install)
    ├── CompileFailed             the compiler rejected the sources (diagnostics attached)
    ├── BuildTimeout              a compile ran past PF_BUILD_TIMEOUT and was killed
    ├── BuildCancelled            a build was cancelled while it ran
    ├── SandboxError              a subprocess could not be started
    │   └── SandboxUnavailable    the compile sandbox cannot start here (HTTP 503, fails closed)
    ├── CacheError                the cache directory cannot be used
    ├── StoreError                the build database cannot be used (HTTP 503)
    ├── NotFound                  no such build, project or artifact (HTTP 404)
    ├── Forbidden                 the caller's token lacks the right to do this (HTTP 403)
    └── ServiceUnavailable        the build service cannot take work now (HTTP 503)
        └── QueueFull             the build queue is at PF_MAX_QUEUE (retry_after seconds)
"""

from __future__ import annotations

# Every pf process imports this module, and `typing` alone costs 15 ms: names for the
# type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, ClassVar


class Diagnostic:
    """One compiler message, located in the user's own file."""

    __slots__ = ("col", "file", "line", "message", "severity")

    def __init__(self, file: str, line: int, col: int, severity: str, message: str) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.severity = severity
        self.message = message

    def _key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.col, self.severity, self.message)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Diagnostic) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Diagnostic{self._key()!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"


class PfError(Exception):
    """Root of every error pf reports to a user."""

    code: ClassVar[str] = "pf-error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        # A subclass's __init__ takes facts, not the message that pickle would pass it
        # back: rebuild from the fields instead, so any PfError can cross to another
        # process (pf serve's compiles run in one of their own).
        return (_restore, (type(self), self.args), self.__dict__)


def _restore(cls: type[PfError], args: tuple[Any, ...]) -> PfError:
    return cls.__new__(cls, *args)


class ConfigError(PfError):
    code = "config-error"


class UsageError(PfError):
    code = "usage-error"
    exit_code = 2
    http_status = 400


class RequestError(PfError):
    code = "invalid-request"
    exit_code = 2
    http_status = 400


def _allowed(values: Iterable[str]) -> str:
    return ", ".join(values)


class UnsupportedLanguage(RequestError):
    code = "unsupported-language"

    def __init__(self, language: str, supported: Sequence[str]) -> None:
        super().__init__(f"Unsupported language: {language}. Supported: {_allowed(supported)}")
        self.language = language


class UnsupportedTarget(RequestError):
    code = "unsupported-target"

    def __init__(self, target: str, supported: Sequence[str]) -> None:
        super().__init__(f"Unsupported target: {target}. Supported: {_allowed(supported)}")
        self.target = target


class InvalidOption(RequestError):
    code = "invalid-option"

    def __init__(self, name: str, reason: str, allowed: Sequence[str] | None = None) -> None:
        text = f"Invalid option {name!r}: {reason}"
        if allowed:
            text += f". Allowed: {_allowed(allowed)}"
        super().__init__(text)
        self.name = name


class Unbuildable(RequestError):
    """Sources written for a tool pf cannot run here; the hint names what pf builds instead.

    A build of all of a project's languages leaves such a language out (and says so)
    instead of refusing the others.
    """

    code = "unbuildable"


class ToolchainMissing(PfError):
    """No installed tool serves a (language, target) pair; says how to get one."""

    code = "toolchain-missing"
    exit_code = 3
    http_status = 503

    def __init__(self, what: str, reason: str, install: str | None) -> None:
        hint = f"install it with: {install}" if install else None
        super().__init__(f"{what}: {reason}", hint=hint)
        self.install = install


class CompileFailed(PfError):
    """The compiler ran and rejected the input."""

    code = "compile-failed"
    exit_code = 1
    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        diagnostics: Sequence[Diagnostic] = (),
        log: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = list(diagnostics)
        self.log = log

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        return out


class BuildTimeout(PfError):
    code = "build-timeout"
    exit_code = 124
    http_status = 504

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(
            f"{what} ran longer than {seconds:g} s and was stopped with its whole process group",
            hint="raise PF_BUILD_TIMEOUT if the build is legitimately slow",
        )
        self.seconds = seconds


class BuildCancelled(PfError):
    code = "build-cancelled"
    exit_code = 130
    http_status = 409

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} was cancelled")


class SandboxError(PfError):
    code = "sandbox-error"


class SandboxUnavailable(SandboxError):
    """The compile sandbox (bubblewrap) cannot start: compiles are refused, not run bare."""

    code = "sandbox-unavailable"
    exit_code = 3
    http_status = 503

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"compiles are refused: the sandbox cannot start: {cause}", hint=fix)
        self.cause = cause


class CacheError(PfError):
    code = "cache-error"


class StoreError(PfError):
    code = "store-error"
    http_status = 503


class NotFound(PfError):
    code = "not-found"
    http_status = 404


class Forbidden(PfError):
    """An authenticated caller asked for something its token may not do."""

    code = "forbidden"
    http_status = 403


class ServiceUnavailable(PfError):
    """The build service cannot take work now; ``retry_after`` says when to try again."""

    code = "service-unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class QueueFull(ServiceUnavailable):
    code = "queue-full"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"the build queue is full ({limit} builds waiting)",
            retry_after=retry_after,
            hint=f"retry in {retry_after} s, or raise PF_MAX_QUEUE",
        )
        self.limit = limit
