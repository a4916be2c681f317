"""The Python that users' own accounts run: the platform's environment, where they can reach it.

With per-user system accounts (:mod:`hub_config.local.accounts`) every server, kernel, Dask
scheduler and worker runs as the user's account, not the platform's. On these machines the
platform's Python is installed under ``/root`` (pyenv, mode 0700), which no other account can
even enter, and the project's checkout may be private too. The Littlest JupyterHub solves this
by installing a separate user environment under ``/opt``; here the same software is made
reachable without a second install: a *relocated copy* of the interpreter and the venv under a
root-owned, world-readable folder (default ``/opt/roman-platform/runtime``), made of hard links
(3 s for 170 000 files on this machine; a plain copy where the folder is on another
filesystem), with only the files that name their own location rewritten:

* the interpreter binary (copied, its ``RUNPATH`` pointed at ``$ORIGIN/../lib``, so it loads
  its own ``libpython`` and not the one under /root);
* ``pyvenv.cfg``, the venv's ``bin/python*`` links and the console scripts' ``#!`` lines;
* the project's editable install is dropped: users import the project from a copy of its
  packages kept next to the state folder (:func:`project_copy`), refreshed at every start.

Files are linked, never edited in place (an edit would change the platform's own venv); a
rewritten file is a new file. Users cannot change anything in the runtime (root-owned, 0755
folders, files as installed).

The copy is made once per platform venv and its contents (a stamp): a venv whose installed
distributions change gets a new copy, the old one is removed once nothing runs from it; several
platforms on one machine share one. Environment overlays (:mod:`hub_config.environments`) are
relocated the same way, under ``environments/<name>``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path("/opt/roman-platform/runtime")
STAMP = ".roman-runtime-stamp"
PROJECT_PACKAGES = ("platform_lib", "hub_config")


class RuntimeError_(RuntimeError):
    """The user runtime cannot be made; ``str()`` is meant for the operator."""


@dataclass(frozen=True)
class UserRuntime:
    """Where users' processes find Python: the relocated venv and the project's packages."""

    venv: Path
    project: Path  # a folder holding platform_lib and hub_config, put on PYTHONPATH
    #: platform prefix -> its relocated copy (the venv, and each environment overlay)
    moves: dict[str, str] = field(default_factory=dict)

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def relocate(self, path: str) -> str:
        """``path`` inside the platform's venv or an overlay, as seen in their copies."""
        for old, new in self.moves.items():
            if path == old or path.startswith(old + "/"):
                return new + path[len(old) :]
        return path

    def program(self, path: str) -> str:
        """The runtime's program for the platform's ``path`` (a console script of the venv or
        of an overlay); an error when the copy lacks it or it lies outside every copy."""
        moved = self.relocate(path)
        inside = any(moved.startswith(new + "/") for new in self.moves.values())
        if not inside or not os.path.exists(moved):
            raise RuntimeError_(f"{path} has no copy in the user runtime {self.venv.parent}")
        return moved

    def environment(self, home: str, account: str) -> dict[str, str]:
        """The variables a user's process must see instead of the platform's."""
        return {
            "HOME": home,
            "USER": account,
            "LOGNAME": account,
            "SHELL": "/bin/bash",
            "PATH": os.pathsep.join([str(self.bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "VIRTUAL_ENV": str(self.venv),
            "PYTHONPATH": str(self.project),
        }


def runtime_folder(root: Path, venv: Path) -> Path:
    """One folder per platform venv (two checkouts on one machine do not share a copy)."""
    return root / hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:12]


def _stamp(venv: Path) -> str:
    """What the copy was made from: both paths and every installed distribution's name."""
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    dists = sorted(p.name for p in site.glob("*.dist-info")) if site.is_dir() else []
    base = Path(os.path.realpath(venv / "bin" / "python"))
    return "\n".join([str(venv), str(base), *dists]) + "\n"


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link copy (``cp -al``); a real copy when the two are on different filesystems."""
    result = subprocess.run(
        ["cp", "-al", str(src), str(dst)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        if "cross-device" not in result.stderr and "Invalid cross-device" not in result.stderr:
            raise RuntimeError_(f"cannot copy {src} to {dst}: {result.stderr.strip()}")
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` as a new file (never through a hard link into the original)."""
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.relocating")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _set_runpath(binary: Path, old: bytes) -> None:
    """Point an ELF's RUNPATH from ``old`` to ``$ORIGIN/../lib`` in place (same-size field).

    The new value is shorter than any absolute install path, so the string is overwritten and
    padded with NULs, which is how patchelf shortens a path too. Refused unless ``old`` occurs
    exactly once (a shared string would change another field)."""
    data = binary.read_bytes()
    needle = old + b"\0"
    if data.count(needle) != 1:
        raise RuntimeError_(f"{binary}: RUNPATH {old.decode()!r} not found exactly once")
    new = b"$ORIGIN/../lib"
    if len(new) > len(old):
        raise RuntimeError_(f"{binary}: RUNPATH {old.decode()!r} is too short to rewrite")
    _replace(binary, data.replace(needle, new + b"\0" * (len(old) - len(new) + 1)))


def _rewrite_text(path: Path, mapping: dict[str, str]) -> None:
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return
    new = text
    for old, repl in mapping.items():
        new = new.replace(old, repl)
    if new != text:
        _replace(path, new.encode())


def _open_up(folder: Path) -> None:
    """Every folder of the copy enterable and listable (some packages install 0700 ones); the
    folders are the copy's own, so this changes nothing of the platform's."""
    for dirpath, _dirs, _files in os.walk(folder):
        os.chmod(dirpath, 0o755)


def relocate_python(base: Path, dst: Path) -> Path:
    """A working copy of the interpreter installation ``base`` (the folder above ``bin``)."""
    _link_tree(base, dst)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = dst / "bin" / version
    if exe.is_symlink() or not exe.exists():
        raise RuntimeError_(f"{exe} is not the interpreter binary")
    lib = base / "lib"
    if (lib / f"lib{version}.so.1.0").exists() or any(lib.glob(f"lib{version}*.so*")):
        _set_runpath(exe, str(lib).encode())
    _open_up(dst)
    return exe


def relocate_venv(
    venv: Path, dst: Path, final: Path, python: Path, mapping: dict[str, str]
) -> None:
    """A copy of ``venv`` made at ``dst`` that will live at ``final`` (``dst`` is renamed there
    once complete), runs ``python`` and names ``final``, not ``venv`` nor what ``mapping``
    moves (an overlay's links into the platform's venv)."""
    _link_tree(venv, dst)
    mapping = {str(venv): str(final), **mapping}
    for entry in dst.iterdir():  # an overlay's shared folders are links into the base venv
        if entry.is_symlink():
            target = os.readlink(entry)
            for old, new in mapping.items():
                if target.startswith(old + "/"):
                    entry.unlink()
                    entry.symlink_to(new + target[len(old) :])
                    break
    cfg = dst / "pyvenv.cfg"
    lines = []
    for line in cfg.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "home":
            line = f"home = {python.parent}"
        elif key in ("executable", "command"):
            continue
        lines.append(line)
    _replace(cfg, ("\n".join(lines) + "\n").encode())
    for link in (dst / "bin").iterdir():
        if link.is_symlink():
            target = os.readlink(link)
            if os.path.isabs(target) and Path(target).name.startswith("python"):
                link.unlink()
                link.symlink_to(python)
        elif link.is_file():
            with link.open("rb") as fh:
                head = fh.read(2)
            if head == b"#!" or link.name.startswith("activate"):
                _rewrite_text(link, mapping)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(dst)}))
    for pth in site.glob("*.pth"):
        if pth.name.startswith("__editable__"):
            pth.unlink()  # the project comes from project_copy() on PYTHONPATH instead
        else:
            _rewrite_text(pth, mapping)
    for finder in site.glob("__editable__*finder.py"):
        finder.unlink()
    for spec in (dst / "share" / "jupyter" / "kernels").glob("*/kernel.json"):
        _rewrite_text(spec, mapping)
    _open_up(dst)


