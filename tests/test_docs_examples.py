"""Every ```python block of README.md and docs/**/*.md runs (issue 17, item 4).

The blocks of one file run in order in one shared namespace (a module of its own), in a fresh
temporary working directory per file; each block is one test item named by its file and the
line of its opening fence, so a failure reads ``README.md:27``. Blocks in other languages are
not run.

A block that needs what a plain test machine may lack says so in an HTML comment on the line
just before its fence:

- ``<!-- doctest: needs-data -->``: runs only if ``NEUROMEM_DATA`` names an existing directory
  (``needs-data=ca3``: that sub-directory must exist too);
- ``<!-- doctest: needs=lava -->`` (``pynn``, ``nir``, or a comma-separated list of importable
  module names): skipped, with the reason, when one of them cannot be imported;
- ``<!-- doctest: skip reason="..." -->``: never run (only for blocks that cannot run by nature).

Directives combine (``<!-- doctest: needs-data needs=lava -->``). A misspelt directive, or one
not directly above a fenced block, fails the collection test below instead of being ignored.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXCLUDED: set[str] = set()  # files whose blocks are not run (none today)

#: Seconds one block may take (a warm run of the slowest block takes a few seconds; a cold
#: numba cache adds compilation). Documentation examples must stay short.
BLOCK_TIMEOUT_S = 120

#: ``needs=`` aliases: the name in the directive -> the module that must import.
MODULES = {"lava": "lava", "pynn": "pyNN", "nir": "nir"}

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*doctest:(?P<body>.*?)-->\s*$")
TOKEN = re.compile(r'\s*(?:(needs-data)(?:=([\w./-]+))?|needs=([\w.,]+)|skip\s+reason="([^"]+)")')


@dataclass
class Block:
    path: str  # relative to the repository root, with "/"
    line: int  # 1-based line of the opening fence
    source: str
    needs_data: list[str] = field(default_factory=list)  # "" = the directory itself
    needs: list[str] = field(default_factory=list)
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [f for f in files if f.is_file() and rel(f) not in EXCLUDED]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse_directive(body: str, where: str) -> dict:
    out: dict = {"needs_data": [], "needs": [], "skip": None}
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        m = TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"{where}: cannot read doctest directive {body[pos:].strip()!r}")
        if m.group(1):
            out["needs_data"].append(m.group(2) or "")
        elif m.group(3):
            names = [n for n in m.group(3).split(",") if n]
            out["needs"].extend(names)
        else:
            out["skip"] = m.group(4)
        pos = m.end()
    if not (out["needs_data"] or out["needs"] or out["skip"]):
        raise ValueError(f"{where}: empty doctest directive")
    return out


def extract(path: Path) -> tuple[list[Block], list[str]]:
    """The python blocks of ``path`` and the problems found (misplaced or unreadable
    directives, unclosed fences)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name, blocks, problems = rel(path), [], []
    pending: tuple[int, dict] | None = None  # the directive of the previous line
    i = 0
    while i < len(lines):
        text = lines[i]
        d = DIRECTIVE.match(text)
        if d is not None:
            if pending is not None:
                problems.append(f"{name}:{pending[0]}: doctest directive not above a fence")
            try:
                pending = (i + 1, parse_directive(d.group("body"), f"{name}:{i + 1}"))
            except ValueError as exc:
                problems.append(str(exc))
                pending = None
            i += 1
            continue
        f = FENCE.match(text)
        if f is None:
            if pending is not None:
                problems.append(f"{name}:{pending[0]}: doctest directive not above a fence")
                pending = None
            i += 1
            continue
        fence, info = f.group("fence"), f.group("info").strip()
        start, body = i + 1, []
        i += 1
        closing = re.compile(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$")
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            problems.append(f"{name}:{start}: unclosed code fence")
        i += 1
        lang = info.split()[0].lower() if info else ""
        directive = pending[1] if pending is not None else {}
        if pending is not None and lang not in ("python", "py"):
            problems.append(
                f"{name}:{pending[0]}: doctest directive above a {lang or 'plain'} block"
            )
        pending = None
        if lang in ("python", "py"):
            # pad with blank lines so that tracebacks give the markdown file's line numbers
            source = "\n" * start + "\n".join(body) + "\n"
            blocks.append(Block(name, start, source, **directive))
    if pending is not None:
        problems.append(f"{name}:{pending[0]}: doctest directive not above a fence")
    return blocks, problems


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks, problems = [], []
    for path in doc_files():
        b, p = extract(path)
        blocks += b
        problems += p
    return blocks, problems


BLOCKS, PROBLEMS = all_blocks()


def skip_reason(block: Block) -> str | None:
    if block.skip is not None:
        return f"marked skip: {block.skip}"
    if block.needs_data:
        data = os.environ.get("NEUROMEM_DATA")
        if not data:
            return "needs the data directory: NEUROMEM_DATA is not set"
        for sub in block.needs_data:
            p = Path(data) / sub
            if not p.is_dir():
                return f"needs the data directory {p}, which does not exist"
    for name in block.needs:
        module = MODULES.get(name, name)
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"needs {module!r}, which cannot be imported here"
    return None


class BlockTimeout(Exception):
    pass


@dataclass
class FileRun:
    """The shared state of one markdown file's blocks."""

    module: types.ModuleType
    workdir: Path
    #: per block, in order: ("ok" | "skip" | "fail", one-line summary, reason or report)
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)

    def not_run(self) -> str:
        """The earlier blocks that were skipped or failed, for a later failure's message."""
        return "; ".join(summary for status, summary, _ in self.outcomes if status != "ok")


