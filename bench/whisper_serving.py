"""Benchmark: lalm's built-in `default` (Whisper base hears, SmolLM2-135M-Instruct answers) served by `lalm serve`
and asked over HTTP with the openai SDK, against faster-whisper called directly on the same Whisper base weights
(float32; greedy with and without its VAD filter, and with 5 beams, its default) and vLLM's own
/v1/audio/transcriptions on the converted model (`lalm convert-whisper` + lalm's vLLM plugin), measured in one run
on the same clips. Goals: real recordings WER <= 0.05; synthetic unseen voices WER no worse than faster-whisper
greedy without VAD; >= 95% of non-speech clips answered with no text; the 10-minute file's real-time factor <= 1.2x
faster-whisper's with the same decoding (lalm's `whisper_beam_size`).

    .venv/bin/python bench/whisper_serving.py                 # every set, every system (982 s of audio each)
    .venv/bin/python bench/whisper_serving.py --no-vllm --show
    .venv/bin/python bench/whisper_serving.py --quick         # 2 real clips and 1 silence, no vLLM

The clips:
- real: the 10 recordings of Debian's pocketsphinx-testdata (5 LibriVox "Sense and Sensibility" utterances, 5
  "cards" utterances; 34 s), their transcripts beside them (lalm.default_model.recordings);
- long: the real clips in shuffled rounds with 0.3-2.5 s pauses (a faint noise floor) until >= 10 minutes;
- synthetic: 20 Harvard sentences spoken by flite's awb (Scottish English, male) and rms (US English, male)
  voices, each at normal and fast speed (`duration_stretch` 0.8), every sentence in all four (80 clips; fewer
  take a spread of sentences in each): speakers and a synthesiser that lalm's training
  corpora never use (they use espeak-ng's English voices and variants, festival's slt and kal); skipped, with
  the reason, when flite is not installed (`apt-get install flite`);
- non-speech: 20 clips of 3-10 s: faint silence, white/pink/brown noise, music loops and other sounds of
  Debian's sonic-pi-samples (lalm.synth.background).

Each system transcribes every clip once, one request at a time, after one warm-up request; the language is never
given (each detects it). WER (S, D, I) and the text normaliser are lalm.metrics'. The real-time factor is the
seconds a system took over the seconds of audio (HTTP systems: the whole request, upload and decoding included).
Peak RSS is the peak resident memory of the processes that run the model: the server's process tree (the sum of
each process's own peak, /proc VmHWM) or the worker process faster-whisper runs in (its ru_maxrss). faster-whisper
gets the same WAV files, is called as `transcribe(path, beam_size=..., vad_filter=...)` and otherwise keeps its
defaults (temperature fallback, conditioning on previous text, compute type float32 as lalm loads it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quick import parse_args

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
# IEEE "Harvard sentences", lists 1 and 2 (public domain): phonetically balanced, not in lalm's text sources
HARVARD = (
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
)
# flite voice, duration stretch (< 1 is faster)
FLITE_VOICES = (("awb", 1.0), ("rms", 1.0), ("awb", 0.8), ("rms", 0.8))
NON_SPEECH_KINDS = ("silence",) * 4 + ("noise",) * 6 + ("music",) * 6 + ("sound",) * 4
SETS = ("real", "synthetic", "non-speech", "long")


@dataclass(frozen=True)
class Clip:
    """One WAV file of the run; `reference` is "" for non-speech."""

    id: str
    set: str
    path: Path
    reference: str
    seconds: float


@dataclass
class Run:
    """What one system gave: text, wall seconds and CPU seconds (of the processes that run the model) per clip
    id, and its peak RSS in bytes (None: not measured)."""

    name: str
    texts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: int | None = None
    skipped: str | None = None


# --- the clips ----------------------------------------------------------------------------------------------

def _write(path: Path, samples: np.ndarray) -> float:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(samples, -1, 1), SR, subtype="PCM_16")
    return len(samples) / SR


def _flite(text: str, voice: str, stretch: float) -> np.ndarray:
    from lalm.audio import decode_audio

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "out.wav")
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", text, "-o",
                        str(out)], check=True, capture_output=True)
        samples = decode_audio(out).samples
    return 0.7 * samples / max(float(np.abs(samples).max()), 1e-6)


def build_clips(work: Path, *, n_real: int, n_synthetic: int, n_non_speech: int, long_minutes: float,
                seed: int = 0) -> list[Clip]:
    """Write the clip set into `work` and return it (see the module docstring)."""
    import shutil

    from lalm.default_model.recordings import real_recordings
    from lalm.synth import background

    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    real = [r for r in real_recordings() if not r.name.startswith("alsa/")]
    if not real:
        raise SystemExit("no pocketsphinx-testdata recordings: apt-get install pocketsphinx-testdata")
    picked = real if n_real >= len(real) else [real[i] for i in np.linspace(0, len(real) - 1, n_real).astype(int)]
    for r in picked:
        path = work / "real" / f"{r.name.replace('/', '_')}.wav"
        clips.append(Clip(r.name, "real", path, r.reference, _write(path, r.samples)))
    if n_synthetic:
        if shutil.which("flite") is None:
            print("synthetic: skipped (flite is not installed: apt-get install flite)")
        for k in range(n_synthetic if shutil.which("flite") else 0):
            voice, stretch = FLITE_VOICES[k % len(FLITE_VOICES)]
            text = HARVARD[(k // len(FLITE_VOICES) + 5 * (k % len(FLITE_VOICES))) % len(HARVARD)]
            path = work / "synthetic" / f"{k:02d}_{voice}_{stretch}.wav"
            clips.append(Clip(f"flite-{voice}-x{stretch}/{k:02d}", "synthetic", path, text,
                              _write(path, _flite(text, voice, stretch))))
    for k in range(n_non_speech):
        samples, what = background(rng, float(rng.uniform(3, 10)), NON_SPEECH_KINDS[k % len(NON_SPEECH_KINDS)])
        path = work / "non-speech" / f"{k:02d}.wav"
        clips.append(Clip(f"{what}/{k:02d}", "non-speech", path, "", _write(path, samples)))
    if long_minutes > 0:
        order, parts, words, total = random.Random(seed), [], [], 0.0
        while total < long_minutes * 60:
            for r in order.sample(real, len(real)):
                pause = rng.normal(0, 10 ** (-60 / 20), int(rng.uniform(0.3, 2.5) * SR)).astype(np.float32)
                parts += [pause, r.samples]
                words.append(r.reference)
                total += (len(pause) + len(r.samples)) / SR
        path = work / "long" / "long.wav"
        seconds = _write(path, np.concatenate(parts))
        clips.append(Clip(f"long/{seconds / 60:.1f}min", "long", path, " ".join(words), seconds))
    return clips


# --- the systems --------------------------------------------------------------------------------------------

def _tree_peak_rss(pid: int) -> int:
    """The sum of each process's own peak resident memory (VmHWM) over `pid` and its descendants, in bytes."""
    import psutil

    total = 0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
    return total


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants so far."""
    import psutil

    root, total = psutil.Process(pid), 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _over_http(name: str, url: str, model: str, clips: Sequence[Clip], pid: int) -> Run:
    """Every clip through /v1/audio/transcriptions with the openai SDK, one at a time, after a warm-up."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=1800, max_retries=0)

    def ask(clip: Clip) -> str:
        with clip.path.open("rb") as f:
            return client.audio.transcriptions.create(model=model, file=f, response_format="json").text

    run = Run(name)
    ask(clips[0])
    for clip in clips:
        started, cpu = time.perf_counter(), _tree_cpu(pid)
        run.texts[clip.id] = ask(clip)
        run.seconds[clip.id] = time.perf_counter() - started
        run.cpu[clip.id] = _tree_cpu(pid) - cpu
    run.peak_rss = _tree_peak_rss(pid)
    return run


