"""The only place that opens audio: decode, mix to mono, resample, cut segments, prefetch.

Everything downstream (extractors, augmentations) gets float32 mono arrays at one sample
rate and never sees a path. Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis,
MP3 and the other formats ``soundfile.available_formats()`` lists), channels are mixed to
mono by their mean, and rates are converted with soxr (quality ``"HQ"`` by default, recorded
in :class:`AudioConfig`). Long files are streamed in chunks of at most
``AudioConfig.max_chunk_s`` seconds through one streaming resampler, so memory stays bounded
and chunk boundaries do not click (the concatenated chunks equal a one-shot resample).

Every problem with one file raises :class:`~embedprobe.errors.AudioError` whose ``reason``
is one line saying what is wrong and, where there is one, the fix. Benign facts (the file
was stereo, it was resampled) are *notes*, not errors: see :meth:`AudioInfo.notes_for`.

Example:
    >>> import numpy as np, soundfile as sf
    >>> t = np.arange(44100) / 44100                     # 1 s of a 220 Hz tone, stereo, 44.1 kHz
    >>> sf.write("clip.wav", np.stack([0.1 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1), 44100)
    >>> cfg = AudioConfig(sample_rate=16000)
    >>> load("clip.wav", cfg).shape                      # mono, resampled
    (16000,)

Decoding many files in background threads for the pipeline: :mod:`embedprobe.audio.prefetch`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from embedprobe.errors import AudioError, BadValueError

RESAMPLE_QUALITIES: tuple[str, ...] = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_READ_BLOCK_S = 10.0  # at most this many seconds of input are decoded per read call

PathLike = str | os.PathLike
Item = PathLike | tuple[PathLike, float, float | None]


@dataclass(frozen=True)
class AudioConfig:
    """How files become model input; serialised into every cache.

    Attributes:
        sample_rate: output rate (Hz); set it to the extractor's ``spec.sample_rate``.
        resample_quality: soxr quality, one of ``RESAMPLE_QUALITIES``.
        max_chunk_s: files are yielded in chunks of at most this many seconds.
        min_duration_s: files (or segments) shorter than this are an error.
        silence_peak: a file whose mono peak stays below this is an error ("silent").
    """

    sample_rate: int = 16000
    resample_quality: str = "HQ"
    max_chunk_s: float = 30.0
    min_duration_s: float = 0.25
    silence_peak: float = 1e-5

    def __post_init__(self) -> None:
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise BadValueError(
                "sample_rate", self.sample_rate, fix="Use a positive integer in Hz, e.g. 16000."
            )
        if self.resample_quality not in RESAMPLE_QUALITIES:
            raise BadValueError("resample_quality", self.resample_quality, RESAMPLE_QUALITIES)
        if not self.max_chunk_s > 0:
            raise BadValueError(
                "max_chunk_s", self.max_chunk_s, fix="Use a positive number of seconds."
            )
        if self.min_duration_s < 0 or self.silence_peak < 0:
            raise BadValueError(
                "min_duration_s/silence_peak",
                (self.min_duration_s, self.silence_peak),
                fix="Use values >= 0 (0 disables the check).",
            )

    @property
    def chunk_samples(self) -> int:
        """Output samples in every chunk except the last."""
        return max(1, round(self.max_chunk_s * self.sample_rate))



@dataclass(frozen=True)
class AudioInfo:
    """What the file header says."""

    path: str
    frames: int
    sample_rate: int
    channels: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def notes_for(self, cfg: AudioConfig) -> tuple[str, ...]:
        """Benign conversions that reading this file with ``cfg`` performs (record them)."""
        notes = []
        if self.channels > 1:
            notes.append(f"mixed {self.channels} channels to mono (mean)")
        if self.sample_rate != cfg.sample_rate:
            notes.append(
                f"resampled from {self.sample_rate} Hz to {cfg.sample_rate} Hz (soxr {cfg.resample_quality})"
            )
        return tuple(notes)


def probe_file(path: PathLike) -> AudioInfo:
    """Read the header of one audio file.

    Raises:
        AudioError: missing, a directory, unreadable, empty (0 bytes), corrupt header, or
            zero-length (header OK but 0 frames).
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found (check the corpus root and the manifest path)")
    if p.is_dir():
        raise AudioError(p, "is a directory, not an audio file (check the manifest path)")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise AudioError(p, f"cannot stat the file ({e.strerror})") from None
    if size == 0:
        raise AudioError(p, "empty file (0 bytes): re-copy or re-export it")
    if not os.access(p, os.R_OK):
        raise AudioError(p, "cannot read: permission denied (fix the file permissions)")
    try:
        with sf.SoundFile(str(p)) as f:
            info = AudioInfo(
                str(p), int(f.frames), int(f.samplerate), int(f.channels), f.format, f.subtype
            )
    except sf.LibsndfileError as e:
        raise AudioError(
            p,
            f"corrupt header: not a readable audio file (libsndfile: {e.error_string}); re-export it as WAV/FLAC",
        ) from None
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(
            p, f"corrupt header: not a readable audio file ({e}); re-export it as WAV/FLAC"
        ) from None
    if info.frames <= 0:
        raise AudioError(p, "no audio: the header is valid but holds 0 frames; re-export the file")
    if info.sample_rate <= 0:
        raise AudioError(
            p, f"corrupt header: sample rate {info.sample_rate} Hz; re-export the file"
        )
    return info


