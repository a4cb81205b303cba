"""The docs run as written: every command and snippet of README.md and docs/*.md, in order, from a fresh clone.

Fenced blocks are read from the files: the lines of a ```shell block and the ``$`` lines of a ```console block are
commands (a console block's other lines are the command's exact output), a ```python block is a snippet, and any
other block (text, yaml, errors shown) must hold no command or import, so a new command cannot hide in one. Each
command and snippet runs in a temporary copy of the repository (its files as a clone has them; the installed eyesim
runs them; each doc in its own copy, the docs side by side), in the order written, unless it is slow: then COVERED
names the test that runs the same thing. A new or edited command is in neither until someone runs it or maps it, so this
fails. Links must stay inside the repository and reach an existing file and heading; nothing may point outside it.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.test_install import repository_copy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"shell", "bash", "sh", "console", "python", "py"}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)\s*$")
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:eyesim|python3?|pip3?)\s+[\w.\"'-]")  # not "eyesim: error: ..."
IMPORT = re.compile(r"^\s*(?:from\s+[\w.]+\s+import\s|import\s+[\w.]+)")
SUBCOMMANDS = {"estimate", "sweep", "plot", "prune"}
TIMEOUT = 900

# Slow (or not runnable here) commands and snippets, each with the test that runs the same thing. A shell command is
# keyed by its text (whitespace collapsed); the test's source must use every --option the command does.
COVERED = {
    # installs reach the package registry: the test installs the same way without it, in a new environment
    "python -m pip install . && eyesim estimate models_onnx/alexnet.onnx --hw hwconfigs/eyeriss.yaml":
        "tests/test_install.py::test_readme_install_commands_in_either_order",
    'python -m pip install -e ".[test]" && python -m pytest': ".ci/run",  # CI runs exactly this line
    # weight pruning of LeNet-5 (about a minute of CPU): the same command on the digits CNN
    "eyesim prune models_onnx/lenet5-mnist.onnx --hw hwconfigs/eyeriss.yaml --data choose.npz --eval test.npz "
    "-o pruned.onnx --report prune.csv": "tests/test_prune.py::test_prune_digits_end_to_end",
    # the Python API of pruning (about a minute on LeNet-5): the same calls on the digits CNN
    "from eyesim.workload.onnx.run import load_model, load_samples [60e41beb3c]":
        "tests/test_prune.py::test_the_python_api_as_docs_prune_md_shows_it",
}


@dataclass(frozen=True)
class Block:
    """One fenced block of a doc: where it starts, its language label, its text."""

    doc: str
    line: int
    lang: str
    text: str


@dataclass(frozen=True)
class Step:
    """A command (``shell``) or snippet (``python``) of a doc, with the exact output a console block shows."""

    doc: str
    line: int
    kind: str
    text: str
    expected: str | None = None

    @property
    def key(self) -> str:
        """How COVERED names it: a command's text, or a snippet's first line and a hash of the whole."""
        flat = " ".join(self.text.split())
        if self.kind == "shell":
            return flat
        return f"{self.text.strip().splitlines()[0]} [{hashlib.sha1(flat.encode()).hexdigest()[:10]}]"

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.key}"


def blocks(doc: str) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    found, current, start, lang = [], None, 0, ""
    for number, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        match = FENCE.match(line)
        if current is None and match:
            current, start, lang = [], number, match.group(2).lower()
        elif current is not None and match and not match.group(2):
            found.append(Block(doc, start, lang, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"{doc}:{start}: a fenced block is never closed"
    return found


def steps(block: Block) -> list[Step]:
    """The commands or the snippet a block holds (none for a block that is not run)."""
    if block.lang in ("python", "py"):
        return [Step(block.doc, block.line, "python", block.text)]
    if block.lang not in RUN_LANGS:
        return []
    joined: list[tuple[int, str]] = []
    for offset, line in enumerate(block.text.splitlines(), 1):
        if joined and joined[-1][1].endswith("\\"):
            joined[-1] = (joined[-1][0], joined[-1][1][:-1].rstrip() + " " + line.strip())
        else:
            joined.append((block.line + offset, line))
    if block.lang != "console":
        return [Step(block.doc, n, "shell", text.strip()) for n, text in joined
                if text.strip() and not text.strip().startswith("#")]
    found: list[Step] = []
    for n, text in joined:
        if text.startswith("$ "):
            found.append(Step(block.doc, n, "shell", text[2:].strip(), ""))
        elif found:
            last = found[-1]
            found[-1] = Step(last.doc, last.line, last.kind, last.text, f"{last.expected}{text}\n")
    return found


ALL_BLOCKS = [block for doc in DOCS for block in blocks(doc)]
ALL_STEPS = [step for block in ALL_BLOCKS for step in steps(block)]


# --- what the docs hold ---------------------------------------------------------------------------------------------

def test_the_docs_hold_commands_to_run():
    assert {s.doc for s in ALL_STEPS} >= {"README.md", "docs/sweep.md", "docs/prune.md"}
    assert len([s for s in ALL_STEPS if s.kind == "python"]) >= 3


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang not in RUN_LANGS], ids=lambda b: f"{b.doc}:{b.line}")
def test_a_block_that_is_not_run_holds_no_command(block):
    """A command or an import in a text/yaml/unlabelled block would never be run: label the block shell or python."""
    for line in block.text.splitlines():
        assert not COMMAND.match(line), f"{block.doc}:{block.line}: {line!r} is a command: put it in a ```shell block"
        assert not IMPORT.match(line), f"{block.doc}:{block.line}: {line!r} is Python: put it in a ```python block"


@pytest.mark.parametrize("step", [s for s in ALL_STEPS if s.kind == "python"], ids=str)
def test_python_snippets_are_python(step):
    ast.parse(step.text)


def test_yaml_examples_are_valid_files(tmp_path):
    """A hardware example loads as a hardware file; a sweep-spec example loads as a spec; any other parses."""
    from eyesim.hardware import hardware_from_dict
    from eyesim.sweep import load_spec

    for block in (b for b in ALL_BLOCKS if b.lang in ("yaml", "yml")):
        data = yaml.safe_load(block.text)
        where = f"{block.doc}:{block.line}"
        if isinstance(data, dict) and "vary" in data:
            (tmp_path / "spec.yaml").write_text(block.text)
            assert load_spec(tmp_path / "spec.yaml"), where
        elif isinstance(data, dict) and "array" in data:
            assert hardware_from_dict(data, where).name == data["name"]


def test_every_slow_command_is_covered_by_a_test_doing_the_same():
    keys = {s.key for s in ALL_STEPS}
    stale = sorted(set(COVERED) - keys)
    assert not stale, f"COVERED names commands no doc has any more: {stale}"
    for key, target in COVERED.items():
        if "::" not in target:
            assert key in (ROOT / target).read_text(), f"{target} does not run {key!r}"
            continue
        path, name = target.split("::")
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"{target}: no such test (for {key!r})"
        source = ast.get_source_segment((ROOT / path).read_text(), functions[name]) or ""
        missing = [opt for opt in re.findall(r"(?<!\S)(--[\w-]+)", key) if f'"{opt}"' not in source]
        assert not missing, f"{target} does not use {missing} as {key!r} does"


# --- they run ---------------------------------------------------------------------------------------------------------

def run_step(step: Step, cwd: Path, env: dict[str, str]) -> str | None:
    """Run one command or snippet; the failure's description, or None."""
    args = ["bash", "-c", step.text] if step.kind == "shell" else [sys.executable, "-c", step.text]
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"{step}: still running after {TIMEOUT} s"
    if proc.returncode != 0:
        return f"{step}: exit {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    if step.expected is not None:
        shown = [line.rstrip() for line in step.expected.splitlines()]
        got = [line.rstrip() for line in proc.stdout.splitlines()]
        if shown != got:
            diff = next(i for i in range(max(len(shown), len(got)))
                        if i >= len(shown) or i >= len(got) or shown[i] != got[i])
            return (f"{step}: the output shown differs from the output at its line {diff + 1}:\n"
                    f"shown: {shown[diff] if diff < len(shown) else '(nothing)'}\n"
                    f"got:   {got[diff] if diff < len(got) else '(nothing)'}")
    return None


