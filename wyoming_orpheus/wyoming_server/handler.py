"""Wyoming events: describe/info, synthesize, streaming synthesis, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any

import numpy as np
from sentence_stream import SentenceBoundaryDetector
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .. import __version__
from ..audio.pcm import CHANNELS, SAMPLE_WIDTH
from ..decode.snac import SAMPLE_RATE
from ..errors import error_code, error_text, log_safe
from ..sockets import write_within
from ..synthesis import Synthesizer
from ..text import Part, TextError
from ..voices import VoiceCatalog
from .protocol import ProtocolError, read_event

_LOGGER = logging.getLogger(__name__)

_DOOR = "wyoming"  # the metrics label of this front door
SAMPLES_PER_CHUNK = 1024  # the chunk size of the ecosystem's servers (wyoming-piper)
_ORPHEUS = Attribution(
    name="Canopy Labs (Orpheus TTS)", url="https://github.com/canopyai/Orpheus-TTS"
)
# NOTE: the project has no public home yet; an empty url rather than one that points nowhere.
_PROGRAM = Attribution(name="wyoming-orpheus", url="")


def build_info(catalog: VoiceCatalog, streaming: bool) -> Info:
    """Describe the one TTS program and every offered voice."""
    voices = [
        TtsVoice(
            name=voice.name,
            description=voice.description,
            attribution=_ORPHEUS,
            installed=True,
            version=None,
            languages=[voice.language],
        )
        for voice in catalog.voices
    ]
    program = TtsProgram(
        name="orpheus",
        description="Orpheus TTS: natural, expressive speech from an LLM with SNAC audio",
        attribution=_PROGRAM,
        installed=True,
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=streaming,
    )
    return Info(tts=[program])


class _TextStream:
    """Text of one streaming request: chunks in, complete sentences out."""

    def __init__(self) -> None:
        self._detector = SentenceBoundaryDetector()
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.chars = 0
        self.stopped = asyncio.Event()
        self.failed = False

    def add(self, text: str) -> None:
        """Take one chunk; queue every sentence it completes."""
        self.chars += len(text)
        for sentence in self._detector.add_chunk(text):
            self._sentences.put_nowait(sentence)

    def stop(self) -> None:
        """End of text: queue the unfinished last sentence."""
        rest = self._detector.finish()
        if rest.strip():
            self._sentences.put_nowait(rest)
        self._sentences.put_nowait(None)
        self.stopped.set()

    async def parts(self) -> AsyncIterator[Part]:
        """Yield sentences as they complete."""
        while (sentence := await self._sentences.get()) is not None:
            yield sentence


class OrpheusEventHandler(AsyncEventHandler):
    """One client connection; synthesis runs in tasks so events keep being read."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        synthesizer: Synthesizer,
    ) -> None:
        super().__init__(reader, writer)
        self._info_event = info.event()
        self._synthesizer = synthesizer
        self._stream: _TextStream | None = None
        self._task: asyncio.Task[None] | None = None
        settings = synthesizer.settings
        # A whole text in UTF-8 (4 bytes a character at most) plus room for the other fields.
        self._max_data = 4 * settings.max_text_chars + 16 * 1024
        self._idle_timeout = settings.wyoming_idle_timeout
        self._first_event_timeout = settings.wyoming_first_event_timeout
        self._write_timeout = settings.write_timeout
        self._last_active = time.monotonic()
        self._events = 0

    @property
    def busy(self) -> bool:
        """Tell whether this connection has synthesis work in flight."""
        return self._task is not None and not self._task.done()

    def idle_for(self) -> float:
        """Return the seconds since this connection last sent an event or had work in flight."""
        return 0.0 if self.busy else time.monotonic() - self._last_active

    def _touch(self, _: object = None) -> None:
        self._last_active = time.monotonic()

    def close(self) -> None:
        """Drop the connection at once (to admit a newcomer); its read loop then ends."""
        self.writer.transport.abort()

    def _read_deadline(self) -> float | None:
        """How long the next event may take: no limit while audio is being made, a short
        one for the first event (Home Assistant sends describe or synthesize at once)."""
        if self.busy:
            return None
        return self._first_event_timeout if self._events == 0 else self._idle_timeout

    async def run(self) -> None:
        """Read events until the client leaves, sends a malformed frame or stays idle too long."""
        self._is_running = True
        try:
            while self._is_running:
                try:
                    # An idle connection is closed; one waiting for its audio is not idle.
                    async with asyncio.timeout(self._read_deadline()):
                        event = await read_event(self.reader, self._max_data)
                except ProtocolError as err:
                    await self._refuse(f"malformed Wyoming event: {err}")
                    break  # the framing is lost: nothing after this can be read reliably
                except TimeoutError:
                    _LOGGER.debug("Closing a connection that sent no event in time")
                    break
                if event is None:
                    break
                self._events += 1
                self._touch()
                try:
                    await self.handle_event(event)
                except (KeyError, TypeError, ValueError, AttributeError) as err:
                    await self._refuse(f"malformed {event.type} event: {err}")
        finally:
            await self.disconnect()
            self.writer.close()

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that stops reading for write_timeout is dropped."""
        await write_within(super().write_event(event), self.writer.transport, self._write_timeout)

    async def _refuse(self, text: str) -> None:
        _LOGGER.warning("Refused: %s", log_safe(text))
        self._synthesizer.metrics.finished(_DOOR, "bad-request")
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=text, code="bad-request").event())

    async def handle_event(self, event: Event) -> bool:
        """Dispatch one event; never waits for synthesis. Malformed fields raise."""
        _check_fields(event)
        if Describe.is_type(event.type):
            await self.write_event(self._info_event)
        elif SynthesizeStart.is_type(event.type):
            self._start_stream(SynthesizeStart.from_event(event).voice)
        elif SynthesizeChunk.is_type(event.type):
            await self._add_chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            await self._stop_stream()
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # inside a stream it is the compatibility copy: ignore
                self._queue_work(self._synthesize_once(Synthesize.from_event(event)))
        else:
            _LOGGER.debug("Ignoring unexpected event: %s", event.type)
        return True

    async def disconnect(self) -> None:
        """Cancel the work of a client that went away (its upstream requests close)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def finish(self, grace: float) -> None:
        """Let in-flight work end within grace seconds, then cancel it (shutdown)."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        await self.disconnect()

    def _queue_work(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work after this connection's earlier work, so audio never interleaves."""
        self._task = asyncio.create_task(_after(self._task, work))
        # A task cancelled before its first step never runs _after, which would close work:
        # close it here (a no-op for work that ran), or it is reported as never awaited.
        self._task.add_done_callback(lambda _: work.close())
        self._task.add_done_callback(self._touch)  # idle counts from the end of its work

    # --- one-shot synthesis ---

    async def _synthesize_once(self, request: Synthesize) -> None:
        try:
            voice = self._synthesizer.resolve_voice(_voice_name(request.voice))
            parts = self._synthesizer.prepare(request.text, ssml=request.text_format == "ssml")
            pcm = self._synthesizer.synthesize(parts, voice, self._synthesizer.settings.speed)
            await self._send_audio(pcm)
        except Exception as err:
            await self._send_error(err)

    # --- streaming synthesis ---

    def _start_stream(self, voice: SynthesizeVoice | None) -> None:
        if self._stream is not None:
            raise ValueError("synthesize-start inside an open stream; send synthesize-stop first")
        stream = self._stream = _TextStream()
        self._queue_work(self._run_stream(stream, voice))

    async def _add_chunk(self, text: str) -> None:
        stream = self._stream
        if stream is None or stream.failed:
            return
        try:
            self._synthesizer.check_length(stream.chars + len(text))
        except TextError as err:
            stream.failed = True
            stream.stop()
            await self._send_error(err)
            return
        stream.add(text)

    async def _stop_stream(self) -> None:
        if self._stream is None:
            await self.write_event(SynthesizeStopped().event())
            return
        if not self._stream.stopped.is_set():
            self._stream.stop()
        self._stream = None

    async def _run_stream(self, stream: _TextStream, voice: SynthesizeVoice | None) -> None:
        try:
            resolved = self._synthesizer.resolve_voice(_voice_name(voice))
            pcm = self._synthesizer.synthesize(
                stream.parts(), resolved, self._synthesizer.settings.speed
            )
            await self._send_audio(pcm)
        except Exception as err:
            stream.failed = True
            await self._send_error(err)
        # NOTE: Home Assistant ends a streamed request only on synthesize-stopped, which
        # must follow the client's synthesize-stop and all of the audio.
        await stream.stopped.wait()
        await self.write_event(SynthesizeStopped().event())

    # --- output ---

    async def _send_audio(self, pcm: AsyncGenerator[np.ndarray, None]) -> None:
        """Send audio-start, 1024-sample chunks and audio-stop (also after a late failure)."""
        chunker = _Chunker()
        metrics = self._synthesizer.metrics
        await self.write_event(AudioStart(SAMPLE_RATE, SAMPLE_WIDTH, CHANNELS, timestamp=0).event())
        try:
            async with contextlib.aclosing(pcm):
                async for samples in pcm:
                    for chunk in chunker.push(samples):
                        await self.write_event(chunk.event())
            for chunk in chunker.flush():
                await self.write_event(chunk.event())
        except asyncio.CancelledError:
            metrics.finished(_DOOR, "cancelled")
            raise
        finally:
            if not self.writer.is_closing():
                await self.write_event(AudioStop(timestamp=chunker.timestamp_ms).event())
        metrics.finished(_DOOR, None)

    async def _send_error(self, err: Exception) -> None:
        if isinstance(err, ConnectionError) or self.writer.is_closing():
            self._synthesizer.metrics.finished(_DOOR, "cancelled")
            return
        self._synthesizer.metrics.finished(_DOOR, error_code(err))
        if error_code(err) == "internal-error":
            _LOGGER.exception("Synthesis failed", exc_info=err)
        else:
            _LOGGER.warning("Synthesis failed: %s", log_safe(str(err)))
        await self.write_event(Error(text=error_text(err), code=error_code(err)).event())