class AudioStream:
    """The float32 mono chunks of one file (or of one segment of it) at ``cfg.sample_rate``.

    Constructing it reads the header and checks the duration (errors raise at once);
    iterating decodes. Every chunk but the last has exactly ``cfg.chunk_samples`` samples.
    NaN/inf is checked before each chunk is yielded; silence is checked over the whole
    file, so for a file longer than one chunk an ``AudioError("silent ...")`` can come after
    earlier chunks were yielded: discard what you got for that file. Iterating again
    decodes again.

    Args:
        path: the audio file.
        cfg: output rate, chunking and checks.
        start_s: segment start in seconds (0 = file start).
        end_s: segment end in seconds; ``None`` = file end.

    Attributes:
        info: the header (:class:`AudioInfo`).
        notes: benign conversions (stereo mixed, resampled, truncated data); grows while iterating.
    """

    def __init__(
        self,
        path: PathLike,
        cfg: AudioConfig | None = None,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        info: AudioInfo | None = None,
    ):
        self.path = Path(path)
        self.cfg = cfg or AudioConfig()
        self.info = info or probe_file(path)
        self.notes: list[str] = list(self.info.notes_for(self.cfg))
        sr = self.info.sample_rate
        end = self.info.duration_s if end_s is None else end_s
        if start_s < 0 or end <= start_s or start_s >= self.info.duration_s:
            raise AudioError(
                path,
                f"segment {start_s:.3f}-{end:.3f} s is outside the file (duration "
                f"{self.info.duration_s:.3f} s): fix the manifest's start/end",
            )
        self.start_frame = round(start_s * sr)
        self.stop_frame = min(self.info.frames, round(end * sr))
        self.n_frames = self.stop_frame - self.start_frame
        self._check_duration(self.n_frames / sr)

    @property
    def duration_s(self) -> float:
        """Duration of the (segment of the) file per the header, in seconds."""
        return self.n_frames / self.info.sample_rate

    def _check_duration(self, dur: float) -> None:
        if dur < self.cfg.min_duration_s:
            raise AudioError(
                self.path,
                f"too short ({dur:.3f} s < min_duration_s {self.cfg.min_duration_s} s): "
                "drop it from the manifest or lower AudioConfig.min_duration_s",
            )

    def __iter__(self) -> Iterator[np.ndarray]:
        cfg, info, path = self.cfg, self.info, self.path
        sr_in = info.sample_rate
        block = max(1, round(min(cfg.max_chunk_s, _READ_BLOCK_S) * sr_in))
        resampler = None
        if sr_in != cfg.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(
                sr_in, cfg.sample_rate, 1, dtype="float32", quality=cfg.resample_quality
            )
        size = cfg.chunk_samples
        pending: list[np.ndarray] = []
        n_pending = 0
        n_read = 0
        peak = 0.0
        try:
            f = sf.SoundFile(str(path))
        except (sf.SoundFileError, RuntimeError, OSError) as e:
            raise AudioError(
                path, f"cannot open for decoding ({e}); re-export it as WAV/FLAC"
            ) from None
        with f:
            if self.start_frame:
                f.seek(self.start_frame)
            while n_read < self.n_frames:
                try:
                    x = f.read(min(block, self.n_frames - n_read), dtype="float32", always_2d=True)
                except (sf.SoundFileError, RuntimeError) as e:
                    raise AudioError(
                        path, f"decoding failed at {n_read / sr_in:.2f} s ({e}); re-export the file"
                    ) from None
                if len(x) == 0:
                    break
                mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    bad = int(np.flatnonzero(~np.isfinite(mono))[0])
                    raise AudioError(
                        path,
                        f"contains NaN or inf samples (first at "
                        f"{(self.start_frame + n_read + bad) / sr_in:.3f} s): "
                        "re-export the file from a clean source",
                    )
                n_read += len(x)
                peak = max(peak, float(np.abs(mono).max()))
                y = (
                    mono
                    if resampler is None
                    else resampler.resample_chunk(mono, last=n_read >= self.n_frames)
                )
                pending.append(np.ascontiguousarray(y, dtype=np.float32))
                n_pending += len(y)
                while n_pending >= size and (n_pending > size or n_read < self.n_frames):
                    # keep the last chunk until the end so whole-file checks run before it
                    out, pending, n_pending = _take(pending, size)
                    yield out
            if resampler is not None and n_read < self.n_frames:  # truncated data: flush
                y = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                pending.append(y.astype(np.float32, copy=False))
                n_pending += len(y)
        if n_read < self.n_frames:
            self.notes.append(f"truncated: header says {self.n_frames} frames, decoded {n_read}")
            self._check_duration(n_read / sr_in)
        if peak < cfg.silence_peak:
            raise AudioError(
                path,
                f"silent (peak {peak:.2g} < silence_peak {cfg.silence_peak:g}): "
                "check the recording or drop it from the manifest",
            )
        while n_pending > 0:
            out, pending, n_pending = _take(pending, min(size, n_pending))
            yield out


