"""Streamlit's magic writes every bare expression of a page script into the page: a string
under a constant, meant as its docstring, would show as text at the top of the view."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import whybox.dashboard.app.main as main_module

VIEWS = Path(main_module.__file__).with_name("views")


def pages() -> list[Path]:
    listed = re.findall(r'VIEWS / "(\w+\.py)"', Path(main_module.__file__).read_text())
    assert len(listed) >= 10, listed
    return [VIEWS / name for name in listed]


def test_no_page_script_has_a_bare_string_but_its_docstring() -> None:
    for page in pages():
        body = ast.parse(page.read_text()).body
        strays = [
            node.lineno
            for node in body[1:]
            if isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ]
        assert not strays, f"{page.name}: a bare string at line(s) {strays} would show in the page"
