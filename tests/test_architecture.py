"""The layout of the project: the method stands alone, no import cycles, every name has one home,
arguments parse, stages are data."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from transformers import HfArgumentParser

import trainers
from trainers.training.arguments import BatchSamplers, ContrastiveLosses, SclSltTrainingArguments
from trainers.training.stages import STAGES, get_stage

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_scl_slt", "datasets_scripts", "trainers")
MAX_METHOD_LEVELS = 5


def test_the_method_imports_nothing_of_the_application() -> None:
    script = (
        "import sys, trainers.method\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('trainers.') and not m.startswith("
        "('trainers.method', 'trainers.metrics')))\n"
        "heavy = [m for m in ('transformers.trainer', 'peft', 'datasets', 'evaluate') if m in sys.modules]\n"
        "print(loaded, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


def test_every_exported_name_resolves_from_the_top_package() -> None:
    for name in trainers.__all__:
        assert getattr(trainers, name) is not None, name


def test_hf_argument_parser_builds_a_command_line_from_the_arguments(tmp_path) -> None:
    parser = HfArgumentParser(SclSltTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            *("--output_dir", str(tmp_path)),
            *("--stage", "reference", "--batch_sampler", "no_duplicates"),
            *("--contrastive_loss", "clip", "--curriculum_schedule", "sqrt", "--no_avoid_duplicate_texts"),
        ]
    )
    assert args.stage == "reference" and args.curriculum_schedule == "sqrt"
    assert BatchSamplers(args.batch_sampler) is BatchSamplers.NO_DUPLICATES
    assert ContrastiveLosses(args.contrastive_loss) is ContrastiveLosses.CLIP
    assert args.avoid_duplicate_texts is False
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--batch_sampler", "hardest"])


def test_stages_are_data() -> None:
    assert list(STAGES) == ["reference", "scl", "translate"]
    reference, scl, translate = (get_stage(name) for name in STAGES)
    assert (reference.contrastive_loss, reference.translation_loss, reference.takes_snapshots) == (
        True,
        False,
        True,
    )
    assert (scl.contrastive_loss, scl.translation_loss) == (True, True)
    assert scl.default_batch_sampler is BatchSamplers.PS_CURRICULUM
    assert translate.default_batch_sampler is None and translate.evaluates_by_generation
    with pytest.raises(ValueError, match="stage must be one of"):
        get_stage("pretrain")


def module_files(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name → file, for every module of ``packages`` (a package is its ``__init__.py``)."""
    modules = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports anywhere: at the top, inside functions
    and under ``TYPE_CHECKING``. ``from package import submodule`` counts as importing the submodule."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(known(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules.keys()
            found.update(submodules or {known(source)})
    return found - {None, name}


def import_graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = module_files(packages)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_import_graph_finds_cycles_hidden_in_functions_and_type_checking(tmp_path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    modules = {
        "pkg": tmp_path / "pkg" / "__init__.py",
        "pkg.x": tmp_path / "x.py",
        "pkg.y": tmp_path / "y.py",
    }
    modules["pkg.x"].write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .y import Y\n", encoding="utf-8"
    )
    modules["pkg.y"].write_text("def f():\n    from pkg import x\n", encoding="utf-8")
    assert imported_modules("pkg.x", modules["pkg.x"], modules) == {"pkg.y"}
    assert imported_modules("pkg.y", modules["pkg.y"], modules) == {"pkg.x"}


def test_the_packages_have_no_import_cycle() -> None:
    assert import_cycles(import_graph()) == []


def test_the_method_is_at_most_five_import_levels_deep() -> None:
    graph = import_graph(("trainers",))
    method = {
        name: {target for target in targets if target.startswith("trainers.method.")}
        for name, targets in graph.items()
        if name.startswith("trainers.method.")
    }

    @cache
    def level(module: str) -> int:  # a module importing none of the others is level 1
        return 1 + max((level(target) for target in method[module]), default=0)

    levels = {module: level(module) for module in method}
    assert max(levels.values()) <= MAX_METHOD_LEVELS, levels


@cache
def defined_names(path: Path) -> frozenset[str]:
    """Names a module defines at its top level (functions, classes, assignments), also under ``if``."""
    names = set()
    statements = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            statements.extend([*node.body, *node.orelse])
    return frozenset(names)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_is_imported_from_its_home(package: str) -> None:
    """``from module import name`` names the module that defines ``name``: no module passes on names
    it imports (packages' ``__init__`` excepted: they are the public surface)."""
    homes = module_files((package,))
    everywhere = module_files((*PACKAGES, "tests", "benchmarks"))
    wrong = []
    for importer, path in everywhere.items():
        package_parts = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            if source not in homes or homes[source].name == "__init__.py":
                continue
            defined = defined_names(homes[source])
            wrong += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {source}"
                for alias in node.names
                if alias.name not in defined and f"{source}.{alias.name}" not in homes
            ]
    assert wrong == []