def clean_copy(dest: Path) -> Path:
    """A copy of the repository without its eyesim/: the installed package runs the commands, as after an install."""
    copy = repository_copy(dest)
    for package in (copy / "eyesim", *copy.glob("*.egg-info")):
        if package.is_dir():
            shutil.rmtree(package)
    return copy


def run_doc(doc_steps: list[Step], cwd: Path, env: dict[str, str]) -> list[str]:
    """One doc's commands and snippets in the order written; the failures' descriptions."""
    return [failure for step in doc_steps for failure in [run_step(step, cwd, env)] if failure]


def test_every_command_and_snippet_runs_as_written_in_order(tmp_path):
    """Each doc in its own copy of the repository, its steps in the order written. The docs run side by side (their
    steps are processes, some waiting on start-up or workers), so a doc that needs another doc's files fails."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    by_doc = {doc: [s for s in ALL_STEPS if s.doc == doc and s.key not in COVERED] for doc in DOCS}
    by_doc = {doc: doc_steps for doc, doc_steps in by_doc.items() if doc_steps}
    with ThreadPoolExecutor(max_workers=max(1, len(by_doc))) as pool:
        runs = [pool.submit(run_doc, doc_steps, clean_copy(tmp_path / f"clone{i}"), env)
                for i, doc_steps in enumerate(by_doc.values())]
    failures = [failure for run in runs for failure in run.result()]
    assert not failures, "\n\n".join(failures)


# --- links and pointers -----------------------------------------------------------------------------------------------

def tracked(*suffixes: str) -> list[Path]:
    """The repository's files (tracked and new, not ignored) with these suffixes."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name.endswith(suffixes) and (ROOT / name).is_file()]


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lowercase, punctuation dropped, spaces to hyphens)."""
    seen: dict[str, int] = {}
    found = set()
    inside = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            inside = not inside
        if inside or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines() if re.match(r"#+ ", line)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", tracked(".md"), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} points outside the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{doc.name}: {target}: no heading with anchor #{anchor}"


SECTION = re.compile(r"\b((?:DESIGN|README|hardware|sweep|prune)\.md)\]?(?:\([^)]*\))?\)?,?\s*\(?\"([A-Z][^\"\n]*)\"")


def test_nothing_points_outside_the_repository_or_at_a_missing_section():
    """Facts live in this repository: no ../shared, no numbered sections; a section named is a heading there."""
    problems = []
    for path in tracked(".md", ".py", ".yaml", ".cfg", ".toml", ".txt"):
        if path == Path(__file__):
            continue  # it holds the patterns
        text, name = path.read_text(errors="replace"), str(path.relative_to(ROOT))
        if "../shared" in text:
            problems.append(f"{name} points at ../shared")
        if re.search(r"(?:DESIGN(?:\.md)?\s*§?|§)\s*\d", text):
            problems.append(f'{name} names a numbered section; name its heading instead (DESIGN.md, "Counting")')
        for doc, section in SECTION.findall(text):
            where = ROOT / doc if doc in ("DESIGN.md", "README.md") else ROOT / "docs" / doc
            if not any(heading.startswith(section) for heading in headings(where)):
                problems.append(f'{name}: {doc} has no section "{section}"')
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS + ["DESIGN.md"])
def test_inline_commands_name_real_scripts_and_commands(doc):
    for code in re.findall(r"`([^`\n]+)`", (ROOT / doc).read_text()):
        script = re.match(r"python3? ([\w/.-]+\.py)\b", code)
        if script:
            assert (ROOT / script.group(1)).is_file(), f"{doc}: `{code}` names a missing script"
        command = re.match(r"eyesim ([a-z]+)\b", code)
        if command and not code.startswith("eyesim --"):
            assert command.group(1) in SUBCOMMANDS, f"{doc}: `{code}` is not an eyesim command"
