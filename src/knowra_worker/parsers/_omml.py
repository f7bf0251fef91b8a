"""Office Math (OMML, the `m:` vocabulary of Word equations) to LaTeX and to plain text.

Word stores an equation as a tree: `m:oMath` holds runs (`m:r`, whose `m:t` is the
characters) and structures (fractions `m:f`, scripts `m:sSup`/`m:sSub`/`m:sSubSup`/`m:sPre`,
radicals `m:rad`, n-ary operators `m:nary`, delimiters `m:d`, functions `m:func`, matrices
`m:m`, equation arrays `m:eqArr`, accents, bars, group characters, limits...). Each
structure's arguments are child elements (`m:num`, `m:den`, `m:e`, `m:sup`, ...).

`convert(element)` walks that tree once and answers both forms of the equation:
- LaTeX, for Markdown (`\\frac{a}{b}`, `r^{2}`, `\\sqrt{x}`, `\\sum_{n=1}^{\\infty}`,
  `\\left( ... \\right)`, `\\begin{matrix} ... \\end{matrix}`); Unicode math symbols become
  their LaTeX commands, and a structure used as a script's base is braced;
- plain text, for search and for readers without a renderer: the same pieces in reading
  order, kept apart by spaces and `^`, `_`, `/` (`E=m c^2`, `(a) / (b)`), so that no two
  symbols of the equation come out glued into one word.

An element of an unknown kind is read through: its runs still give their characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MATH_NS = "http://schemas.openxmlformats.org/officeDocument/2006/math"
_M = f"{{{MATH_NS}}}"
_MAX_DEPTH = 60

# Unicode symbols Word writes in math runs, and their LaTeX commands.
_SYMBOLS = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\epsilon",
    "ϵ": r"\epsilon", "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ϑ": r"\vartheta",
    "ι": r"\iota", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi",
    "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "υ": r"\upsilon", "φ": r"\phi",
    "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega", "Γ": r"\Gamma", "Δ": r"\Delta",
    "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi", "Σ": r"\Sigma", "Φ": r"\Phi",
    "Ψ": r"\Psi", "Ω": r"\Omega", "∞": r"\infty", "≤": r"\leq", "≥": r"\geq", "≠": r"\neq",
    "≈": r"\approx", "≡": r"\equiv", "∼": r"\sim", "∝": r"\propto", "×": r"\times",
    "÷": r"\div", "⋅": r"\cdot", "·": r"\cdot", "±": r"\pm", "∓": r"\mp", "→": r"\rightarrow",
    "←": r"\leftarrow", "↔": r"\leftrightarrow", "⇒": r"\Rightarrow", "⇔": r"\Leftrightarrow",
    "∈": r"\in", "∉": r"\notin", "⊂": r"\subset", "⊆": r"\subseteq", "∪": r"\cup",
    "∩": r"\cap", "∅": r"\emptyset", "∀": r"\forall", "∃": r"\exists", "∂": r"\partial",
    "∇": r"\nabla", "∑": r"\sum", "∏": r"\prod", "∫": r"\int", "√": r"\surd",
    "…": r"\ldots", "⋯": r"\cdots", "°": r"^{\circ}", "′": r"'", "ℏ": r"\hbar", "ℓ": r"\ell",
    "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee", "⊕": r"\oplus", "⊗": r"\otimes",
    "⟨": r"\langle", "⟩": r"\rangle", "‖": r"\|",
}  # fmt: skip
# Minus signs and dashes in math are the minus operator; the caret stays an operator too.
_PLAIN = {"−": "-", "–": "-", "—": "-", "\u00a0": " "}
_ESCAPED = {"{": r"\{", "}": r"\}", "%": r"\%", "#": r"\#", "&": r"\&", "$": r"\$", "\\": r"\\"}
_NARY = {
    "∑": r"\sum", "∏": r"\prod", "∐": r"\coprod", "∫": r"\int", "∬": r"\iint",
    "∭": r"\iiint", "∮": r"\oint", "⋃": r"\bigcup", "⋂": r"\bigcap", "⋁": r"\bigvee",
    "⋀": r"\bigwedge",
}  # fmt: skip
_ACCENTS = {
    "\u0302": r"\hat", "\u0303": r"\tilde", "\u0307": r"\dot", "\u0308": r"\ddot",
    "\u20d7": r"\vec", "\u0305": r"\overline", "\u0304": r"\bar", "\u030c": r"\check",
    "\u0306": r"\breve", "\u0301": r"\acute", "\u0300": r"\grave",
}  # fmt: skip
_FUNCTIONS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "coth", "arcsin",
    "arccos", "arctan", "log", "ln", "lg", "exp", "lim", "max", "min", "sup", "inf", "det",
    "gcd", "deg", "dim", "arg", "ker", "Pr", "liminf", "limsup",
}  # fmt: skip
_DELIMITERS = {"{": r"\{", "}": r"\}", "": ".", "〈": r"\langle", "〉": r"\rangle",
               "⟨": r"\langle", "⟩": r"\rangle", "‖": r"\|", "⌊": r"\lfloor", "⌋": r"\rfloor",
               "⌈": r"\lceil", "⌉": r"\rceil"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Math:
    """An equation (or a piece of one) in its two forms."""

    latex: str
    text: str
    compound: bool = False  # a structure that must be braced as a script's base
    run: bool = False  # characters of runs only: glued to a neighbouring run in plain text


def convert(element: Any) -> Math:
    """Both forms of an `m:oMath`, `m:oMathPara` or any piece of one, spaces normalised."""
    piece = _node(element, 0)
    return Math(" ".join(piece.latex.split()), " ".join(piece.text.split()))


def local_name(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def is_math(element: Any) -> bool:
    tag = element.tag
    return isinstance(tag, str) and tag.startswith(_M)


def _node(element: Any, depth: int) -> Math:
    if depth > _MAX_DEPTH:
        return Math("", "")
    handler = _HANDLERS.get(local_name(element)) if is_math(element) else None
    if handler is not None:
        return handler(element, depth + 1)
    return _children(element, depth + 1)


def _children(element: Any, depth: int) -> Math:
    """The pieces of an argument or container in order (properties skipped)."""
    pieces = [_node(c, depth) for c in element if not local_name(c).endswith("Pr")]
    pieces = [piece for piece in pieces if piece.latex or piece.text]
    if len(pieces) == 1:
        return pieces[0]
    text = ""
    for before, piece in zip([None, *pieces], pieces, strict=False):
        glue = before is None or (before.run and piece.run)
        text += piece.text if glue else " " + piece.text
    run = all(piece.run for piece in pieces)
    return Math(_join_latex([p.latex for p in pieces]), text, run=run)


def _join_latex(parts: list[str]) -> str:
    """Pieces of LaTeX side by side; a space after a command so it does not swallow a letter."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and out[-1].isalpha() and _ends_with_command(out) and part[0].isalpha():
            out += " "
        out += part
    return out


