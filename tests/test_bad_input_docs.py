"""docs/bad-input.md is true: every message it lists is one the code can print, every row has an
exit code, and for at least one case in each section the real command prints exactly that line
and exits with that code.

How a documented message is matched to the code: every string the figurine package builds (a
literal, an f-string, a "%s" log format, with a `hint=` appended as FigurineError prints it) is
turned into a pattern whose literal text must match exactly and whose {fields} match any text;
the documented message must match one pattern whole. A pattern vouches for a message only with
enough literal text (15 characters, or 8 and a third of the message), so "{path}: {what}" never
does. A command-line mistake is argparse's message inside figurine's line (cli.py): the part
before " (see figurine CMD --help)", less argparse's "argument X: ", is matched against
argparse's own strings.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, run_figurine
from tests.photos import make_face_photo

DOCS = ROOT / "docs" / "bad-input.md"
EXIT_CODES = {1, 2, 3, 4, 5, 6, 130, 141}
MIN_LITERAL = 15


# -- the document ----------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    case: str
    messages: list[str]  # the message(s) the row shows; [] for a row that describes, not quotes
    exit: int | None      # None: "(runs)", the command carries on


_SPAN = re.compile(r"``\s(.+?)\s``|`([^`]+)`")


def _messages(cell: str) -> list[str]:
    """The cell's leading code span, and the spans joined to it by " / " (alternatives)."""
    cell = cell.strip()
    if cell.startswith("warning only: "):
        cell = cell[len("warning only: "):]
    spans = list(_SPAN.finditer(cell))
    if not spans or spans[0].start() != 0:
        return []
    out = [spans[0].group(1) or spans[0].group(2)]
    for prev, nxt in zip(spans, spans[1:]):
        if cell[prev.end():nxt.start()] != " / ":
            break
        out.append(nxt.group(1) or nxt.group(2))
    return out


def _cells(line: str) -> list[str]:
    """A table row's cells; `\\|` is a pipe inside a cell."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.replace("\\|", "|").strip() for p in parts]


def parse_docs(text: str) -> list[Row]:
    rows, section, in_table = [], "", False
    for line in text.splitlines():
        if line.startswith("## "):
            section, in_table = line[3:].strip(), False
        elif line.startswith("| Case | Message | Exit |"):
            in_table = True
        elif in_table and line.startswith("|---"):
            continue
        elif in_table and line.startswith("|"):
            case, message, code = _cells(line)
            rows.append(Row(section, case, _messages(message), None if code == "(runs)" else int(code)))
        else:
            in_table = False
    return rows


ROWS = parse_docs(DOCS.read_text(encoding="utf-8"))
SECTIONS = list(dict.fromkeys(r.section for r in ROWS))


# -- the code's messages as patterns -----------------------------------------------------------
_PRINTF = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdrifgx]")


def _pattern(node) -> tuple[str, int] | None:
    """(regex, literal characters) of a string-building expression, or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = _PRINTF.split(node.value)
        return "(.+?)".join(re.escape(p) for p in parts), sum(map(len, parts))
    if isinstance(node, ast.JoinedStr):
        regex, literal = "", 0
        for value in node.values:
            if isinstance(value, ast.Constant):
                regex += re.escape(value.value)
                literal += len(value.value)
            else:
                regex += "(.+?)"
        return regex, literal
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pattern(node.left), _pattern(node.right)
        if left and right:
            return left[0] + right[0], left[1] + right[1]
    return None


def code_patterns() -> list[tuple[re.Pattern, int]]:
    found = set()
    for path in [*(ROOT / "figurine").rglob("*.py"), Path(argparse.__file__)]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                hint = next((k.value for k in node.keywords if k.arg == "hint"), None)
                message = _pattern(node.args[0])
                if message and hint is not None:
                    hinted = _pattern(hint) or ("(.+?)", 0)
                    found.add((message[0] + r" \(" + hinted[0] + r"\)", message[1] + hinted[1] + 3))
                    continue
            pattern = _pattern(node)
            if pattern:
                found.add(pattern)
    return [(re.compile(regex, re.DOTALL), literal) for regex, literal in found if literal >= 8]


