"""Office Math to LaTeX and to plain text, structure by structure."""

from __future__ import annotations

import pytest
from lxml import etree

from knowra_worker.parsers._omml import MATH_NS, convert


def _math(body: str) -> etree._Element:
    return etree.fromstring(f'<m:oMath xmlns:m="{MATH_NS}">{body}</m:oMath>')


def _r(text: str) -> str:
    return f"<m:r><m:t>{text}</m:t></m:r>"


@pytest.mark.parametrize(
    ("body", "latex", "text"),
    [
        (_r("E=m") + f"<m:sSup><m:e>{_r('c')}</m:e><m:sup>{_r('2')}</m:sup></m:sSup>",
         "E=mc^{2}", "E=m c^2"),
        (f"<m:f><m:num>{_r('a')}</m:num><m:den>{_r('b+1')}</m:den></m:f>",
         r"\frac{a}{b+1}", "a / (b+1)"),
        (f"<m:sSub><m:e>{_r('a')}</m:e><m:sub>{_r('n')}</m:sub></m:sSub>", "a_{n}", "a_n"),
        (f"<m:rad><m:radPr><m:degHide m:val='1'/></m:radPr><m:deg/><m:e>{_r('x')}</m:e></m:rad>",
         r"\sqrt{x}", "√(x)"),
        (f"<m:rad><m:deg>{_r('3')}</m:deg><m:e>{_r('x')}</m:e></m:rad>",
         r"\sqrt[3]{x}", "root 3 of (x)"),
        ("<m:nary><m:naryPr><m:chr m:val='∑'/></m:naryPr>"
         f"<m:sub>{_r('n=1')}</m:sub><m:sup>{_r('∞')}</m:sup><m:e>{_r('x')}</m:e></m:nary>",
         r"\sum_{n=1}^{\infty} x", "∑_(n=1)^∞ x"),
        (f"<m:d><m:e>{_r('x+a')}</m:e></m:d>", r"\left(x+a\right)", "(x+a)"),
        ("<m:d><m:dPr><m:begChr m:val='['/><m:endChr m:val='}'/></m:dPr>"
         f"<m:e>{_r('a')}</m:e><m:e>{_r('b')}</m:e></m:d>", r"\left[a | b\right\}", "[a | b}"),
        (f"<m:m><m:mr><m:e>{_r('1')}</m:e><m:e>{_r('0')}</m:e></m:mr>"
         f"<m:mr><m:e>{_r('0')}</m:e><m:e>{_r('1')}</m:e></m:mr></m:m>",
         r"\begin{matrix}1 & 0 \\ 0 & 1\end{matrix}", "[1 0; 0 1]"),
        (f"<m:func><m:fName>{_r('cos')}</m:fName><m:e>{_r('x')}</m:e></m:func>",
         r"\cos x", "cos x"),
        # The Greek letter becomes a command, kept apart from the letter after it.
        (_r("A=π") + f"<m:sSup><m:e>{_r('r')}</m:e><m:sup>{_r('2')}</m:sup></m:sSup>",
         r"A=\pi r^{2}", "A=π r^2"),
        # An en dash is a minus sign, a caret stays an operator.
        (_r("x – y^2"), "x - y^2", "x - y^2"),
    ],
)  # fmt: skip
def test_structures(body: str, latex: str, text: str) -> None:
    result = convert(_math(body))
    assert (result.latex, result.text) == (latex, text)


def test_fraction_as_a_base_is_braced() -> None:
    fraction = f"<m:f><m:num>{_r('(x-c)')}</m:num><m:den>{_r('v')}</m:den></m:f>"
    body = f"<m:sSup><m:e>{fraction}</m:e><m:sup>{_r('2')}</m:sup></m:sSup>"
    result = convert(_math(body))
    assert result.latex == r"{\frac{(x-c)}{v}}^{2}"
    assert result.text == "((x-c) / v)^2"


def test_unknown_elements_are_read_through_and_runs_are_not_split() -> None:
    body = f"<m:future><m:e>{_r('gro')}{_r('up')}</m:e></m:future>"
    assert convert(_math(body)).text == "group"
