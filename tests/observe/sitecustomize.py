"""Put this folder on PYTHONPATH, with OBSERVE_DIR set, to log what each stage process touches in its
working directory (the repository): the files it opens for reading or writing, the folders it lists,
creates or removes, what it renames, each params key it reads (the audit event
"classifier.params.read"), and at exit the modules of the repository it imported.

Python's audit hooks (PEP 578) see all of it as it happens; I/O done in C (h5py, TensorFlow's
SavedModel writer) is not seen. Only `python -m stages.<stage>` processes are watched: not DVC, git
or the other tools run with the same environment. Each process writes OBSERVE_DIR/<pid>.tsv, one
event a line as it happens (prepare's forked workers end with os._exit, so nothing may wait for
exit), the first line the command. tests/e2e/test_dvc_deps_e2e.py reads the logs.
"""

import atexit
import json
import os
import sys

_DIR = os.environ.get("OBSERVE_DIR")
_ROOT = os.path.join(os.getcwd(), "")
_LOGS = os.path.join(os.path.abspath(_DIR or "."), "")
_ARGV = getattr(sys, "orig_argv", [])
_STAGE = (
    "-m" in _ARGV and _ARGV[_ARGV.index("-m") + 1 :][:1] != [] and _ARGV[_ARGV.index("-m") + 1].startswith("stages.")
)
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_logged_pid = None


def _log(kind: str, path: str) -> None:
    global _logged_pid
    fd = os.open(os.path.join(_DIR, f"{os.getpid()}.tsv"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        if _logged_pid != os.getpid():  # the first line of a process (a forked worker too): its command
            _logged_pid = os.getpid()
            os.write(fd, f"argv\t{json.dumps(_ARGV)}\n".encode())
        os.write(fd, f"{kind}\t{path}\n".encode())
    finally:
        os.close(fd)


def _inside(target) -> str | None:
    """`target` relative to the repository, or None: outside it, or not a path (a file descriptor)."""
    if not isinstance(target, (str, bytes, os.PathLike)):
        return None
    path = os.path.abspath(os.fsdecode(target))
    if path.startswith(_LOGS):  # the log's own writes
        return None
    return path[len(_ROOT) :] if path.startswith(_ROOT) else None


def _no_fd(dir_fd) -> bool:
    """No dir_fd given: the os functions' events say -1, shutil's None."""
    return dir_fd is None or dir_fd == -1


def _hook(event: str, args: tuple) -> None:
    # Filter first: most events carry other arguments, and the log's own writes raise events too.
    try:
        if event == "open":
            path, mode, flags = args
            if mode is None and not flags & _WRITING and not os.path.isabs(os.fsdecode(path)):
                return  # os.open(name, dir_fd=...) as shutil.rmtree walks a folder: the event has no dir_fd
            relative = _inside(path)
            if relative is not None:
                writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITING)
                _log("write" if writes else "read", relative)
        elif event in ("os.listdir", "os.scandir"):
            relative = _inside(args[0] if args[0] is not None else ".")
            if relative is not None:
                _log("list", relative)
        elif event == "os.rename":  # os.replace too
            source, target, source_fd, target_fd = args
            if _no_fd(source_fd) and _no_fd(target_fd) and _inside(source) is not None:
                _log("moved_from", _inside(source))
                _log("write", _inside(target) or "..outside")
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
            if _no_fd(args[1]) and _inside(args[0]) is not None:  # with a dir_fd, rmtree's own top event names it
                _log("removed", _inside(args[0]))
        elif event == "os.mkdir":
            if _no_fd(args[2]) and _inside(args[0]) is not None:
                _log("created", _inside(args[0]))
        elif event == "classifier.params.read":
            _log("params", args[0])
    except Exception:  # an exception here would surface in the stage's own call
        pass


def _imported() -> None:
    for module in list(sys.modules.values()):
        relative = _inside(getattr(module, "__file__", None))
        if relative is not None:
            _log("import", relative)


if _DIR and _STAGE:
    sys.addaudithook(_hook)
    atexit.register(_imported)