def _overlays() -> dict[str, Path]:
    """The environment overlays this machine has (hub_config.environments), by name."""
    from hub_config.environments import local_environments_dir

    folder = local_environments_dir()
    if not folder.is_dir():
        return {}
    return {p.name: p.resolve() for p in sorted(folder.iterdir()) if (p / "pyvenv.cfg").exists()}


def _in_use(folder: Path) -> bool:
    """Whether a running process executes from ``folder`` (its program, or its command line)."""
    import psutil

    needle = str(folder) + "/"
    for proc in psutil.process_iter(["exe", "cmdline"]):
        try:
            exe = proc.info["exe"] or ""
            cmd = " ".join(proc.info["cmdline"] or ())
        except psutil.Error:
            continue
        if exe.startswith(needle) or needle in cmd:
            return True
    return False


def ensure_runtime(
    root: Path = DEFAULT_ROOT, venv: Path | None = None, *, log=print
) -> tuple[Path, dict[str, str]]:
    """The relocated copy of ``venv`` (default: this process's) and of every environment
    overlay under ``root``, made if missing; returns the copy's folder (``<folder>/venv``,
    ``<folder>/python``, ``<folder>/environments/<name>``) and the moves (platform prefix ->
    its copy) for :class:`UserRuntime`.

    A copy is never changed once made: its folder is named by the venv *and* by what it holds
    (the stamp), so a venv whose packages changed gets a new folder while servers of another
    platform keep running from the old one; an old folder is removed once no process runs from
    it. Safe against a second platform making it at once (a lock)."""
    venv = (venv or Path(sys.prefix)).resolve()
    if not (venv / "pyvenv.cfg").exists():
        raise RuntimeError_(
            f"{venv} is not a virtual environment; per-user accounts need the platform "
            "installed in one (make setup)"
        )
    overlays = _overlays()
    stamp = _stamp(venv) + "".join(f"overlay {k} {_stamp(v)}" for k, v in sorted(overlays.items()))
    base_name = runtime_folder(root, venv).name
    folder = root / f"{base_name}-{hashlib.sha256(stamp.encode()).hexdigest()[:8]}"
    moves = {str(venv): str(folder / "venv")}
    moves.update({str(p): str(folder / "environments" / n) for n, p in overlays.items()})
    root.mkdir(parents=True, exist_ok=True)
    for p in (root, *root.parents):
        if p == Path("/"):
            break
        if p.stat().st_mode & 0o005 != 0o005:
            os.chmod(p, (p.stat().st_mode & 0o7777) | 0o755)  # parents made above (/opt/...)
    lock = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = folder / STAMP
        if stamp_file.exists() and stamp_file.read_text() == stamp:
            return folder, moves
        log(f"making the user runtime {folder} (hard links of {venv})")
        tmp = folder.with_name(folder.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        os.chmod(tmp, 0o755)  # not the umask's (the platform runs under 077)
        base = Path(os.path.realpath(venv / "bin" / "python")).parent.parent
        python = relocate_python(base, tmp / "python")
        final_python = folder / "python" / "bin" / python.name
        mapping = {str(venv): str(folder / "venv")}
        relocate_venv(venv, tmp / "venv", folder / "venv", final_python, mapping)
        for name, prefix in overlays.items():
            (tmp / "environments").mkdir(exist_ok=True)
            os.chmod(tmp / "environments", 0o755)
            relocate_venv(
                prefix,
                tmp / "environments" / name,
                folder / "environments" / name,
                final_python,
                mapping,
            )
        (tmp / STAMP).write_text(stamp)
        os.chmod(tmp / STAMP, 0o644)
        shutil.rmtree(folder, ignore_errors=True)  # a copy left half-made (no stamp)
        tmp.rename(folder)
        for old in root.glob(f"{base_name}*"):
            if old != folder and old.is_dir() and not _in_use(old):
                shutil.rmtree(old, ignore_errors=True)
        return folder, moves
    finally:
        os.close(lock)


def project_copy(source: Path, dst: Path) -> Path:
    """The project's packages where user accounts can import them (``dst``, world-readable),
    copied fresh from ``source`` (the checkout) at every start: a checkout under a private
    folder stays private, and a user cannot change the copy."""
    tmp = dst.with_name(dst.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in PROJECT_PACKAGES:
        shutil.copytree(
            source / name,
            tmp / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    for dirpath, _dirs, files in os.walk(tmp):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def check_runtime(runtime: UserRuntime, account: str) -> None:
    """Run the runtime's Python as ``account`` once: import the science stack's entry points.

    Catches a copy that works for root only (an unreadable file, a library under /root)
    before a user meets it as a server that never starts."""
    code = "import jupyterhub.singleuser, distributed, platform_lib, hub_config.naming; print('ok')"
    import pwd

    entry = pwd.getpwnam(account)
    env = runtime.environment("/", account)
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
            "--",
            str(runtime.python),
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or "ok" not in result.stdout:
        raise RuntimeError_(
            f"the user runtime {runtime.venv} does not start as account {account}: "
            f"{(result.stderr or result.stdout).strip()[-600:]}"
        )