@pytest.fixture(scope="module")
def patterns():
    return code_patterns()


# figurine's line around argparse's message (cli.py _Parser.error), and argparse's own prefix.
_CLI_SUFFIX = re.compile(r"(.+) \(see figurine(?: [\w-]+)? --help\)")
_ARGPARSE_PREFIX = re.compile(r"argument [^ :]+: (.+)")


def in_code(message: str, patterns, nested: bool = True) -> bool:
    """Some pattern with enough literal text matches the whole message (see the module text)."""
    wrapped = _CLI_SUFFIX.fullmatch(message)
    if wrapped:
        assert "(see {self.prog} --help)" in (ROOT / "figurine" / "cli.py").read_text()
        message = wrapped.group(1)
        inner = _ARGPARSE_PREFIX.fullmatch(message)
        if inner and in_code(inner.group(1), patterns, nested):
            return True
    for pattern, literal in patterns:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        if literal >= MIN_LITERAL or literal >= len(message) / 3:
            return True
        # One message built into another (f"not sliced: {reason}"): the inner part must be one too.
        if nested and any(len(g) < len(message) and in_code(g, patterns, nested=False) for g in match.groups()):
            return True
    return False


def test_the_document_has_sections_and_rows():
    assert len(SECTIONS) >= 10 and len(ROWS) >= 100
    assert all(r.messages for r in ROWS if r.exit not in (None, 141)), \
        [r.case for r in ROWS if not r.messages and r.exit not in (None, 141)]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.section[:20]}: {r.case[:40]}")
def test_every_row_has_an_exit_code_and_its_message_is_in_the_code(row, patterns):
    assert row.exit is None or row.exit in EXIT_CODES
    for message in row.messages:
        assert "\n" not in message
        assert in_code(message, patterns), f"no message in figurine/ can print: {message}"


def test_the_pattern_check_can_fail(patterns):
    """A changed word in a real message is caught (the check is not vacuous)."""
    good = "PHOTO is empty (0 bytes)"
    assert in_code(good, patterns)
    assert not in_code(good.replace("empty", "blank"), patterns)
    line = "argument --size: invalid choice: 'big' (choose from 'social', 'story') (see figurine make --help)"
    assert in_code(line, patterns)
    assert not in_code(line.replace("choice", "pick"), patterns)


# -- the real command, one case (or more) per section ------------------------------------------
def _photo(tmp: Path) -> str:
    make_face_photo(tmp / "selfie.jpg")
    (tmp / "weights").mkdir()
    return "selfie.jpg"


def _template(tmp: Path, edit: tuple[str, str]) -> str:
    src = (ROOT / "configs" / "packaging" / "classic-blister.toml").read_text()
    assert edit[0] in src
    (tmp / "mine.toml").write_text(src.replace(*edit, 1))
    Image.new("RGB", (200, 300), (210, 210, 210)).save(tmp / "fig.png")
    return "mine.toml"


def _run_dir(tmp: Path, record) -> str:
    (tmp / "ada.run").mkdir()
    body = record if isinstance(record, bytes) else json.dumps(record).encode()
    (tmp / "ada.run" / "run.json").write_bytes(body)
    return "ada.run"


GOOD_FIGURE_STAGE = {"files": ["figure-0.png"], "mattes": ["figure-0-matte.png"], "best": 0, "key": "k"}


def case_command_line(tmp):
    return ["make", "--size", "big"], {}, \
        "argument --size: invalid choice: 'big' (choose from 'social', 'story') (see figurine make --help)"