def lalm_http(model: str, clips: Sequence[Clip], work: Path) -> Run:
    """`lalm serve --model MODEL` as a child process, asked over HTTP."""
    from lalm.serve.process import GatewayProcess

    log = work / f"lalm-{model}.log"
    print(f"starting lalm serve --model {model} (log: {log})", flush=True)
    # the 10-minute file must not meet the gateway's request time limit on a busy machine
    gateway = GatewayProcess.start(["--model", model, "--log-level", "warning", "--request-timeout-s", "3600"], log,
                                   timeout=900, cwd=ROOT)
    try:
        return _over_http(f"lalm {model} (HTTP)", gateway.url, model, clips, gateway.pid)
    finally:
        gateway.stop(60)


def _lalm_worker(paths: list[str], model: str) -> tuple[list[str], list[float], list[float], int]:
    """In a fresh process: lalm.job.run_job on each file with the built-in `model` (the first one twice: a
    warm-up). Returns texts, wall and CPU seconds, and the process's peak RSS in bytes."""
    import asyncio
    import resource

    from lalm.audio import decode_audio
    from lalm.config import Settings
    from lalm.job import JobOptions, run_job
    from lalm.serve.backend import local_engine

    settings = Settings()
    engine = local_engine(model, settings)

    async def go() -> tuple[list[str], list[float], list[float]]:
        await engine.start()
        texts, seconds, cpu = [], [], []
        for k, path in enumerate([paths[0], *paths]):
            started, used = time.perf_counter(), time.process_time()
            text = (await run_job(engine, decode_audio(Path(path)).samples, JobOptions(), settings)).text
            if k:
                texts.append(text)
                seconds.append(time.perf_counter() - started)
                cpu.append(time.process_time() - used)
        await engine.close()
        return texts, seconds, cpu

    return *asyncio.run(go()), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _faster_whisper_worker(paths: list[str], folder: str, vad: bool, beam_size: int
                           ) -> tuple[list[str], list[float], list[float], int]:
    """In a fresh process: faster-whisper's `transcribe` on each file (the first one twice: a warm-up) with
    `beam_size` beams (1: greedy), float32. Returns texts, wall and CPU seconds, and the process's peak RSS in
    bytes."""
    import resource

    from faster_whisper import WhisperModel

    model = WhisperModel(folder, device="cpu", compute_type="float32", local_files_only=True)
    texts, seconds, cpu = [], [], []
    for k, path in enumerate([paths[0], *paths]):
        started, used = time.perf_counter(), time.process_time()
        segments, _ = model.transcribe(path, beam_size=beam_size, vad_filter=vad)
        text = "".join(s.text for s in segments).strip()
        if k:
            texts.append(text)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
    return texts, seconds, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _in_worker(name: str, fn: Callable[..., tuple[list[str], list[float], list[float], int]],
               clips: Sequence[Clip], *args: object) -> Run:
    """`fn(paths, *args)` in a spawned process of its own, so that its peak RSS is the model's alone."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        texts, seconds, cpu, rss = pool.submit(fn, [str(c.path) for c in clips], *args).result()
    ids = [c.id for c in clips]
    return Run(name, *(dict(zip(ids, values, strict=True)) for values in (texts, seconds, cpu)), peak_rss=rss)


def faster_whisper(clips: Sequence[Clip], vad: bool, beam_size: int = 1) -> Run:
    from lalm.modeling.whisper import whisper_folder

    return _in_worker(_fw_name(vad, beam_size), _faster_whisper_worker, clips, str(whisper_folder("base")), vad,
                      beam_size)


def _fw_name(vad: bool, beam_size: int) -> str:
    return f"faster-whisper{' + VAD' if vad else ''}{f' beam {beam_size}' if beam_size > 1 else ''}"


def lalm_in_process(model: str, clips: Sequence[Clip]) -> Run:
    return _in_worker(f"lalm {model} (in-process run_job)", _lalm_worker, clips, model)


def vllm_http(clips: Sequence[Clip], work: Path) -> Run:
    """vLLM's own server on Whisper base converted to a transformers checkpoint, asked over HTTP."""
    name = "vLLM"
    try:
        import vllm  # noqa: F401

        from lalm.engines.vllm_whisper import whisper_process
        from lalm.modeling.whisper import whisper_folder
        from lalm.modeling.whisper_convert import convert_ct2_to_hf
    except ImportError as exc:
        return Run(name, skipped=f"not available here ({exc})")
    folder = work / "whisper-base-hf"
    if not (folder / "config.json").is_file():  # converted by an earlier run of this --work
        folder = convert_ct2_to_hf(whisper_folder("base"), folder, log=lambda _: None)
    log = work / "vllm.log"
    # vLLM refuses uploads over 600 s unless told otherwise; the long file is longer
    os.environ.setdefault("VLLM_MAX_AUDIO_DECODE_DURATION_S", "7200")
    proc = whisper_process(folder, served_model_name="whisper-base", log_path=log)
    print(f"starting vLLM on {folder} (log: {log})", flush=True)
    try:
        proc.start(timeout=900)
    except (RuntimeError, TimeoutError) as exc:
        proc.stop()
        return Run(name, skipped=f"vLLM did not start ({exc}); see {log}")
    try:
        return _over_http(name, proc.url, "whisper-base", clips, proc.pid)
    finally:
        proc.stop()


