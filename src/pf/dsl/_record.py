"""Record: the immutable base of spans and tree nodes, a tuple with named fields.

A tuple subclass is built by C code in ~130 ns and cannot be changed; a
``dataclass(frozen=True)`` would import ``inspect`` (~6 ms at start-up) and set
each field through ``object.__setattr__`` (~640 ns an object). This is what
``collections.namedtuple`` does, without its ``exec`` at import time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

# The C descriptor namedtuple uses for its fields; a property where it is missing.
_getter: Callable[[int, str], object] = getattr(
    __import__("_collections"), "_tuplegetter", None
) or (lambda index, doc: property(lambda self: self[index], doc=doc))

new = tuple.__new__


class Record(tuple[object, ...]):
    """A tuple whose fields have names; equal only to a record of the same class."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __getnewargs__(self) -> tuple[object, ...]:
        # pickle and copy call cls.__new__(cls, *fields).
        return tuple(self)


def fields(cls: type[Record], *names: str) -> None:
    """Name the tuple positions of ``cls`` (call once, right after the class)."""
    cls._fields = names
    for index, name in enumerate(names):
        setattr(cls, name, _getter(index, f"Field {index}: {name}"))
