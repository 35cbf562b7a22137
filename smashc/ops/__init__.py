"""The op registry and the built-in ops, one entry each (see ``smashc.ops.registry``).

Importing this package registers the built-in ops. A new op is one ``register(OpDef(...))``
call (docs/ir.md, "Adding an op").
"""

from smashc.ops import activation, chanpad, conv, linear, norm, pool, smash  # noqa: F401
from smashc.ops.registry import (
    REQUIRED,
    ArgError,
    Emitter,
    OpDef,
    Param,
    entries,
    lookup,
    names,
    of,
    op_kind,
    op_name,
    register,
    unregister,
)

__all__ = [
    "REQUIRED",
    "ArgError",
    "Emitter",
    "OpDef",
    "Param",
    "entries",
    "lookup",
    "names",
    "of",
    "op_kind",
    "op_name",
    "register",
    "unregister",
]