# --- the report ---------------------------------------------------------------------------------------------

def _score(run: Run, clips: Sequence[Clip]):
    from lalm.metrics import score_corpus

    return score_corpus([c.reference for c in clips], [run.texts[c.id] for c in clips], [c.id for c in clips])


def _per_audio_second(values: dict[str, float], clips: Sequence[Clip]) -> float:
    return sum(values[c.id] for c in clips) / sum(c.seconds for c in clips)


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report(runs: Sequence[Run], clips: Sequence[Clip], baseline: str) -> dict:
    """Print one table per clip set, ratios against the run named `baseline`, and return the figures."""
    done = [r for r in runs if r.skipped is None]
    base = next((r for r in done if r.name == baseline), None)
    figures: dict = {"sets": {}, "peak_rss_mib": {}}
    for name in SETS:
        subset = [c for c in clips if c.set == name]
        if not subset:
            continue
        print(f"\n[{name}] {len(subset)} clips, {sum(c.seconds for c in subset):.1f} s of audio; RTF: wall seconds, "
              f"CPU: CPU seconds, per second of audio; ratios against {baseline}")
        head = "no text  words" if name == "non-speech" else "  WER      S    D    I  words  ratio"
        print(f"  {'system':<34} {head}    RTF   ratio    CPU   ratio")
        rows = figures["sets"][name] = {}
        for run in done:
            s = _score(run, subset)
            rtf, cpu = _per_audio_second(run.seconds, subset), _per_audio_second(run.cpu, subset)
            b = {"wer": _score(base, subset).wer, "rtf": _per_audio_second(base.seconds, subset),
                 "cpu": _per_audio_second(base.cpu, subset)} if base else {}
            if name == "non-speech":
                silent = 1 - s.non_speech_output_rate
                rows[run.name] = {"no_text": silent, "words_written": s.insertions}
                quality = f"{100 * silent:6.1f}%  {s.insertions:5d}"
            else:
                rows[run.name] = {"wer": s.wer, "S": s.substitutions, "D": s.deletions, "I": s.insertions,
                                  "words": s.reference_words}
                quality = (f"{s.wer:5.3f}  {s.substitutions:4d} {s.deletions:4d} {s.insertions:4d}  "
                           f"{s.reference_words:5d}  {_ratio(s.wer, b.get('wer')):>5}")
            rows[run.name].update(rtf=rtf, cpu=cpu)
            print(f"  {run.name:<34} {quality}  {rtf:5.3f}  {_ratio(rtf, b.get('rtf')):>6}  {cpu:5.3f}  "
                  f"{_ratio(cpu, b.get('cpu')):>6}")
    print("\n[peak RSS of the processes that run the model]")
    base_rss = base.peak_rss if base else None
    for run in done:
        rss = run.peak_rss or 0
        figures["peak_rss_mib"][run.name] = rss / 2**20
        print(f"  {run.name:<34} {rss / 2**20:7.0f} MiB  {_ratio(rss, base_rss)}")
    for run in runs:
        if run.skipped:
            print(f"\n{run.name}: skipped, {run.skipped}")
    return figures


