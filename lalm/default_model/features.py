"""The frozen encoder's outputs, computed once per clip and cached on disk, so training never runs the encoder.

What is cached is exactly what the Qwen2-Audio audio tower computes before its average pooling: the Whisper
encoder's conv stem, positions and layers over a clip's real mel frames, at 50 frames per second, d_model wide
(float16). Qwen2-Audio pads every clip to 30 s of mel but masks the padded frames out of the encoder's attention
(transformers' Qwen2AudioModel, vLLM alike), so running the layers on the real frames alone gives the same
numbers for them; the conv stem reads up to two mel frames past the end, so it is run on those too.

Storage: shards of `shard_size` clips, each an `.npz` with the frames of all its clips concatenated, their
lengths, references and metadata. A shard that exists is done: building resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FeatureSet", "FrozenEncoder", "build_features", "map_shards", "shard_name", "write_shard"]


class FrozenEncoder:
    """The Whisper encoder of a Qwen2-Audio audio tower, run up to (not including) the pooling.

    `encoder` is a `Qwen2AudioEncoder` (its `layers`, `conv1`, `conv2`, `embed_positions` are used);
    `feature_extractor` the checkpoint's WhisperFeatureExtractor."""

    def __init__(self, encoder: nn.Module, feature_extractor, device: torch.device | str | None = None) -> None:
        self.encoder = encoder.eval().requires_grad_(False)
        if device is not None:
            self.encoder.to(device)
        self.device = device
        self.feature_extractor = feature_extractor

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str | None = None) -> FrozenEncoder:
        """The audio tower and feature extractor of a Qwen2-Audio checkpoint folder (the tower on `device`)."""
        from lalm.modeling.checkpoint import load_checkpoint

        model, processor = load_checkpoint(path)
        return cls(model.model.audio_tower, processor.feature_extractor, device)

    @torch.no_grad()
    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz samples -> (T, d_model) float16 frames at 50 per second, T = ceil(mel frames / 2)
        as Qwen2-Audio counts them (`_get_feat_extract_output_lengths`)."""
        # on a GPU the mel spectrogram is computed there too (the CPU path is left exactly as it was)
        extra = {"device": str(self.device)} if self.device is not None and torch.device(
            self.device).type == "cuda" else {}
        feats = self.feature_extractor(samples, sampling_rate=16000, return_attention_mask=True,
                                       padding="max_length", return_tensors="pt", **extra)
        mel_frames = int(feats["attention_mask"].sum())
        length = (mel_frames - 1) // 2 + 1
        mel = feats["input_features"][..., : 2 * length + 2]
        if self.device is not None:
            mel = mel.to(self.device)
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(mel))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)[:, :length]
        x = x + enc.embed_positions.weight[:length]
        for layer in enc.layers:
            x = layer(x, None)
        return x[0].to(torch.float16).cpu().numpy()


@dataclass
class FeatureSet:
    """Cached frames of one split, loaded in memory: `frames[i]` is clip i's (T_i, d) float16 array."""

    frames: list[np.ndarray]
    references: list[str]
    meta: list[dict]

    def __len__(self) -> int:
        return len(self.frames)

    def __add__(self, other: FeatureSet) -> FeatureSet:
        """The clips of both sets, these first (frames stay memory-mapped)."""
        return FeatureSet(self.frames + other.frames, self.references + other.references, self.meta + other.meta)

    @classmethod
    def load(cls, folder: str | Path) -> FeatureSet:
        """The split's clips. Their frames are memory-mapped from one `frames.npy` that joins the shards (made
        on first load, remade when the shards change): file-backed pages the kernel can drop under memory
        pressure, instead of gigabytes of private memory a busy machine's OOM killer goes for."""
        folder = Path(folder)
        shards = sorted(folder.glob("shard-*.npz"))
        joined, index = folder / "frames.npy", folder / "index.json"
        names = [s.name for s in shards]
        if not index.is_file() or json.loads(index.read_text())["shards"] != names:
            _join_shards(shards, joined, index)
        info = json.loads(index.read_text())
        data = np.load(joined, mmap_mode="r")
        offsets = np.concatenate([[0], np.cumsum(info["lengths"])])
        frames = [data[a:b] for a, b in itertools.pairwise(offsets)]
        return cls(frames, info["references"], info["meta"])


