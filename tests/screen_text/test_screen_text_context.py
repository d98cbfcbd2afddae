"""Each window's context: the user's prompt, then the on-screen lines around the window within the token
budget (lalm.screen_text.context), worded by lalm/prompts/screen_text.txt."""

from __future__ import annotations

from lalm.screen_text import ScreenLine, estimate_tokens, lines_within, screen_changes, window_context
from lalm.tasks import PROMPTS_DIR

LINES = [
    ScreenLine("Zorblax Quintavell", 0.0, 10.0, 0.99),
    ScreenLine("Fjordheim glacier ablation", 0.0, 10.0, 0.99),
    ScreenLine("Nakamura-Holt reagent", 9.0, 11.5, 0.95),  # straddles the edge of the next window
    ScreenLine("Przemysl Kelvinator", 12.0, 20.0, 0.98),
    ScreenLine("Zorblax Quintavell", 14.0, 15.0, 0.99),  # shown a second time
]


def test_the_rule_from_the_prompt_file_carries_the_lines_quoted() -> None:
    context = window_context(LINES, 2.0, 6.0, margin=1.0)
    rule = (PROMPTS_DIR / "screen_text.txt").read_text().split("{lines}")[0].strip()
    assert context.startswith(rule) and "not speech" in rule
    assert context.endswith('"Zorblax Quintavell" / "Fjordheim glacier ablation"')


def test_only_lines_shown_in_or_near_the_window() -> None:
    context = window_context(LINES, 12.3, 18.0, margin=1.0)
    assert '"Przemysl Kelvinator"' in context and '"Nakamura-Holt reagent"' in context  # 11.5 s is within 1 s of 12.3 s
    assert "Fjordheim" not in context
    assert context.count("Zorblax") == 1  # shown at 14-15 s; once, however often shown
    assert "Nakamura" not in window_context(LINES, 13.0, 18.0, margin=1.0)


def test_a_piece_cut_out_of_the_recording_keeps_the_lines_shown_during_it_on_its_own_clock() -> None:
    piece = lines_within(LINES, 10.5, 16.0)
    assert [(x.text, x.start, x.end) for x in piece] == [("Nakamura-Holt reagent", -1.5, 1.0),
                                                          ("Przemysl Kelvinator", 1.5, 9.5),
                                                          ("Zorblax Quintavell", 3.5, 4.5)]
    assert lines_within(LINES, 30.0, 40.0) == []


def test_the_prompt_is_kept_first_and_the_lines_fit_the_budget() -> None:
    prompt = "Speakers: Maria Okafor."
    budget = estimate_tokens(prompt) + estimate_tokens("Przemysl Kelvinator") + 2
    context = window_context(LINES, 12.5, 18.0, prompt=prompt, margin=1.0, max_tokens=budget)
    # the line on screen for most of the window wins the room; the ones only near it or briefly in it do not
    assert context.startswith(prompt) and '"Przemysl Kelvinator"' in context
    assert "Nakamura" not in context and "Zorblax" not in context
    assert window_context(LINES, 12.5, 18.0, prompt=prompt, margin=1.0, max_tokens=0) == prompt
    assert window_context(LINES, 40.0, 50.0, margin=1.0) is None


def test_the_screen_changes_where_slides_change_not_where_subtitles_do() -> None:
    slides = [ScreenLine(text, 15.0 * k + lag, 15.0 * (k + 1), 0.99)
              for k in range(4) for text, lag in ((f"Part {k}", 0.0), (f"Speaker {k}", 0.5))]  # read a probe apart
    assert screen_changes(slides) == [15.25, 30.25, 45.25, 60.0]
    subtitles = [ScreenLine("Weekly review", 0.0, 60.0, 0.99)] + [
        ScreenLine(f"Line {k}", 2.5 * k, 2.5 * (k + 1), 0.99) for k in range(24)]
    assert screen_changes(subtitles) == []
    # a slide among subtitles: only where the screen was steady on both sides
    assert screen_changes([*subtitles[:5], ScreenLine("Title", 12.0, 40.0, 0.99)]) == [40.0, 60.0]