def _ends_with_command(latex: str) -> bool:
    stripped = latex.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return stripped.endswith("\\") and not stripped.endswith("\\\\")


def _arg(element: Any, name: str, depth: int) -> Math:
    child = element.find(_M + name)
    return _children(child, depth) if child is not None else Math("", "")


def _prop(element: Any, prop: str, name: str) -> str | None:
    """The m:val of `<prop><name m:val=...>`, None when absent."""
    props = element.find(_M + prop)
    node = props.find(_M + name) if props is not None else None
    return node.get(_M + "val") if node is not None else None


def _on(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "on", "true", ""}


# --- runs ------------------------------------------------------------------------------


def _run(element: Any, depth: int) -> Math:
    chars = "".join(t.text or "" for t in element.iter(_M + "t"))
    if not chars:
        chars = "".join(t.text or "" for t in element.iter() if local_name(t) == "t")
    normal = element.find(f"{_M}rPr/{_M}nor") is not None
    text = "".join(_PLAIN.get(c, c) for c in chars)
    if normal and text.strip():
        return Math(r"\text{" + _escape_text(text) + "}", text, run=True)
    return Math(_latex_chars(text), text, run=True)


def _latex_chars(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char in _SYMBOLS:
            out.append(_SYMBOLS[char] + " ")
        else:
            out.append(_ESCAPED.get(char, char))
    return "".join(out).rstrip(" ") if text and not text.endswith(" ") else "".join(out)


def _escape_text(text: str) -> str:
    return "".join(_ESCAPED.get(c, c) for c in text)


# --- structures ------------------------------------------------------------------------


def _fraction(element: Any, depth: int) -> Math:
    num, den = _arg(element, "num", depth), _arg(element, "den", depth)
    kind = _prop(element, "fPr", "type")
    if kind == "lin":
        latex = f"{num.latex}/{den.latex}"
    elif kind == "noBar":
        latex = rf"\genfrac{{}}{{}}{{0pt}}{{}}{{{num.latex}}}{{{den.latex}}}"
    else:
        latex = rf"\frac{{{num.latex}}}{{{den.latex}}}"
    return Math(latex, f"{_grouped(num.text)} / {_grouped(den.text)}", compound=True)


def _grouped(text: str) -> str:
    """A piece of plain text, parenthesised when it holds more than one token."""
    if text.startswith("(") and text.endswith(")") or len(text) <= 1 or text.isalnum():
        return text
    return f"({text})"


def _text_base(piece: Math) -> str:
    return f"({piece.text})" if piece.compound else piece.text


def _script(latex: str) -> str:
    return f"{{{latex}}}"


def _base(piece: Math) -> str:
    return f"{{{piece.latex}}}" if piece.compound else piece.latex


def _superscript(element: Any, depth: int) -> Math:
    base, sup = _arg(element, "e", depth), _arg(element, "sup", depth)
    return Math(
        f"{_base(base)}^{_script(sup.latex)}",
        f"{_text_base(base)}^{_grouped(sup.text)}",
        compound=True,
    )


def _subscript(element: Any, depth: int) -> Math:
    base, sub = _arg(element, "e", depth), _arg(element, "sub", depth)
    return Math(
        f"{_base(base)}_{_script(sub.latex)}",
        f"{_text_base(base)}_{_grouped(sub.text)}",
        compound=True,
    )


def _sub_superscript(element: Any, depth: int) -> Math:
    base = _arg(element, "e", depth)
    sub, sup = _arg(element, "sub", depth), _arg(element, "sup", depth)
    latex = f"{_base(base)}_{_script(sub.latex)}^{_script(sup.latex)}"
    return Math(
        latex, f"{_text_base(base)}_{_grouped(sub.text)}^{_grouped(sup.text)}", compound=True
    )


def _pre_script(element: Any, depth: int) -> Math:
    base = _arg(element, "e", depth)
    sub, sup = _arg(element, "sub", depth), _arg(element, "sup", depth)
    latex = f"{{}}_{_script(sub.latex)}^{_script(sup.latex)}{base.latex}"
    return Math(latex, f"_{_grouped(sub.text)}^{_grouped(sup.text)} {base.text}", compound=True)


def _radical(element: Any, depth: int) -> Math:
    base, degree = _arg(element, "e", depth), _arg(element, "deg", depth)
    hidden = _on(_prop(element, "radPr", "degHide"))
    if degree.latex and not hidden:
        return Math(
            rf"\sqrt[{degree.latex}]{{{base.latex}}}", f"root {degree.text} of ({base.text})"
        )
    return Math(rf"\sqrt{{{base.latex}}}", f"√({base.text})")


def _nary(element: Any, depth: int) -> Math:
    char = _prop(element, "naryPr", "chr") or "∫"
    base = _arg(element, "e", depth)
    sub, sup = _arg(element, "sub", depth), _arg(element, "sup", depth)
    latex, text = _NARY.get(char, _latex_chars(char)), char
    if sub.latex and not _on(_prop(element, "naryPr", "subHide")):
        latex += f"_{_script(sub.latex)}"
        text += f"_{_grouped(sub.text)}"
    if sup.latex and not _on(_prop(element, "naryPr", "supHide")):
        latex += f"^{_script(sup.latex)}"
        text += f"^{_grouped(sup.text)}"
    return Math(_join_latex([latex, " ", base.latex]), f"{text} {base.text}")


def _delimiter(element: Any, depth: int) -> Math:
    begin = _prop(element, "dPr", "begChr")
    end = _prop(element, "dPr", "endChr")
    separator = _prop(element, "dPr", "sepChr")
    begin = "(" if begin is None else begin
    end = ")" if end is None else end
    separator = "|" if separator is None else separator
    items = [_children(e, depth) for e in element.findall(_M + "e")]
    sep_latex = _DELIMITERS.get(separator, separator)
    inner = f" {sep_latex} ".join(item.latex for item in items)
    latex = rf"\left{_DELIMITERS.get(begin, begin)}{inner}\right{_DELIMITERS.get(end, end)}"
    text = f"{begin}{f' {separator} '.join(item.text for item in items)}{end}"
    return Math(latex, text)


def _function(element: Any, depth: int) -> Math:
    name, base = _arg(element, "fName", depth), _arg(element, "e", depth)
    plain = name.latex.strip()
    latex_name = f"\\{plain}" if plain in _FUNCTIONS else name.latex
    return Math(_join_latex([latex_name, base.latex]), f"{name.text} {base.text}")


def _lower_limit(element: Any, depth: int) -> Math:
    base, limit = _arg(element, "e", depth), _arg(element, "lim", depth)
    plain = base.latex.strip()
    head = f"\\{plain}" if plain in _FUNCTIONS else _base(base)
    return Math(f"{head}_{_script(limit.latex)}", f"{base.text}_{_grouped(limit.text)}", True)


def _upper_limit(element: Any, depth: int) -> Math:
    base, limit = _arg(element, "e", depth), _arg(element, "lim", depth)
    latex = rf"\overset{{{limit.latex}}}{{{base.latex}}}"
    return Math(latex, f"{base.text}^{_grouped(limit.text)}", compound=True)


def _accent(element: Any, depth: int) -> Math:
    base = _arg(element, "e", depth)
    command = _ACCENTS.get(_prop(element, "accPr", "chr") or "\u0302", r"\hat")
    return Math(f"{command}{{{base.latex}}}", base.text)


def _bar(element: Any, depth: int) -> Math:
    base = _arg(element, "e", depth)
    command = r"\underline" if _prop(element, "barPr", "pos") == "bot" else r"\overline"
    return Math(f"{command}{{{base.latex}}}", base.text)


def _group_char(element: Any, depth: int) -> Math:
    base = _arg(element, "e", depth)
    char = _prop(element, "groupChrPr", "chr") or "⏟"
    top = _prop(element, "groupChrPr", "pos") == "top"
    if char == "⏟":
        return Math(rf"\underbrace{{{base.latex}}}", base.text)
    if char == "⏞":
        return Math(rf"\overbrace{{{base.latex}}}", base.text)
    command = r"\overset" if top else r"\underset"
    return Math(f"{command}{{{_latex_chars(char)}}}{{{base.latex}}}", f"{base.text} {char}")


def _matrix(element: Any, depth: int) -> Math:
    rows = [
        [_children(e, depth) for e in row.findall(_M + "e")] for row in element.findall(_M + "mr")
    ]
    latex = r" \\ ".join(" & ".join(cell.latex for cell in row) for row in rows)
    text = "; ".join(" ".join(cell.text for cell in row) for row in rows)
    return Math(rf"\begin{{matrix}}{latex}\end{{matrix}}", f"[{text}]")


def _equation_array(element: Any, depth: int) -> Math:
    lines = [_children(e, depth) for e in element.findall(_M + "e")]
    if len(lines) == 1:
        return lines[0]
    latex = r" \\ ".join(line.latex for line in lines)
    return Math(rf"\begin{{array}}{{l}}{latex}\end{{array}}", "; ".join(li.text for li in lines))


def _phantom(element: Any, depth: int) -> Math:
    if _prop(element, "phantPr", "show") in {"0", "off", "false"}:
        return Math("", "")
    return _arg(element, "e", depth)


def _paragraph(element: Any, depth: int) -> Math:
    """An m:oMathPara: its equations one after another."""
    pieces = [_node(child, depth) for child in element if local_name(child) == "oMath"]
    return Math(r" \\ ".join(p.latex for p in pieces), " ".join(p.text for p in pieces))


_HANDLERS = {
    "r": _run,
    "f": _fraction,
    "sSup": _superscript,
    "sSub": _subscript,
    "sSubSup": _sub_superscript,
    "sPre": _pre_script,
    "rad": _radical,
    "nary": _nary,
    "d": _delimiter,
    "func": _function,
    "limLow": _lower_limit,
    "limUpp": _upper_limit,
    "acc": _accent,
    "bar": _bar,
    "groupChr": _group_char,
    "m": _matrix,
    "eqArr": _equation_array,
    "phant": _phantom,
    "oMathPara": _paragraph,
}