def _take(pending: list[np.ndarray], n: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Split the first ``n`` samples off a list of pieces."""
    buf = pending[0] if len(pending) == 1 else np.concatenate(pending)
    out, rest = buf[:n], buf[n:]
    rest_list = [rest] if len(rest) else []
    return np.ascontiguousarray(out), rest_list, len(rest)


def read_chunks(
    path: PathLike,
    cfg: AudioConfig | None = None,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Stream one file as float32 mono chunks of at most ``cfg.max_chunk_s`` seconds.

    Header problems and too-short files raise here; decoding problems raise while iterating.
    Use :class:`AudioStream` directly to get the notes as well.
    """
    return iter(AudioStream(path, cfg, start_s=start_s, end_s=end_s))


def load(
    path: PathLike,
    cfg: AudioConfig | None = None,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> np.ndarray:
    """The whole file (or segment) as one float32 mono array at ``cfg.sample_rate``."""
    chunks = list(read_chunks(path, cfg, start_s=start_s, end_s=end_s))
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def content_hash(path: PathLike, block_size: int = 1 << 20) -> str:
    """SHA-1 (40 hex digits) of the file's bytes, read in 1 MiB blocks.

    It identifies the exact file, not the audio: a re-encoded or re-tagged copy of the same
    recording hashes differently. SHA-1 runs at about 1 GB/s, so it is cheap next to decoding.
    """
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while blk := f.read(block_size):
                h.update(blk)
    except FileNotFoundError:
        raise AudioError(
            path, "file not found (check the corpus root and the manifest path)"
        ) from None
    except OSError as e:
        raise AudioError(path, f"cannot read ({e.strerror})") from None
    return h.hexdigest()
