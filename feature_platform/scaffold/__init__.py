"""`feature-platform init`: a new feature repository, runnable as created, under a package name of the team's choice.

The files come from `template/` (`*.tmpl` with `{{package}}` and `{{project}}` filled in,
the folder `package/` named after the package); the sample data is copied as it is.
"""

import keyword
import re
import sys
from pathlib import Path

from feature_platform.errors import ArgumentError

TEMPLATE = Path(__file__).parent / "template"
RESERVED = frozenset({"feature_platform", "dagster", "definitions", "tests", "data"})


def check_package(name: str) -> str:
    """`name` if it can be the repository's package, else an error saying why."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ArgumentError(f"package {name!r} is not a lower-case Python package name (letters, digits, underscores)")
    if name in RESERVED or name in sys.stdlib_module_names:
        raise ArgumentError(f"package {name!r} would shadow a module of the same name; choose another, e.g. 'shop_features'")
    return name


def target(relative: Path, package: str) -> Path:
    parts = [package if part == "package" else part for part in relative.parts]
    name = parts[-1].removesuffix(".tmpl")
    parts[-1] = ".gitignore" if name == "gitignore" else name
    return Path(*parts)


def create_repository(directory: str | Path, package: str) -> list[Path]:
    """Write a runnable feature repository into `directory` (new or empty); returns the files written."""
    check_package(package)
    root = Path(directory).resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ArgumentError(f"{root} exists and is not an empty folder; init writes into a new or empty one")
    project = root.name.replace("_", "-")
    written = []
    for source in sorted(p for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        path = root / target(source.relative_to(TEMPLATE), package)
        path.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".tmpl":
            path.write_text(source.read_text().replace("{{package}}", package).replace("{{project}}", project))
        else:
            path.write_bytes(source.read_bytes())
        written.append(path)
    return written