def _join_shards(shards: list[Path], joined: Path, index: Path) -> None:
    """Write every shard's frames into one .npy (shard by shard, never all in memory) and an index."""
    lengths, refs, meta, total, width = [], [], [], 0, None
    for shard in shards:
        with np.load(shard, allow_pickle=False) as data:
            lengths += data["lengths"].tolist()
            info = json.loads(str(data["info"]))
            width = data["frames"].shape[1]
        refs += info["references"]
        meta += info["meta"]
    total = sum(lengths)
    tmp = joined.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, width or 0))
    pos = 0
    for shard in shards:
        with np.load(shard, allow_pickle=False) as data:
            frames = data["frames"]
            out[pos:pos + len(frames)] = frames
            pos += len(frames)
    out.flush()
    del out
    tmp.rename(joined)
    index.write_text(json.dumps({"shards": [s.name for s in shards], "lengths": lengths, "references": refs,
                                 "meta": meta}))


def _shards(n: int, shard_size: int) -> Iterator[tuple[int, range]]:
    for k, start in enumerate(range(0, n, shard_size)):
        yield k, range(start, min(n, start + shard_size))


def _build_shard(args: tuple) -> str:
    from lalm.default_model.corpus import make_clip

    cfg, split, indices, path, audio_dir, checkpoint = args
    torch.set_num_threads(1)
    encoder = _worker_encoder(checkpoint)
    frames, refs, meta = [], [], []
    for i in indices:
        clip = make_clip(cfg, split, i)
        if audio_dir is not None:
            import soundfile as sf

            name = f"{split}-{i:06d}.flac"
            sf.write(Path(audio_dir) / name, clip.samples, 16000, format="FLAC", subtype="PCM_16")
            clip.meta["audio"] = name
        f = encoder(clip.samples)
        frames.append(f)
        refs.append(clip.reference)
        meta.append({**clip.meta, "seconds": round(len(clip.samples) / 16000, 3)})
    return str(write_shard(path, frames, refs, meta))


def shard_name(k: int) -> str:
    """The file name of a split's shard `k` (clips k * shard_size ...)."""
    return f"shard-{k:05d}.npz"


def write_shard(path: str | Path, frames: list[np.ndarray], references: list[str], meta: list[dict]) -> Path:
    """Store one shard: clips' (T_i, d) float16 frames, references and metadata, written to a temporary file
    and renamed, so a shard that exists is complete. Returns `path`."""
    path = Path(path)
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, frames=np.concatenate(frames), lengths=np.array([len(f) for f in frames], np.int32),
             info=json.dumps({"references": references, "meta": meta}))
    tmp.rename(path)
    return path


_ENCODERS: dict[str, FrozenEncoder] = {}


def _worker_encoder(checkpoint: str) -> FrozenEncoder:
    if checkpoint not in _ENCODERS:
        _ENCODERS[checkpoint] = FrozenEncoder.from_checkpoint(checkpoint)
    return _ENCODERS[checkpoint]


def build_features(cfg, split: str, n: int, folder: str | Path, *, checkpoint: str | Path, workers: int = 2,
                   shard_size: int = 250, keep_audio: bool = False, progress: bool = True) -> Path:
    """Synthesise clips 0..n-1 of `split` (corpus.make_clip with the CorpusConfig `cfg`), pass them through
    the frozen encoder of the Qwen2-Audio `checkpoint` and store the frames in `folder`'s shards; shards
    already on disk are kept (resume). With `keep_audio` the clips are also written as FLAC under
    `folder/audio/` (the held-out set, for evaluation through a server). Returns `folder`."""
    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    audio_dir = folder / "audio" if keep_audio else None
    if audio_dir is not None:
        audio_dir.mkdir(exist_ok=True)
    todo = [(cfg, split, idx, folder / shard_name(k), audio_dir, str(checkpoint))
            for k, idx in _shards(n, shard_size) if not (folder / shard_name(k)).exists()]
    bar = tqdm(total=n, initial=n - sum(len(t[2]) for t in todo), desc=f"features {split}", unit="clip",
               disable=not progress)
    map_shards(_build_shard, todo, workers=workers, bar=bar)
    return folder


def map_shards(fn: Callable[[tuple], Any], jobs: list[tuple], *, workers: int, bar) -> None:
    """Run `fn` on each shard job in `workers` spawned processes (a job's third item is its clip indices:
    the tqdm `bar` advances by their count as each shard is done), then close the bar."""
    if jobs:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for job, _ in zip(jobs, pool.map(fn, jobs), strict=True):
                bar.update(len(job[2]))
    bar.close()
