"""Where caches live: ``<cache_dir>/<corpus>__<model>[__<tag>...].h5`` (one place for the rule)."""

from __future__ import annotations

from pathlib import Path


def safe_model(model: str) -> str:
    """A model name usable in a file name (``hf:org/name`` -> ``hf_org_name``)."""
    return model.replace("/", "_").replace(":", "_")


def cache_file(cache_dir: str | Path, corpus: str, model: str, *tags: str) -> Path:
    """The cache file of ``corpus`` embedded by ``model``, with optional name tags."""
    name = "__".join([corpus, safe_model(model), *(t for t in tags if t)])
    return Path(cache_dir) / f"{name}.h5"


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_AUDIO_MAGIC = {b"RIFF": "a WAV file", b"fLaC": "a FLAC file", b"OggS": "an Ogg file", b"ID3": "an MP3 file"}


def not_a_cache(path: str | Path) -> str | None:
    """Why ``path`` is plainly not a cache file (a folder, audio, a file that is not HDF5), or ``None``.

    A file named like a cache (``<corpus>__<model>*.h5``) is left to the reader, whose message
    for an unreadable cache file speaks of damage.
    """
    p = Path(path)
    shape = ("A cache is one HDF5 file named <corpus>__<model>[__<tag>].h5 (while it is written, "
             "also a <name>.h5.parts folder next to it), made by `embedprobe extract`")
    if p.is_dir() and not p.name.endswith(".h5.parts"):
        found = sorted(f.name for f in p.glob("*__*.h5"))
        examples = f"; this folder holds {', '.join(found[:3])}{' ...' if len(found) > 3 else ''}" if found else ""
        return f"{p} is a folder, not a cache. {shape}{examples}. Fix: pass one cache file."
    if not p.is_file():
        return None
    with p.open("rb") as f:
        head = f.read(8)
        signed = head == _HDF5_SIGNATURE
        for offset in (512, 1024, 2048):  # HDF5 allows a user block before the signature
            if not signed and f.seek(offset) == offset and f.read(8) == _HDF5_SIGNATURE:
                signed = True
    what = next((kind for magic, kind in _AUDIO_MAGIC.items() if head.startswith(magic)), None)
    if p.suffix == ".h5" and "__" in p.name and what is None:
        return None
    if signed:
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if "format_version" in f.attrs:
                    return None
        except Exception:  # noqa: BLE001 - an unreadable HDF5 file is the reader's to describe
            return None
        what = "an HDF5 file without embedprobe's header"
    return f"{p} is not an embedding cache ({what or 'not an HDF5 file'}). {shape}. Fix: pass such a file."