def case_photo(tmp):
    (tmp / "notes.txt").write_text("name,tagline\nAda,Pilot\n" * 20)
    (tmp / "weights").mkdir()
    return ["make", "notes.txt", "--name", "Ada", "--weights", "weights"], {"PHOTO": "notes.txt"}, \
        "PHOTO is not an image; accepted formats: JPEG, PNG, WebP, GIF, TIFF, BMP, AVIF, HEIC/HEIF"


def case_face(tmp):
    photo = _photo(tmp)
    return ["make", photo, "--name", "Ada", "--weights", "weights"], {"WEIGHTS": "weights"}, \
        ("missing insightface pack WEIGHTS/insightface/buffalo_l (needs det_10g.onnx, w600k_r50.onnx); "
         "run `figurine weights fetch`")


def case_text(tmp):
    photo = _photo(tmp)
    return ["make", photo, "--name", "\u200b\u200b", "--weights", "weights"], {}, \
        "name is empty: it has only invisible characters (U+200B); give 1 to 40 characters"


def case_names(tmp):
    photo = _photo(tmp)
    return ["make", photo, "--name", "Ada", "--pose", "heroo", "--weights", "weights"], {}, \
        ("unknown pose 'heroo'; choose from action-run, arms-crossed, flex, hero, peace-sign, power-pose, "
         "salute, standing, thinking, wave")


def case_template_bleed(tmp):
    path = _template(tmp, ("radius = 5\n", "radius = 5\nbleed = 1e6\n"))
    return ["pack", "fig.png", "--name", "Ada", "--template", path, "-o", "out.png"], {"TEMPLATE": path}, \
        "TEMPLATE: 'page.bleed' must be a number from 0 to 10, got 1000000.0"


def case_template_edition(tmp):
    path = _template(tmp, ('ai = "AI-GENERATED IMAGE"', 'ai = "AI-GENERATED IMAGE"\nedition = "No. {0}"'))
    return ["pack", "fig.png", "--name", "Ada", "--template", path, "-o", "out.png"], {"TEMPLATE": path}, \
        ("TEMPLATE: 'badge_text.edition' has the format field '{0}'; only {edition} is filled in "
         "(e.g. \"No. {edition:04d}\"; write {{ and }} for a brace)")


def case_pictures(tmp):
    Image.new("RGBA", (200, 300), (0, 0, 0, 0)).save(tmp / "clear.png")
    return ["pack", "clear.png", "--name", "Ada", "-o", "out.png"], {"FIGURE": "clear.png"}, \
        "FIGURE: nothing stands out from the backdrop; packaging the whole picture"


def case_outputs_fifo(tmp):
    photo = _photo(tmp)
    os.mkfifo(tmp / "out.png")
    return ["make", photo, "--name", "Ada", "--weights", "weights", "-o", "out.png", "--force"], {"OUT": "out.png"}, \
        "OUT: is not a regular file (a device, FIFO or socket); figurine will not replace it"


def case_outputs_same_path(tmp):
    photo = _photo(tmp)
    return ["make", photo, "--name", "Ada", "--weights", "weights", "-o", "a.png", "--run-dir", "a.png"], {}, \
        "a.png: two outputs of this run would be the same file (a.png and a.png)"


def case_run_dir_name(tmp):
    run = _run_dir(tmp, {"stages": {"figure": {**GOOD_FIGURE_STAGE, "files": ["../x.png"]}}})
    return ["pack", "--run", run, "-o", "out.png"], {"RUN": run}, \
        "RUN/run.json: a figure file has a name that is not a plain file name inside the run directory: '../x.png'"


def case_run_dir_settings(tmp):
    run = _run_dir(tmp, {"stages": {"figure": GOOD_FIGURE_STAGE}, "config": {"generation": {"steps": 10**9}}})
    return ["pack", "--run", run, "-o", "out.png"], {}, \
        "config key 'generation.steps' must be between 1 and 500, got 1000000000"


def case_settings(tmp):
    photo = _photo(tmp)
    return ["make", photo, "--name", "Ada", "--weights", "weights", "--set", "generation.stepz=3"], {}, \
        "--set generation.stepz=3: unknown config key 'generation.stepz'"


