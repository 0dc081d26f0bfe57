"""ARCHITECTURE.md: io/ is the only code that writes to disk. Every call that creates, replaces or deletes a
file or folder, anywhere else under cli/fpipe, fails this test with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cli" / "fpipe"

# methods that write whatever object they are called on (Path, DataFrame, Booster)
WRITING_METHODS = {
    "write_text", "write_bytes", "write_parquet", "write_csv", "write_ndjson", "write_json", "write_ipc",
    "sink_parquet", "sink_csv", "sink_ipc", "to_parquet", "to_csv", "save_model", "mkdir", "touch", "unlink",
    "rmdir", "symlink_to", "hardlink_to",
}
# module functions (os.replace, shutil.rmtree, ...), called through their module
WRITING_FUNCTIONS = {
    "os": {"replace", "rename", "renames", "remove", "unlink", "mkdir", "makedirs", "rmdir", "removedirs", "open", "fdopen"},
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"},
}


def _opens_for_writing(call: ast.Call, position: int) -> bool:
    """open(file, mode) or path.open(mode): a mode that is not a read-only literal."""
    mode = call.args[position] if len(call.args) > position else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    return not (isinstance(mode, ast.Constant) and isinstance(mode.value, str) and not set(mode.value) & set("wax+"))


def disk_writes(source: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute):
            if isinstance(f.value, ast.Name) and f.attr in WRITING_FUNCTIONS.get(f.value.id, ()):
                found.append((node.lineno, f"{f.value.id}.{f.attr}"))
            elif f.attr in WRITING_METHODS:
                found.append((node.lineno, f".{f.attr}()"))
            elif f.attr == "open" and _opens_for_writing(node, 0):
                found.append((node.lineno, ".open(mode)"))
        elif isinstance(f, ast.Name) and f.id == "open" and _opens_for_writing(node, 1):
            found.append((node.lineno, "open(mode)"))
    return sorted(found)


def test_the_scan_sees_each_kind_of_write() -> None:
    src = """
import os, shutil
p.write_text("x")
frame.write_parquet(p)
p.mkdir()
p.unlink()
os.replace(a, b)
shutil.rmtree(d)
open(p, "w")
open(p, mode="ab")
p.open("w")
open(p, m)
open(p); open(p, "rb"); p.open(); p.read_text(); frame.rename({}); s.replace("a", "b"); os.path.join(a)
"""
    assert [what for _, what in disk_writes(src)] == [
        ".write_text()", ".write_parquet()", ".mkdir()", ".unlink()",
        "os.replace", "shutil.rmtree", "open(mode)", "open(mode)", ".open(mode)", "open(mode)",
    ]


def test_only_io_writes_to_disk() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50 and (PACKAGE / "io" / "models.py") in files
    outside = [
        f"{path.relative_to(PACKAGE)}:{line}: {what}"
        for path in files
        if PACKAGE / "io" not in path.parents
        for line, what in disk_writes(path.read_text())
    ]
    assert outside == []
