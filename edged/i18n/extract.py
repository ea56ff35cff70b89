"""Every string a person can read, found in the sources: Python ``_()``/``N_()``/
``gettext()``/``pgettext()``/``NP_()`` calls, Jinja ``_()``/``{% trans %}`` in the page
templates and ``t("...")`` in the page scripts. ``scripts/i18n-update`` writes them to the
catalog template and merges each language's ``.po``; a test checks each has a translation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PY_MARKERS = {"_": 0, "N_": 0, "gettext": 0}
PY_CONTEXT_MARKERS = {"pgettext", "NP_"}
JS_CALL = re.compile(r"""\bt\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]""")


@dataclass(frozen=True, order=True)
class Message:
    """One catalog entry: its context (``""`` for none) and English text."""

    context: str
    text: str
    where: str = ""


def _package_root() -> Path:
    return Path(str(resources.files("edged")))


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _const(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def python_messages(path: Path, root: Path) -> Iterator[Message]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = _call_name(node)
        where = f"{path.relative_to(root)}:{node.lineno}"
        if name in PY_MARKERS:
            text = _const(node.args[0])
            if text:
                yield Message("", text, where)
        elif name in PY_CONTEXT_MARKERS and len(node.args) >= 2:
            context, text = _const(node.args[0]), _const(node.args[1])
            if context is not None and text:
                yield Message(context, text, where)
        elif name == "ngettext" and len(node.args) >= 2:
            for arg in node.args[:2]:
                text = _const(arg)
                if text:
                    yield Message("", text, where)


def template_messages(path: Path, root: Path) -> Iterator[Message]:
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    source = path.read_text(encoding="utf-8")
    for lineno, _func, message in env.extract_translations(source):  # type: ignore[attr-defined]
        where = f"{path.relative_to(root)}:{lineno}"
        texts = message if isinstance(message, tuple) else (message,)
        for text in texts:
            if isinstance(text, str) and text:
                yield Message("", text, where)


def script_messages(path: Path, root: Path) -> Iterator[Message]:
    source = path.read_text(encoding="utf-8")
    for match in JS_CALL.finditer(source):
        text = (
            match.group(1).encode().decode("unicode_escape")
            if "\\" in match.group(1)
            else (match.group(1))
        )
        lineno = source.count("\n", 0, match.start()) + 1
        yield Message("", text, f"{path.relative_to(root)}:{lineno}")


def all_messages(root: Path | None = None) -> list[Message]:
    """Every message in the package, each once (the first place it appears)."""
    root = root or _package_root()
    found: dict[tuple[str, str], Message] = {}
    sources: list[Iterator[Message]] = []
    for path in sorted(root.rglob("*.py")):
        if "simulator" in path.parts:  # the simulator plays Sinqro: its text is Sinqro's
            continue
        sources.append(python_messages(path, root.parent))
    for path in sorted((root / "web" / "templates").glob("*.html")):
        sources.append(template_messages(path, root.parent))
    for path in sorted((root / "web" / "static").glob("*.js")):
        sources.append(script_messages(path, root.parent))
    for source in sources:
        for message in source:
            found.setdefault((message.context, message.text), message)
    return sorted(found.values())


def _po_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def pot(messages: list[Message]) -> str:
    """The catalog template (``edged.pot``) for ``messages``."""
    out = [
        'msgid ""',
        'msgstr ""',
        '"Project-Id-Version: edged\\n"',
        '"MIME-Version: 1.0\\n"',
        '"Content-Type: text/plain; charset=UTF-8\\n"',
        '"Content-Transfer-Encoding: 8bit\\n"',
        "",
    ]
    for message in messages:
        out.append(f"#: {message.where}")
        if "{" in message.text:
            out.append("#, python-brace-format")
        if message.context:
            out.append(f"msgctxt {_po_quote(message.context)}")
        out += [f"msgid {_po_quote(message.text)}", 'msgstr ""', ""]
    return "\n".join(out)
