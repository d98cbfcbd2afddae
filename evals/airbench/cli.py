"""`python -m evals.airbench`: run, score, judge, report, make-fixture.

    python -m evals.airbench make-fixture data/airbench-fixture
    python -m evals.airbench run --root data/AIR-Bench --split foundation --base-url http://127.0.0.1:8000 \\
        --model qwen2-audio --out runs/foundation.jsonl
    python -m evals.airbench score runs/foundation.jsonl --out runs/foundation_scores.json
    python -m evals.airbench run --root data/AIR-Bench --split chat --base-url http://127.0.0.1:8000 \\
        --model qwen2-audio --out runs/chat.jsonl
    AIRBENCH_JUDGE_API_KEY=... python -m evals.airbench judge runs/chat.jsonl \\
        --judge-base-url https://api.openai.com/v1 --judge-model gpt-4-0125-preview --out runs/chat_scores.json
    python -m evals.airbench report --foundation runs/foundation_scores.json --chat runs/chat_scores.json \\
        --out runs/report
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Literal

import typer

app = typer.Typer(
    name="airbench",
    help="AIR-Bench (foundation and chat) against any OpenAI-compatible endpoint, scored like the reference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Split = Literal["foundation", "chat"]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


@app.command()
def run(
    root: Annotated[Path, typer.Option(help="AIR-Bench folder (holding Foundation/ and Chat/) or a split folder.")],
    split: Annotated[Split, typer.Option(help="foundation (multiple choice) or chat (open-ended).")],
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")],
    model: Annotated[str, typer.Option(help="Model name sent in each request.")],
    out: Annotated[Path, typer.Option(help="Result JSONL; an existing file is resumed.")],
    api_key: Annotated[
        str | None, typer.Option(envvar="AIRBENCH_API_KEY", help="Bearer key, if the endpoint needs one.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    limit: Annotated[int | None, typer.Option(min=0, help="Only the first N selected items.")] = None,
    tasks: Annotated[
        list[str] | None, typer.Option(help="Only these task_name or task_name_dataset_name values (repeatable).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer (Qwen2-Audio's own run: 256).")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")] = 0.0,
    timeout: Annotated[float, typer.Option(help="Seconds before one request times out (then it is retried).")] = 600.0,
    attempts: Annotated[
        int, typer.Option(min=1, help="Tries per request on 5xx, 408/429, timeouts, connection errors.")
    ] = 4,
    backoff: Annotated[float, typer.Option(help="Seconds before the first retry; doubles each time.")] = 1.0,
    retry_errors: Annotated[bool, typer.Option(help="Run again the items recorded with an error.")] = False,
) -> None:
    """Answer every item of a split and append one JSON line per item to OUT (resumable: rerun to continue)."""
    from evals.airbench.client import Retry
    from evals.airbench.run import RunConfig
    from evals.airbench.run import run as run_split

    config = RunConfig(root=root, split=split, base_url=base_url, model=model, out=out, api_key=api_key,
                       concurrency=concurrency, limit=limit, tasks=tuple(tasks or ()), max_tokens=max_tokens,
                       temperature=temperature, timeout=timeout, retry=Retry(attempts=attempts, base=backoff),
                       retry_errors=retry_errors)
    try:
        summary = asyncio.run(run_split(config))
    except KeyboardInterrupt:
        typer.echo(f"interrupted; every finished item is saved in {out}: run the same command to continue", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"{summary.selected} selected, {summary.already_done} already done, {summary.answered} answered, "
               f"{summary.failed} failed, {summary.missing_audio} missing audio -> {out}")
    if summary.failed:
        typer.echo("failed items are recorded with an `error`; rerun with --retry-errors to try them again", err=True)


@app.command()
def score(
    results: Annotated[Path, typer.Argument(help="Foundation result JSONL (ours or the reference's format).")],
    out: Annotated[Path | None, typer.Option(help="Write the scores as JSON here (for `report`).")] = None,
    align_base_url: Annotated[
        str | None, typer.Option(help="Map answers to letters with this LLM endpoint first.")
    ] = None,
    align_model: Annotated[
        str | None, typer.Option(help="Model for the mapping (the reference used gpt-3.5-turbo).")
    ] = None,
    align_api_key: Annotated[
        str | None, typer.Option(envvar=["AIRBENCH_ALIGN_API_KEY", "OPENAI_API_KEY"], help="Mapping key.")
    ] = None,
    align_scope: Annotated[
        Literal["all", "unparsable"], typer.Option(help="all (the reference) or only answers with no letter.")
    ] = "all",
    align_temperature: Annotated[float, typer.Option(help="Temperature of the mapping requests.")] = 1.0,
    align_concurrency: Annotated[int, typer.Option(min=1)] = 8,
    align_cache: Annotated[Path | None, typer.Option(help="Reply cache (default: RESULTS.align-cache.jsonl).")] = None,
) -> None:
    """Score Foundation results: the reference's letter parsing, accuracy per task, plain and weighted means."""
    from evals.airbench.score import score_foundation
    from evals.airbench.store import read_results

    records = read_results(results)
    if align_base_url:
        if not align_model:
            raise typer.BadParameter("--align-model is required with --align-base-url")
        from evals.airbench.align import AlignConfig, align
        from evals.airbench.store import JsonlWriter

        config = AlignConfig(base_url=align_base_url, model=align_model, api_key=align_api_key, scope=align_scope,
                             temperature=align_temperature, concurrency=align_concurrency,
                             cache=align_cache or results.with_name(results.name + ".align-cache.jsonl"))
        records = asyncio.run(align(records, config))
        aligned = results.with_name(results.stem + ".aligned.jsonl")
        aligned.unlink(missing_ok=True)
        with JsonlWriter(aligned) as writer:
            for record in records:
                writer.write(record)
        typer.echo(f"aligned answers -> {aligned}")
    scores = score_foundation(records)
    for tid, s in scores.by_task_id.items():
        typer.echo(f"{tid}: Sum={s.total}, correct={s.correct}, acc={_pct(s.accuracy)}, no letter={s.unparsable}")
    typer.echo(f"scored: {scores.total}  no letter (left out): {scores.unparsable} (failed requests: {scores.errors})")
    typer.echo(f"plain mean over {len(scores.by_task)} tasks: {_pct(scores.plain_mean)}  "
               f"question-weighted mean: {_pct(scores.weighted_mean)}")
    if out:
        _write_json(out, scores.to_json())