def _alarm(signum, frame):
    raise BlockTimeout(f"ran longer than {BLOCK_TIMEOUT_S} s")


def execute(block: Block, run: FileRun) -> None:
    code = compile(block.source, str(ROOT / block.path), "exec")
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, BLOCK_TIMEOUT_S)
    try:
        exec(code, run.module.__dict__)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def file_runs(tmp_path_factory):
    runs: dict[str, FileRun] = {}

    def get(path: str) -> FileRun:
        if path not in runs:
            stem = re.sub(r"\W", "_", path.removesuffix(".md"))
            module = types.ModuleType(f"docs_example_{stem}")
            module.__file__ = str(ROOT / path)
            sys.modules[module.__name__] = module  # dataclasses, pickle look classes up here
            runs[path] = FileRun(module, tmp_path_factory.mktemp(stem))
        return runs[path]

    yield get
    for run in runs.values():
        sys.modules.pop(run.module.__name__, None)


def test_directives_readable():
    assert BLOCKS, "no python blocks found in README.md and docs/"
    assert not PROBLEMS, "\n".join(PROBLEMS)


def run_block(block: Block, run: FileRun) -> tuple[str, str, str]:
    """Run one block in its file's namespace; its entry of ``FileRun.outcomes``."""
    reason = skip_reason(block)
    if reason is not None:
        return "skip", f"line {block.line}: skipped ({reason})", reason
    t0 = time.perf_counter()
    try:
        execute(block, run)
    except Exception as exc:
        tb = exc.__traceback__  # from the block's first frame on (not this test's, execute's)
        while tb is not None and tb.tb_frame.f_code.co_filename != str(ROOT / block.path):
            tb = tb.tb_next
        note = run.not_run()
        if note:
            note = (
                f"\nearlier blocks of this file skipped or failed (this one may need them): {note}"
            )
        return (
            "fail",
            f"line {block.line}: failed ({type(exc).__name__})",
            f"{block.id}: the python block starting at line {block.line} of {block.path} raised "
            f"{type(exc).__name__} after {time.perf_counter() - t0:.1f} s{note}\n"
            + "".join(traceback.format_exception(type(exc), exc, tb)),
        )
    return "ok", f"line {block.line}: ran", ""


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[b.id for b in BLOCKS])
def test_doc_block(index, file_runs, monkeypatch):
    block = BLOCKS[index]
    same_file = [k for k, b in enumerate(BLOCKS) if b.path == block.path]
    position = same_file.index(index)
    run = file_runs(block.path)
    monkeypatch.chdir(run.workdir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("NEUROMEM_PROGRESS", "0")
    # the file's blocks run in order, each once: earlier ones not run yet (deselected, or
    # items reordered) run first, and a block already run reports the outcome it had
    while len(run.outcomes) <= position:
        run.outcomes.append(run_block(BLOCKS[same_file[len(run.outcomes)]], run))
    status, _, detail = run.outcomes[position]
    if status == "skip":
        pytest.skip(detail)
    if status == "fail":
        pytest.fail(detail, pytrace=False)