def speed(runs: Sequence[Run], clips: Sequence[Clip], baseline: str) -> dict[str, float]:
    """Print and return each lalm system's real-time factor over `baseline`'s (faster-whisper decoding with the
    beams lalm decodes with) on the long file, else on all speech clips."""
    done = {r.name: r for r in runs if r.skipped is None}
    subset = [c for c in clips if c.set == "long"] or [c for c in clips if c.reference]
    if baseline not in done or not subset:
        return {}
    base = _per_audio_second(done[baseline].seconds, subset)
    print(f"\n[speed on {'the long file' if subset[0].set == 'long' else 'the speech clips'}: RTF over {baseline}'s, "
          "the same decoding]")
    ratios = {}
    for name, run in done.items():
        if name.startswith("lalm"):
            ratios[name] = _per_audio_second(run.seconds, subset) / base
            print(f"  {name:<34} {ratios[name]:.2f}x")
    return ratios


def show(runs: Sequence[Run], clips: Sequence[Clip]) -> None:
    """Each speech clip's reference and every system's text (normalised), where some system differs from it."""
    from lalm.metrics import normalize

    for clip in clips:
        if clip.set != "long":
            texts = {r.name: normalize(r.texts[clip.id]) for r in runs if r.skipped is None}
            if any(t != normalize(clip.reference) for t in texts.values()):
                print(f"\n{clip.id}\n  {'reference':<34} {normalize(clip.reference)}")
                for name, text in texts.items():
                    print(f"  {name:<34} {text}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="the lalm model served (a built-in name)")
    parser.add_argument("--also", default="whisper-base",
                        help="another lalm model served the same way (comma-separated; '' for none): "
                             "whisper-base shows the Whisper alone, without the text LLM beside it")
    parser.add_argument("--in-process", action="store_true",
                        help="run lalm through lalm.job.run_job in a worker process instead of over HTTP")
    parser.add_argument("--real", type=int, default=10, help="real recordings (at most 10)")
    parser.add_argument("--synthetic", type=int, default=80,
                        help="synthetic clips of unseen voices (80: every sentence in every voice and speed)")
    parser.add_argument("--non-speech", type=int, default=20, help="non-speech clips")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file (0: none)")
    parser.add_argument("--no-vllm", dest="vllm", action="store_false", help="skip vLLM's own server")
    parser.add_argument("--skip", default="", help="systems not to run, comma-separated names (e.g. "
                                                   "'faster-whisper + VAD')")
    parser.add_argument("--show", action="store_true", help="print the texts of the clips some system got wrong")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--work", type=Path, help="folder for the clips, logs and each system's texts and times "
                                                  "(runs.json; default: a temporary folder)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the systems already measured in --work's runs.json (the clips are the same: "
                             "they are made from fixed seeds) and run only the others")
    args = parse_args(parser, {"real": 2, "synthetic": 0, "non_speech": 1, "long_minutes": 0.0, "vllm": False,
                               "also": ""}, argv)
    with tempfile.TemporaryDirectory(prefix="whisper-serving-") as tmp:
        work = args.work or Path(tmp)
        clips = build_clips(work, n_real=args.real, n_synthetic=args.synthetic, n_non_speech=args.non_speech,
                            long_minutes=args.long_minutes)
        print(f"{len(clips)} clips, {sum(c.seconds for c in clips):.0f} s of audio, in {work}", flush=True)
        lalm = [(f"lalm {m} (in-process run_job)", partial(lalm_in_process, m, clips)) if args.in_process else
                (f"lalm {m} (HTTP)", partial(lalm_http, m, clips, work))
                for m in [args.model, *filter(None, args.also.split(","))]]
        from lalm.config import Settings

        beam = Settings().whisper_beam_size
        same = _fw_name(False, beam)  # faster-whisper decoding as lalm does: the speed baseline
        systems = [*lalm, ("faster-whisper", partial(faster_whisper, clips, False)),
                   ("faster-whisper + VAD", partial(faster_whisper, clips, True)),
                   # faster-whisper's own default decoding, and the one lalm is set to if that is another
                   *[(_fw_name(False, b), partial(faster_whisper, clips, False, b)) for b in sorted({5, beam} - {1})],
                   ("vLLM", partial(vllm_http, clips, work) if args.vllm else
                    partial(Run, "vLLM", skipped="--no-vllm / --quick"))]
        kept = {}
        if args.resume and (work / "runs.json").is_file():
            kept = {r["name"]: Run(**r) for r in json.loads((work / "runs.json").read_text()) if not r["skipped"]}
            print(f"kept from {work / 'runs.json'}: {', '.join(kept) or 'nothing'}")
        runs: list[Run] = []
        for name, system in systems:
            if name in args.skip.split(","):
                system = partial(Run, name, skipped="--skip")
            runs.append(kept.get(name) or system())
            print(f"{name}: {runs[-1].skipped or 'done'}", flush=True)
            # every system's texts and times, kept as they come: --resume runs only the systems missing
            (work / "runs.json").write_text(json.dumps([dataclasses.asdict(r) for r in runs]))
        figures = report(runs, clips, baseline="faster-whisper")
        figures["speed_vs_same_decoding"] = speed(runs, clips, same)
        if args.show:
            show(runs, clips)
        if args.json:
            args.json.write_text(json.dumps({"figures": figures, "clips": [
                {"id": c.id, "set": c.set, "seconds": c.seconds, "reference": c.reference,
                 "texts": {r.name: r.texts.get(c.id) for r in runs if r.skipped is None}} for c in clips]}, indent=1))


if __name__ == "__main__":
    main()
