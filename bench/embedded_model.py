"""The embedded default model beside faster-whisper tiny.en (the same encoder weights, Whisper's own decoder),
on the same clips in the same run.

    .venv/bin/python bench/embedded_model.py                       # builds models/default-built if missing
    .venv/bin/python bench/embedded_model.py --speech 100 --non-speech 40 --model DIR
    .venv/bin/python bench/embedded_model.py --quick --model DIR   # 2 clips per set, transformers engine

Clips: held-out synthetic speech (voices and texts never trained on, lalm/default_model/corpus.py), real
recordings (recordings.py: LibriVox, cards, alsa voice prompts) and held-out non-speech clips. The default
model answers through `lalm serve` (vLLM engine, or --engine hf; greedy) on /v1/audio/transcriptions;
faster-whisper transcribes in process (greedy, no VAD filter, no conditioning on previous text, int8 as it runs
on CPU). Printed per set: WER with S/D/I after Whisper's English normaliser; for non-speech, the share of clips
answered with nothing (lalm returns empty text for the no-speech answer); per system the real-time factor
(processing seconds per audio second, median over clips, one request at a time).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from lalm.audio import encode_wav  # noqa: E402
from lalm.default_model.corpus import CorpusConfig, make_clip  # noqa: E402
from lalm.default_model.recordings import real_recordings  # noqa: E402
from lalm.metrics import format_table, score_corpus  # noqa: E402
from lalm.serve.process import GatewayProcess  # noqa: E402


def serve(model: Path, log: Path, engine: str = "vllm") -> GatewayProcess:
    """`lalm serve --engine ENGINE` on `model` (vllm: it starts its own vLLM), healthy (lalm.serve.process)."""
    return GatewayProcess.start(["--model", str(model), "--engine", engine, "--served-model-name", "default",
                                 "--log-level", "warning"], log, timeout=900, cwd=ROOT)


def lalm_transcribe(url: str, clips: list[np.ndarray], desc: str) -> tuple[list[str], list[float]]:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=300)
    texts, rtf = [], []
    for samples in tqdm(clips, desc=f"lalm: {desc}", unit="clip"):
        start = time.perf_counter()
        out = client.audio.transcriptions.create(model="default", file=("clip.wav", io.BytesIO(encode_wav(samples))),
                                                 response_format="json", temperature=0)
        rtf.append((time.perf_counter() - start) / (len(samples) / 16000))
        texts.append(out.text)
    return texts, rtf


def whisper_transcribe(clips: list[np.ndarray], desc: str) -> tuple[list[str], list[float]]:
    from faster_whisper import WhisperModel

    from lalm.modeling.assets import asset_path

    model = WhisperModel(str(asset_path("whisper-tiny.en")), device="cpu", compute_type="int8", cpu_threads=2)
    texts, rtf = [], []
    for samples in tqdm(clips, desc=f"faster-whisper: {desc}", unit="clip"):
        start = time.perf_counter()
        segments, _ = model.transcribe(samples, language="en", beam_size=1, best_of=1, temperature=0.0,
                                       condition_on_previous_text=False, vad_filter=False)
        texts.append(" ".join(s.text.strip() for s in segments))
        rtf.append((time.perf_counter() - start) / (len(samples) / 16000))
    return texts, rtf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models/default-built",
                        help="the default model's checkpoint (built from --weights when missing)")
    parser.add_argument("--weights", type=Path, default=ROOT / "models/default", help="committed weights")
    parser.add_argument("--speech", type=int, default=100, help="held-out synthetic speech clips")
    parser.add_argument("--non-speech", type=int, default=40, help="held-out non-speech clips")
    parser.add_argument("--real", type=int, help="real recordings (default: every one found)")
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm", help="lalm serve's engine")
    args = parse_args(parser, {"speech": 2, "non_speech": 2, "real": 2, "engine": "hf"})

    if not (args.model / "config.json").is_file():
        from lalm.modeling.trained_weights import build_default_model

        build_default_model(args.weights, args.model)
    cfg = CorpusConfig()
    held = [make_clip(cfg, "heldout_speech", i) for i in tqdm(range(args.speech), desc="speech")]
    quiet = [make_clip(cfg, "heldout_non_speech", i) for i in tqdm(range(args.non_speech), desc="non-speech")]
    real = real_recordings()[:args.real]
    sets = {"held-out synthetic speech": ([c.samples for c in held], [c.reference for c in held]),
            "real recordings": ([r.samples for r in real], [r.reference for r in real]),
            "held-out non-speech": ([c.samples for c in quiet], [""] * len(quiet))}
    with tempfile.TemporaryDirectory() as tmp:
        gateway = serve(args.model, Path(tmp) / "serve.log", args.engine)
        try:
            lalm_out = {name: lalm_transcribe(gateway.url, clips, name) for name, (clips, _) in sets.items()}
        finally:
            gateway.stop(60)
    whisper_out = {name: whisper_transcribe(clips, name) for name, (clips, _) in sets.items()}
    for name, (_, refs) in sets.items():
        reports = {"lalm default": score_corpus(refs, lalm_out[name][0]),
                   "faster-whisper tiny.en": score_corpus(refs, whisper_out[name][0])}
        print(f"\n## {name} ({len(refs)} clips)")
        print(format_table(reports))
        if name == "held-out non-speech":
            for label, r in reports.items():
                print(f"{label}: answered with nothing on {1 - r.non_speech_output_rate:.1%} of non-speech clips")
    rtf = {label: statistics.median(x for name in sets for x in out[name][1])
           for label, out in (("lalm default (through lalm serve)", lalm_out),
                              ("faster-whisper tiny.en (in process)", whisper_out))}
    print("\nreal-time factor, median over every clip (lower is faster):")
    for label, value in rtf.items():
        print(f"  {label}: {value:.3f}")
    lalm_rtf, whisper_rtf = rtf.values()
    print(f"  ratio lalm / faster-whisper: {lalm_rtf / whisper_rtf:.2f}")


if __name__ == "__main__":
    main()
