"""Types used to annotate external functions and jit helper parameters."""

from __future__ import annotations

from .parpy import ElemSize, ExtType

__all__ = [
    "F16",
    "F32",
    "F64",
    "I8",
    "I16",
    "I32",
    "I64",
    "U8",
    "U16",
    "U32",
    "U64",
    "Bool",
    "pointer",
]

Bool = ElemSize.Bool
I8 = ElemSize.I8
I16 = ElemSize.I16
I32 = ElemSize.I32
I64 = ElemSize.I64
U8 = ElemSize.U8
U16 = ElemSize.U16
U32 = ElemSize.U32
U64 = ElemSize.U64
F16 = ElemSize.F16
F32 = ElemSize.F32
F64 = ElemSize.F64


def pointer(ty: ElemSize) -> ExtType:
    """The type of a pointer to elements of type `ty`."""
    if not isinstance(ty, ElemSize):
        raise RuntimeError(f"Provided type {ty} must be an ExtType.")  # noqa: TRY004 - original's
    return ExtType.Pointer(ty)
