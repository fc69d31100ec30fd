"""Stage names are text in every diagram format, whatever characters they hold."""

from __future__ import annotations

import minigun_nb as mg


def _pipe() -> mg.Pipeline:
    pipe = mg.Pipeline('etl "nightly"')
    pipe.add(mg.processor(lambda x: x, name="<img src=x onerror=alert(1)>"))
    pipe.add(mg.processor(lambda x: x, name='say "hi" \\ & <b>', workers=2))
    return pipe


def test_mermaid_labels_code_markup_and_quotes():
    text = _pipe().to_mermaid()
    assert "<img" not in text and "<b>" not in text
    assert "#lt;img src=x onerror=alert(1)#gt;" in text
    assert 'say #quot;hi#quot; \\ #amp; #lt;b#gt;' in text
    assert text.count("<br/><small>") == 1  # only the markup mermaid itself is given


def test_dot_strings_escape_backslashes_and_quotes():
    text = _pipe().to_dot()
    assert 'digraph "etl \\"nightly\\"" {' in text
    assert 'label="say \\"hi\\" \\\\ & <b>\\nthread×2"' in text
