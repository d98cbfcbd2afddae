"""CLI commands for data, training and ASR evaluation: `lalm data synth`,
`lalm train sft|dpo|pairs|merge`, `lalm eval-asr`. Heavy imports stay inside the commands
so `lalm --help` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Training and evaluation data (JSONL manifests).", no_args_is_help=True)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Folder for manifest.jsonl and audio/.")],
    n: Annotated[int, typer.Option(help="Number of clips.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same manifest and audio.")] = 0,
    texts: Annotated[str, typer.Option(help="fortunes (sentences from Debian's fortunes) or digits "
                                            "(spoken digit strings, a narrow vocabulary).")] = "fortunes",
    non_speech: Annotated[float, typer.Option(help="Share of non-speech clips (silence, noise, music, sounds).")] = 0.2,
    festival: Annotated[float, typer.Option(help="Share of speech clips spoken by festival voices "
                                                 "(the rest: espeak-ng voices and variants).")] = 0.1,
    effects: Annotated[float, typer.Option(help="Share of speech clips with a sox speed/pitch/tempo change.")] = 0.3,
    noise: Annotated[float, typer.Option(help="Share of speech clips with background noise (5-30 dB SNR).")] = 0.3,
    tail: Annotated[float, typer.Option(help="Share of speech clips followed by 1-3 s of non-speech.")] = 0.2,
    max_seconds: Annotated[float, typer.Option(help="Longest clip, in seconds.")] = 30.0,
    voices: Annotated[str, typer.Option(help="Comma-separated espeak-ng voices to use, e.g. en-us+m3,en-gb+f2 "
                                             "(default: every English voice with every variant).")] = "",
    audio_format: Annotated[str, typer.Option("--format", help="flac or wav.")] = "flac",
    workers: Annotated[int, typer.Option(help="Clips synthesised in parallel.")] = 2,
) -> None:
    """Synthesise a manifest of speech with known text plus non-speech clips whose reference is empty."""
    from lalm.train_dpo.data import SynthConfig, synth_manifest

    if texts not in ("fortunes", "digits"):
        raise typer.BadParameter("--texts must be fortunes or digits")
    if audio_format not in ("flac", "wav"):
        raise typer.BadParameter("--format must be flac or wav")
    cfg = SynthConfig(n=n, seed=seed, texts=texts, non_speech_share=non_speech, festival_share=festival,
                      effect_share=effects, noise_share=noise, tail_share=tail, max_seconds=max_seconds,
                      voices=tuple(v for v in voices.split(",") if v),
                      audio_format=audio_format, workers=workers)
    typer.echo(synth_manifest(out, cfg))


train_app = typer.Typer(help="LoRA SFT, preference pairs, DPO and merging.", no_args_is_help=True)
# sft and dpo hand every argument to TRL's parser (flags and --config YAML), --help included.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@train_app.command("sft", context_settings=_PASS_THROUGH, add_help_option=False)
def train_sft(ctx: typer.Context) -> None:
    """LoRA SFT on a manifest: --config FILE.yaml and/or flags (--model, --train_manifest, --output_dir, every
    SFTConfig field); `lalm train sft --help` lists them all."""
    from lalm.train_dpo.sft import main

    main(ctx.args)


@train_app.command("dpo", context_settings=_PASS_THROUGH, add_help_option=False)
def train_dpo(ctx: typer.Context) -> None:
    """DPO on a pairs file: --config FILE.yaml and/or flags (--model, --train_pairs, --output_dir, --loss_type,
    every DPOConfig field); `lalm train dpo --help` lists them all."""
    from lalm.train_dpo.dpo import main

    main(ctx.args)


@train_app.command("pairs")
def train_pairs(
    manifest: Annotated[Path, typer.Option(help="JSONL manifest (audio, reference).")],
    out: Annotated[Path, typer.Option(help="Pairs JSONL to write.")],
    model: Annotated[Path | None, typer.Option(help="Checkpoint folder whose own sampled answers become "
                                                    "rejects (omit for synthetic rejects only).")] = None,
    samples: Annotated[int, typer.Option(help="Answers sampled per clip.")] = 4,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    synthetic: Annotated[int, typer.Option(help="Synthetic rejects per clip (stock phrases, loops).")] = 2,
    max_per_clip: Annotated[int, typer.Option(help="Pairs kept per clip, on-policy rejects first.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per sampled answer.")] = 96,
    seed: Annotated[int, typer.Option(help="Seed for sampling and synthetic rejects.")] = 0,
    chosen: Annotated[str, typer.Option(help="Chosen side: 'reference', or 'edited' (the rejected answer less "
                                             "its inserted words; the reference where that edit fails).")]
        = "reference",
) -> None:
    """Preference pairs: rejected = answers with insertions; chosen = the reference (or the no-speech answer),
    or the rejected answer less its insertions (--chosen edited)."""
    from lalm.train_dpo.pairs import PairsConfig, make_pairs

    try:
        cfg = PairsConfig(samples=samples, temperature=temperature, synthetic=synthetic,
                          max_per_clip=max_per_clip, max_tokens=max_tokens, seed=seed, chosen=chosen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--chosen") from None
    path, counts = make_pairs(manifest, out, model=model, cfg=cfg)
    typer.echo(f"{path}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


@train_app.command("merge")
def train_merge(
    adapter: Annotated[Path, typer.Option(help="peft adapter folder (from lalm train sft/dpo).")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write.")],
    base: Annotated[Path | None, typer.Option(help="Base checkpoint (default: the one the adapter names).")] = None,
) -> None:
    """Merge a LoRA adapter (and a trained projector) into a Qwen2-Audio checkpoint folder vLLM serves."""
    from lalm.train_dpo.merge import merge_adapter

    typer.echo(merge_adapter(adapter, out, base))


def eval_asr(
    model: Annotated[str, typer.Option(help="Checkpoint folder (transformers engine) or OpenAI-compatible "
                                            "endpoint URL, e.g. http://127.0.0.1:8000/v1.")],
    manifest: Annotated[Path, typer.Option(help="JSONL manifest (audio, reference).")],
    out: Annotated[Path, typer.Option(help="JSON report to write (summary and per-clip scores).")] = Path(
        "eval-asr.json"),
    prompt: Annotated[str | None, typer.Option(help="Instruction for rows without one "
                                                    "(default: the transcribe task's).")] = None,
    served_model: Annotated[str | None, typer.Option(help="Model name at the endpoint "
                                                          "(default: the first it lists).")] = None,
    api_key: Annotated[str | None, typer.Option(help="Bearer key for the endpoint.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 128,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
) -> None:
    """Greedy transcripts of every clip, scored: WER with S/D/I, insertion rate, non-speech output rate."""
    from lalm.train_dpo.eval_asr import evaluate_manifest

    report = evaluate_manifest(model, manifest, prompt=prompt, max_tokens=max_tokens, concurrency=concurrency,
                               served_model=served_model, api_key=api_key)
    typer.echo(report.table(Path(model).name if not model.startswith("http") else model))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(train_app, name="train")
    app.command("eval-asr")(eval_asr)
