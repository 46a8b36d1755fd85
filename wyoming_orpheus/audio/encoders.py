"""Streaming encoders: int16 PCM in, the bytes of a response format out, chunk by chunk.

wav and pcm are written by hand; mp3, opus, aac and flac go through PyAV into a write-only
sink. NOTE: REFERENCE.md section 7: a seekable BytesIO truncated between chunks lost the
tail and clicked in another server; a sink with only write() makes the muxers emit stream
output, and finish() flushes the encoder so no tail is lost.
"""

from __future__ import annotations

import struct
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import av
import numpy as np

from ..format import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH


@dataclass(frozen=True)
class AudioFormat:
    """One response format: its MIME type and how it is muxed."""

    name: str
    content_type: str
    container: str = ""
    codec: str = ""


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame"),
        AudioFormat("opus", "audio/ogg", "ogg", "libopus"),
        AudioFormat("aac", "audio/aac", "adts", "aac"),
        AudioFormat("flac", "audio/flac", "flac", "flac"),
        AudioFormat("wav", "audio/wav"),
        AudioFormat("pcm", "audio/pcm"),
    )
}


class Encoder(ABC):
    """Push int16 mono samples, get encoded bytes; finish() returns the tail."""

    @abstractmethod
    def push(self, samples: np.ndarray) -> bytes:
        """Encode samples; return the bytes ready so far (may be empty)."""

    @abstractmethod
    def finish(self) -> bytes:
        """Flush the encoder and the container; return the last bytes."""

    def close(self) -> None:  # noqa: B027 - only the PyAV encoder holds resources
        """Release resources without writing more (a request that ended early)."""


class PcmEncoder(Encoder):
    """Raw 16-bit signed little-endian mono at 24 kHz."""

    def push(self, samples: np.ndarray) -> bytes:
        """Return the samples' bytes."""
        return samples.astype("<i2").tobytes()

    def finish(self) -> bytes:
        """Return nothing: raw PCM has no trailer."""
        return b""


class WavEncoder(PcmEncoder):
    """A WAV header with unknown sizes, then raw PCM."""

    # NOTE: a streamed WAV cannot know its length; 0xFFFFFFFF in the RIFF and data sizes
    # is what players and ffmpeg accept as "read to the end" (REFERENCE.md section 7).
    def __init__(self) -> None:
        self._header_sent = False

    def push(self, samples: np.ndarray) -> bytes:
        """Return the header before the first samples."""
        head = b"" if self._header_sent else self.header()
        self._header_sent = True
        return head + super().push(samples)

    def finish(self) -> bytes:
        """Return the header if no audio was pushed at all."""
        return self.push(np.zeros(0, dtype=np.int16))

    @staticmethod
    def header() -> bytes:
        """Return a 44-byte PCM WAV header with streaming (unknown) sizes."""
        byte_rate = SAMPLE_RATE * CHANNELS * SAMPLE_WIDTH
        return (
            struct.pack("<4sI4s", b"RIFF", 0xFFFFFFFF, b"WAVE")
            + struct.pack(
                "<4sIHHIIHH",
                b"fmt ",
                16,
                1,  # PCM
                CHANNELS,
                SAMPLE_RATE,
                byte_rate,
                CHANNELS * SAMPLE_WIDTH,
                SAMPLE_WIDTH * 8,
            )
            + struct.pack("<4sI", b"data", 0xFFFFFFFF)
        )


class _Sink:
    """A write-only file for PyAV: no seek() and no tell(), so muxers stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class AvEncoder(Encoder):
    """A PyAV container and codec writing to a non-seekable sink."""

    def __init__(self, audio_format: AudioFormat) -> None:
        self._sink = _Sink()
        # A small I/O buffer and, for Ogg, 20 ms pages: bytes leave as soon as they are
        # encoded (Ogg otherwise holds about a second per page).
        options = {"page_duration": "20000"} if audio_format.container == "ogg" else {}
        self._container = av.open(
            self._sink, mode="w", format=audio_format.container, options=options, buffer_size=4096
        )
        stream = self._container.add_stream(audio_format.codec, rate=SAMPLE_RATE)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        self._stream = stream
        self._pts = 0
        self._closed = False
        # NOTE: push and finish run on an executor thread; a request cancelled meanwhile
        # closes the encoder from the event loop. FFmpeg must never see both at once.
        self._lock = threading.Lock()

    def push(self, samples: np.ndarray) -> bytes:
        """Encode samples; PyAV re-chunks them to the codec's frame size."""
        with self._lock:
            return self._push(samples)

    def _push(self, samples: np.ndarray) -> bytes:
        if self._closed:
            return b""
        if len(samples):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
                format="s16",
                layout="mono",
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._pts
            self._pts += len(samples)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        """Drain the codec and write the container's trailer."""
        with self._lock:
            if not self._closed:
                self._closed = True
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            return self._sink.take()

    def close(self) -> None:
        """Release the container without writing more (a request that ended early)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._container.close()


def open_encoder(name: str) -> Encoder:
    """Create the streaming encoder for a response format name."""
    if name == "pcm":
        return PcmEncoder()
    if name == "wav":
        return WavEncoder()
    return AvEncoder(FORMATS[name])
