"""On-screen text of videos (slides, burned-in subtitles, name captions) as time-aligned context for the
audio windows: `read_screen_text` finds the lines and when each was shown, `window_context` gives each
window the lines visible around it. Opt-in (it costs CPU): `lalm_screen_text` per request, or the settings'
`screen_text` default."""

from lalm.screen_text.context import (
    estimate_tokens,
    lines_within,
    says_screen_words,
    screen_changes,
    screen_spellings,
    spellings,
    visible_lines,
    window_context,
)
from lalm.screen_text.scan import ScreenLine, ScreenText, read_screen_text

__all__ = ["ScreenLine", "ScreenText", "estimate_tokens", "lines_within", "read_screen_text", "says_screen_words",
           "screen_changes", "screen_spellings", "spellings", "visible_lines", "window_context"]
