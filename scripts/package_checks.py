"""Checks for scripts/check-package; standard library only, so it runs in any environment.

package_checks.py contents DIST_DIR < package file list
    The sdist and the wheel in DIST_DIR hold every file listed on stdin (the repository's
    dispytch/ files), the sdist what building needs, and the wheel the `dispytch` command.
package_checks.py installed SEED_DIR VERSION
    Run with `python -I` from an environment where the wheel is installed: dispytch VERSION is
    imported from site-packages, every module imports, and the seed's examples in SEED_DIR
    (the handler example and the emitter example) work together on the in-memory broker.
"""

from __future__ import annotations

import asyncio
import sys
import tarfile
import zipfile
from pathlib import Path


def check_contents(dist: Path, package_files: list[str]) -> None:
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        # every member is under "dispytch-<version>/"
        in_sdist = {name.partition("/")[2] for name in archive.getnames()}
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    problems = []
    for name in ("pyproject.toml", "README.md", "dispytch/py.typed"):
        if name not in in_sdist:
            problems.append(f"the sdist lacks {name}")
    for name in package_files:
        if name not in in_sdist:
            problems.append(f"the sdist lacks {name}")
        if name not in in_wheel:
            problems.append(f"the wheel lacks {name}")
    [entry_points] = [n for n in in_wheel if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        declared = archive.read(entry_points).decode()
        if "dispytch = dispytch.cli:main" not in declared:
            problems.append("the wheel does not declare the dispytch command")
        if "[dispytch.dead_letter_stores]" not in declared or "kafka = " not in declared:
            problems.append("the wheel does not register its dead-letter stores for `dispytch dlq`")
    if problems:
        sys.exit("check-package: " + "\n  ".join(["the package is incomplete:", *problems]))
    print(
        f"{sdist.name}, {wheel.name}: both hold the {len(package_files)} files of dispytch/"
        " (py.typed and every subpackage)"
    )


async def run_seed_examples(seed: Path) -> str:
    sys.path.insert(0, str(seed))  # the examples import `service`, whose stand-in is beside them
    import emitter_example  # type: ignore[import-not-found]
    import handler_example  # type: ignore[import-not-found]
    import service  # type: ignore[import-not-found]

    from dispytch import EventEmitter, EventListener, InMemoryBroker

    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("users"))
    listener.add_handler_group(handler_example.user_events)
    async with listener:
        await emitter_example.example_emit(EventEmitter(broker.producer()))
        while not service.user_service.users or broker.pending("users"):  # bounded by main
            await asyncio.sleep(0.01)
    [user] = service.user_service.users
    assert isinstance(user, handler_example.User), user
    assert user.email == "example@mail.com", user
    assert broker.backlog("user_events.dlq") == 0
    return f"{user.name} <{user.email}>"


def check_installed(seed: Path, version: str) -> None:
    import importlib
    import importlib.metadata
    import pkgutil
    import sysconfig

    import dispytch

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(dispytch.__file__).resolve()
    if site_packages not in where.parents:
        sys.exit(f"check-package: dispytch was imported from {where}, not from {site_packages}")
    installed = importlib.metadata.version("dispytch")
    if installed != version:
        sys.exit(f"check-package: the environment has dispytch {installed}, not {version}")
    modules = [m.name for m in pkgutil.walk_packages(dispytch.__path__, "dispytch.")]
    for name in modules:
        # the conformance suite needs pytest; a __main__ module runs its program when imported
        if not name.startswith("dispytch.testing") and not name.endswith(".__main__"):
            importlib.import_module(name)
    handled = asyncio.run(asyncio.wait_for(run_seed_examples(seed), timeout=10))
    print(
        f"installed wheel: dispytch {installed} from {where.parent}; {len(modules)} modules import;"
        f" seed examples: the emitter's event reached the handler ({handled})"
    )


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "contents":
        check_contents(Path(args[0]), sys.stdin.read().split())
    elif command == "installed":
        check_installed(Path(args[0]), args[1])
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
