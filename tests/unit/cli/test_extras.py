"""A command run without its extra says which extra to install, in one line, and exits 2."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edgefleet.cli.exit_codes import EXIT_USAGE
from edgefleet.cli.extras import EXTRAS

ROOT = Path(__file__).parents[3]
# distribution name -> the module it installs, where they differ
MODULE_OF = {
    "scikit-learn": "sklearn",
    "python-multipart": "multipart",
    "dp-accounting": "dp_accounting",
}
# uvicorn uses these when present and runs without them
ACCELERATORS = {"httptools", "uvloop"}
SERVER_SIDE = {"fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "psycopg", "onnx"}


def _distribution(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower()


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_lists_the_modules_pyproject_installs_with_it(extra: str) -> None:
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = {_distribution(r) for r in optional[extra]} - ACCELERATORS
    assert set(EXTRAS[extra]) == {MODULE_OF.get(d, d) for d in installed}


def run_without(hidden: set[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh interpreter where ``hidden`` cannot be imported.

    ``sys.modules[name] = None`` is what the import system does for a module that is absent
    (and what importlib.util.find_spec reports as absent): the same as a bare install.
    """
    code = (
        "import sys\n"
        f"for name in {sorted(hidden)!r}:\n"
        "    sys.modules[name] = None\n"
        "from edgefleet.cli.main import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def _modules(*extras: str) -> set[str]:
    return {m for e in extras for m in EXTRAS[e]}


@pytest.mark.parametrize(
    ("args", "hidden", "install"),
    [
        (["server", "--data-dir", "srv"], _modules("server"), "edgefleet[server]"),
        (["server", "init", "--data-dir", "srv"], _modules("server"), "edgefleet[server]"),
        (["demo", "--workdir", "demo"], _modules("server", "train"), "edgefleet[server,train]"),
        (["demo", "--workdir", "demo"], {"torch"}, "edgefleet[train]"),
        (["fl", "simulate", "--rounds", "1"], _modules("train"), "edgefleet[train]"),
        (
            ["fl", "simulate", "--rounds", "1", "--backend", "ray"],
            _modules("train", "ray"),
            "edgefleet[train,ray]",
        ),
        (["fl", "simulate", "--backend", "ray"], {"ray"}, "edgefleet[ray]"),
        (["models", "build", "--out", "models"], _modules("train"), "edgefleet[train]"),
    ],
    ids=[
        "server",
        "server-init",
        "demo",
        "demo-without-torch",
        "fl-simulate",
        "fl-simulate-ray",
        "fl-simulate-ray-only",
        "models-build",
    ],
)
def test_a_command_without_its_extra_names_the_extra_and_exits_2(
    tmp_path: Path, args: list[str], hidden: set[str], install: str
) -> None:
    result = run_without(hidden, *args, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: edgefleet ")
    assert lines[0].endswith(f"pip install '{install}'")
    assert list(tmp_path.iterdir()) == []  # nothing was started or created


def test_importing_the_command_line_loads_nothing_server_side() -> None:
    code = (
        "import sys\n"
        "import edgefleet.cli.main\n"
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert SERVER_SIDE.isdisjoint(loaded)
    assert {"torch", "sklearn", "ray", "scipy"}.isdisjoint(loaded)


def test_a_missing_module_found_only_while_running_still_gets_the_hint(tmp_path: Path) -> None:
    # torch itself is found, but importing it fails on a submodule: the check before the run
    # passes and the guard around the run turns the failed import into the same one line
    result = run_without(
        {"torch.nn"}, "fl", "simulate", "--rounds", "1", "--clients", "2", "--per-round", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: edgefleet fl simulate needs the 'train' extra, not installed here (no module "
        "torch): pip install 'edgefleet[train]'"
    ]


def test_only_a_module_of_the_commands_extras_is_turned_into_an_install_hint() -> None:
    from edgefleet.cli.extras import missing_extra_hint
    from edgefleet.errors import MissingExtraError

    def fail_importing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    hint = r"pip install 'edgefleet\[server,train\]'"
    with (
        pytest.raises(MissingExtraError, match=hint),
        missing_extra_hint("edgefleet demo", "server", "train"),
    ):
        fail_importing("sklearn.linear_model")
    # yaml is a base dependency and ray an extra the demo does not need: a missing one is a
    # broken environment or a bug, which the hint would hide
    for other in ("yaml", "ray", "edgefleet.server"):
        with (
            pytest.raises(ModuleNotFoundError) as info,
            missing_extra_hint("edgefleet demo", "server", "train"),
        ):
            fail_importing(other)
        assert info.value.name == other
