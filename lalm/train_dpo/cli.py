"""CLI commands for data, training and ASR evaluation: `lalm data synth`, `lalm train sft|dpo|pairs|merge`,
`lalm eval-asr`. Heavy imports stay inside the commands so `lalm --help` is instant."""

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
                      audio_format=audio_format, workers=workers)
    typer.echo(synth_manifest(out, cfg))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