class _Chunker:
    """Cut PCM into fixed chunks with millisecond timestamps."""

    def __init__(self) -> None:
        self._buffer = np.zeros(0, dtype=np.int16)
        self._sent = 0

    @property
    def timestamp_ms(self) -> int:
        """Return the position of the next chunk in milliseconds."""
        return self._sent * 1000 // SAMPLE_RATE

    def push(self, samples: np.ndarray) -> list[AudioChunk]:
        """Return the whole chunks the buffer now holds."""
        self._buffer = np.concatenate([self._buffer, samples])
        whole = len(self._buffer) // SAMPLES_PER_CHUNK * SAMPLES_PER_CHUNK
        chunks = [
            self._chunk(self._buffer[i : i + SAMPLES_PER_CHUNK])
            for i in range(0, whole, SAMPLES_PER_CHUNK)
        ]
        self._buffer = self._buffer[whole:]
        return chunks

    def flush(self) -> list[AudioChunk]:
        """Return the last, shorter chunk."""
        rest, self._buffer = self._buffer, self._buffer[:0]
        return [self._chunk(rest)] if len(rest) else []

    def _chunk(self, samples: np.ndarray) -> AudioChunk:
        chunk = AudioChunk(
            rate=SAMPLE_RATE,
            width=SAMPLE_WIDTH,
            channels=CHANNELS,
            audio=samples.astype("<i2").tobytes(),
            timestamp=self.timestamp_ms,
        )
        self._sent += len(samples)
        return chunk


def _check_fields(event: Event) -> None:
    """Raise ValueError for fields of the wrong type (the wyoming classes do not check)."""
    data = event.data
    if "text" in data and not isinstance(data["text"], str):
        raise ValueError("'text' must be a string")
    voice = data.get("voice")
    if voice is not None and not (
        isinstance(voice, dict)
        and all(
            isinstance(voice.get(k), (str, type(None))) for k in ("name", "language", "speaker")
        )
    ):
        raise ValueError("'voice' must be an object with string name, language and speaker")
    needs_text = Synthesize.is_type(event.type) or SynthesizeChunk.is_type(event.type)
    if needs_text and not isinstance(data.get("text"), str):
        raise ValueError(f"{event.type} needs a 'text' string")


def _voice_name(voice: SynthesizeVoice | None) -> str | None:
    # Home Assistant sends name and speaker; Orpheus voices have no speakers.
    return voice.name if voice is not None else None


async def _after(previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]) -> None:
    if previous is not None:
        try:
            await asyncio.wait([previous])  # returns however previous ended
        except asyncio.CancelledError:
            work.close()  # never started: close it so it is not reported as never awaited
            raise
    await work