def case_read_back(tmp):
    return ["inspect", "nothere.png"], {"FILE": "nothere.png"}, "FILE: no such file"


def case_print3d(tmp):
    return ["print3d", "--figure", "x.png", "-o", "a.3mf"], {}, "x.png: figure not found"


def case_weights_fifo(tmp):
    (tmp / "w" / "sdxl-base").mkdir(parents=True)
    os.mkfifo(tmp / "w" / "sdxl-base" / "model_index.json")  # must not hang, must not be opened
    return ["weights", "verify", "--weights", "w"], {"WEIGHTS": "w"}, \
        "25 weights problem(s) in WEIGHTS (run `figurine weights fetch`)"


def case_serve_listen(tmp):
    return ["serve", "--listen", "0.0.0.0"], {}, \
        ("--listen 0.0.0.0 serves beyond this computer and needs a login token: set FIGURINE_WEB_TOKEN or pass "
         "--token-file FILE (at least 16 characters, e.g. from python3 -c 'import secrets; "
         "print(secrets.token_urlsafe(24))')")


def case_batch(tmp):
    (tmp / "team.csv").write_text("photo,name\nnothere.jpg,Ada\n")
    return ["batch", "team.csv", "-o", "out"], {}, \
        "1 of 1 rows cannot be made (listed above); fix them, or use --skip-bad to make the others"


CASES = {  # section heading (its start) -> cases
    "The command line": [case_command_line],
    "The photo": [case_photo],
    "The face in the photo": [case_face],
    "Text input": [case_text],
    "Names and numbers": [case_names],
    "Packaging templates": [case_template_bleed, case_template_edition],
    "Figure and accessory pictures": [case_pictures],
    "Outputs": [case_outputs_fifo, case_outputs_same_path],
    "Run directories": [case_run_dir_name, case_run_dir_settings],
    "Settings and files": [case_settings],
    "Pictures read back": [case_read_back],
    "`figurine print3d`": [case_print3d],
    "Weights integrity": [case_weights_fifo],
    "`figurine serve`": [case_serve_listen],
    "`figurine batch`": [case_batch],
}
ALL_CASES = [(section, case) for section, cases in CASES.items() for case in cases]


def _section(prefix: str) -> str:
    matches = [s for s in SECTIONS if s.startswith(prefix)]
    assert len(matches) == 1, f"no one section starts with {prefix!r}: {SECTIONS}"
    return matches[0]


def test_every_section_with_messages_has_a_cli_case():
    covered = {_section(prefix) for prefix in CASES}
    with_messages = {r.section for r in ROWS if r.messages}
    assert with_messages - covered == set()


@pytest.mark.parametrize("prefix, case", ALL_CASES, ids=[c.__name__ for _, c in ALL_CASES])
def test_the_command_prints_the_documented_line_and_exit_code(prefix, case, tmp_path):
    args, names, message = case(tmp_path)
    section = _section(prefix)
    rows = [r for r in ROWS if r.section == section and message in r.messages]
    assert len(rows) == 1, f"docs/bad-input.md, {section}: no row shows {message!r}"
    line = message
    for placeholder, actual in names.items():
        line = line.replace(placeholder, actual)
    proc = run_figurine(*args, cwd=tmp_path, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    if rows[0].exit is None:  # said while the command carries on (stdout, or a warning on stderr)
        assert proc.returncode == 0, proc.stderr
        said = proc.stdout.splitlines() + [l.removeprefix("figurine: warning: ") for l in proc.stderr.splitlines()]
        assert line in said, (proc.stdout, proc.stderr)
    else:
        assert proc.returncode == rows[0].exit, proc.stderr
        assert proc.stderr.splitlines()[-1] == f"figurine: error: {line}", proc.stderr
        assert [l for l in proc.stderr.splitlines() if l.startswith("figurine: error:")] == \
            [f"figurine: error: {line}"]
