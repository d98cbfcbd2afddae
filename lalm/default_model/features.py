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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["FeatureSet", "FrozenEncoder", "build_features"]


class FrozenEncoder:
    """The Whisper encoder of a Qwen2-Audio audio tower, run up to (not including) the pooling.

    `encoder` is a `Qwen2AudioEncoder` (its `layers`, `conv1`, `conv2`, `embed_positions` are used);
    `feature_extractor` the checkpoint's WhisperFeatureExtractor."""

    def __init__(self, encoder: nn.Module, feature_extractor) -> None:
        self.encoder = encoder.eval().requires_grad_(False)
        self.feature_extractor = feature_extractor

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> FrozenEncoder:
        """The audio tower and feature extractor of a Qwen2-Audio checkpoint folder."""
        from lalm.modeling.checkpoint import load_checkpoint

        model, processor = load_checkpoint(path)
        return cls(model.model.audio_tower, processor.feature_extractor)

    @torch.no_grad()
    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz samples -> (T, d_model) float16 frames at 50 per second, T = ceil(mel frames / 2)
        as Qwen2-Audio counts them (`_get_feat_extract_output_lengths`)."""
        feats = self.feature_extractor(samples, sampling_rate=16000, return_attention_mask=True,
                                       padding="max_length", return_tensors="pt")
        mel_frames = int(feats["attention_mask"].sum())
        length = (mel_frames - 1) // 2 + 1
        mel = feats["input_features"][..., : 2 * length + 2]
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(mel))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)[:, :length]
        x = x + enc.embed_positions.weight[:length]
        for layer in enc.layers:
            x = layer(x, None)
        return x[0].to(torch.float16).numpy()


@dataclass
class FeatureSet:
    """Cached frames of one split, loaded in memory: `frames[i]` is clip i's (T_i, d) float16 array."""

    frames: list[np.ndarray]
    references: list[str]
    meta: list[dict]

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def load(cls, folder: str | Path) -> FeatureSet:
        frames, refs, meta = [], [], []
        for shard in sorted(Path(folder).glob("shard-*.npz")):
            data = np.load(shard, allow_pickle=False)
            # each data[...] reads (and copies) the whole array again: read once, slice views
            shard_frames = data["frames"]
            offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
            frames += [shard_frames[a:b] for a, b in itertools.pairwise(offsets)]
            info = json.loads(str(data["info"]))
            refs += info["references"]
            meta += info["meta"]
        return cls(frames, refs, meta)


def _shards(n: int, shard_size: int) -> Iterator[tuple[int, range]]:
    for k, start in enumerate(range(0, n, shard_size)):
        yield k, range(start, min(n, start + shard_size))


def _build_shard(args: tuple) -> str:
    from lalm.default_model.corpus import make_clip

    cfg, split, indices, path, audio_dir, checkpoint = args
    torch.set_num_threads(1)
    encoder = _worker_encoder(checkpoint)
    frames, lengths, refs, meta = [], [], [], []
    for i in indices:
        clip = make_clip(cfg, split, i)
        if audio_dir is not None:
            import soundfile as sf

            name = f"{split}-{i:06d}.flac"
            sf.write(Path(audio_dir) / name, clip.samples, 16000, format="FLAC", subtype="PCM_16")
            clip.meta["audio"] = name
        f = encoder(clip.samples)
        frames.append(f)
        lengths.append(len(f))
        refs.append(clip.reference)
        meta.append({**clip.meta, "seconds": round(len(clip.samples) / 16000, 3)})
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, frames=np.concatenate(frames), lengths=np.array(lengths, np.int32),
             info=json.dumps({"references": refs, "meta": meta}))
    tmp.rename(path)
    return str(path)


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
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    audio_dir = folder / "audio" if keep_audio else None
    if audio_dir is not None:
        audio_dir.mkdir(exist_ok=True)
    todo = [(cfg, split, idx, folder / f"shard-{k:05d}.npz", audio_dir, str(checkpoint))
            for k, idx in _shards(n, shard_size) if not (folder / f"shard-{k:05d}.npz").exists()]
    bar = tqdm(total=n, initial=n - sum(len(t[2]) for t in todo), desc=f"features {split}", unit="clip",
               disable=not progress)
    if todo:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for job, _ in zip(todo, pool.map(_build_shard, todo), strict=True):
                bar.update(len(job[2]))
    bar.close()
    return folder
