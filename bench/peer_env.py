"""A peer library in a virtual environment of its own, for the benchmarks.

    from peer_env import ensure_environment      # from a script in bench/
    python = ensure_environment(Path("bench/.cache/torchcam-0.5.0"), "torchcam", "0.5.0")

The environment is made once with ``venv`` from the current interpreter; a
``.pth`` file makes this interpreter's packages (torch, numpy, ...) visible
in it, so ``pip install NAME==VERSION`` adds only what the peer needs
beyond them (the package index is the only network it needs). Later calls
reuse it. The package never depends on a peer.
"""
from __future__ import annotations

import site
import subprocess
import venv
from pathlib import Path


def installed_version(python: Path, module: str) -> str | None:
    """The ``__version__`` of ``module`` in ``python``'s environment (run
    from ``/``, so that no checkout is on its path), None when it does not
    import."""
    found = subprocess.run([str(python), "-c", f"import {module}; print({module}.__version__)"],
                           capture_output=True, text=True, cwd="/")
    return found.stdout.strip() if found.returncode == 0 else None


def ensure_environment(path: Path, package: str, version: str,
                       module: str | None = None) -> Path:
    """The Python of a virtual environment at ``path`` in which ``module``
    (default ``package``) imports at ``version``; made or completed here."""
    path = path.resolve()
    python = path / "bin" / "python"
    if not python.exists():
        print(f"making {path} (once)", flush=True)
        venv.EnvBuilder(with_pip=True).create(path)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "parent_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    if installed_version(python, module or package) != version:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"{package}=={version}"], check=True)
        found = installed_version(python, module or package)
        if found != version:
            raise RuntimeError(f"{path}: installed {package}=={version}, but {module or package} "
                               f"imports as version {found!r}")
    return python