@app.command()
def judge(
    results: Annotated[Path, typer.Argument(help="Chat result JSONL (ours or the reference's format).")],
    judge_base_url: Annotated[str, typer.Option(help="OpenAI-compatible endpoint of the judge.")],
    judge_model: Annotated[str, typer.Option(help="Judge model (the leaderboard used gpt-4-0125-preview).")],
    out: Annotated[Path, typer.Option(help="Scores JSON (aggregates and every judgment).")],
    judge_api_key: Annotated[
        str | None, typer.Option(envvar=["AIRBENCH_JUDGE_API_KEY", "OPENAI_API_KEY"], help="Judge key.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Judge temperature (the reference's default: 1.0).")] = 1.0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Judge max_tokens (the reference: 1024).")] = 1024,
    attempts: Annotated[int, typer.Option(min=1, help="Judge calls per answer order until a reply parses.")] = 3,
    concurrency: Annotated[int, typer.Option(min=1)] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds before one judge request times out.")] = 600.0,
    cache: Annotated[Path | None, typer.Option(help="Reply cache (default: RESULTS.judge-cache.jsonl).")] = None,
    retry_failures: Annotated[bool, typer.Option(help="Ask again where cached replies never parsed.")] = False,
) -> None:
    """Judge Chat results in both answer orders and aggregate per task and category as the reference."""
    from evals.airbench.judge import JudgeConfig
    from evals.airbench.judge import judge as judge_all
    from evals.airbench.store import read_results

    config = JudgeConfig(base_url=judge_base_url, model=judge_model, api_key=judge_api_key, temperature=temperature,
                         max_tokens=max_tokens, attempts=attempts, concurrency=concurrency, timeout=timeout,
                         cache=cache or results.with_name(results.name + ".judge-cache.jsonl"),
                         retry_failures=retry_failures)
    summary = asyncio.run(judge_all(read_results(results), config))
    _write_json(out, summary)
    cats = summary["categories"]
    typer.echo("  ".join(f"{c}={'n/a' if v is None else f'{v:.2f}'}" for c, v in cats.items()))
    typer.echo(f"judged {summary['judged']}, unparsable {summary['failed']}, requests {summary['requests']}, "
               f"cache hits {summary['cache_hits']}, endpoint errors {summary['http_errors']} -> {out}")


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="Folder for report.md and the PNG charts.")],
    foundation: Annotated[Path | None, typer.Option(help="Scores JSON from `score --out`.")] = None,
    chat: Annotated[Path | None, typer.Option(help="Scores JSON from `judge --out`.")] = None,
    label: Annotated[str, typer.Option(help="Name of the evaluated model in tables and charts.")] = "this model",
) -> None:
    """A Markdown table and charts per task and category, beside the published leaderboard numbers."""
    from evals.airbench.report import write_report

    if foundation is None and chat is None:
        raise typer.BadParameter("give --foundation and/or --chat")
    load = lambda p: json.loads(p.read_text()) if p else None  # noqa: E731
    for path in write_report(out, foundation=load(foundation), chat=load(chat), label=label):
        typer.echo(path)


@app.command("make-fixture")
def make_fixture(
    out: Annotated[Path, typer.Argument(help="Folder to write the dataset to.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    per_task: Annotated[int, typer.Option(min=1, help="Items per task.")] = 2,
) -> None:
    """A small dataset in AIR-Bench's layout from local audio (espeak-ng speech, Sonic Pi samples)."""
    from evals.airbench.fixture import make_fixture as build

    typer.echo(build(out, seed=seed, per_task=per_task))
