"""Wyoming events: describe/info, synthesize, streaming synthesis, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Coroutine
from typing import Any

import numpy as np
from wyoming.audio import AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .. import __version__
from ..config import LimitSettings
from ..errors import BadRequest, error_code, error_text
from ..format import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from ..outcomes import client_gone, record
from ..sockets import write_within
from ..synthesis.synthesizer import Synthesizer
from ..text import TextError
from ..voices import VoiceCatalog
from .audio_out import Chunker
from .protocol import ProtocolError, read_event
from .text_in import TextStream

_LOGGER = logging.getLogger(__name__)

_DOOR = "wyoming"  # the metrics label of this front door
CANCEL_WAIT = 5.0
"""Seconds a closed connection waits for its cancelled work before it lets go of it."""
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


class OrpheusEventHandler:
    """One client connection; synthesis runs in tasks so events keep being read.

    NOTE: issue 30: this subclassed wyoming's AsyncEventHandler, replaced its `run()` and set
    its private `_is_running`. It is its own class now and uses the wyoming package's public
    API only (Event, the event classes, `async_write_event`); reading is protocol.py's.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        synthesizer: Synthesizer,
        limits: LimitSettings,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._info_event = info.event()
        self._synthesizer = synthesizer
        self._stream: TextStream | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """Every unfinished piece of work: a hang-up cancels them all, not only the last."""
        self._last: asyncio.Task[None] | None = None
        # A whole text in UTF-8 (4 bytes a character at most) plus room for the other fields.
        self._max_data = 4 * synthesizer.speech.max_text_chars + 16 * 1024
        self._idle_timeout = limits.wyoming_idle_timeout
        self._first_event_timeout = limits.wyoming_first_event_timeout
        self._write_timeout = limits.write_timeout
        self._last_active = time.monotonic()
        self._events = 0

    @property
    def busy(self) -> bool:
        """Tell whether this connection has synthesis work in flight."""
        return bool(self._tasks)

    def idle_for(self) -> float:
        """Return the seconds since this connection last sent an event or had work in flight."""
        return 0.0 if self.busy else time.monotonic() - self._last_active

    def _touch(self, _: object = None) -> None:
        self._last_active = time.monotonic()

    def close(self) -> None:
        """Drop the connection at once (to admit a newcomer); its read loop then ends."""
        self.writer.transport.abort()

    async def stop(self) -> None:
        """Close the connection after what was written (a shutdown); the read loop then ends."""
        self.writer.close()
        self.reader.feed_eof()

    def _read_deadline(self) -> float | None:
        """How long the next event may take: no limit while audio is being made, a short
        one for the first event (Home Assistant sends describe or synthesize at once)."""
        if self.busy:
            return None
        return self._first_event_timeout if self._events == 0 else self._idle_timeout

    async def run(self) -> None:
        """Read events until the client leaves, sends a malformed frame or stays idle too long."""
        try:
            while True:
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
            # NOTE: issue 25: this runs when the client hung up or our task is cancelled;
            # nothing here may wait on the client. Closing is synchronous, and the work's
            # cancellation is awaited with a bound, so the connection always ends.
            self.writer.close()
            await self.disconnect()

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that stops reading for write_timeout is dropped."""
        await write_within(
            async_write_event(event, self.writer), self.writer.transport, self._write_timeout
        )

    async def _refuse(self, text: str) -> None:
        err = BadRequest(text)
        record(self._synthesizer.metrics, _DOOR, err)
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=text, code=err.code).event())

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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # asyncio.wait never raises the tasks' outcomes, and raises our own cancellation.
        _done, stuck = await asyncio.wait(tasks, timeout=CANCEL_WAIT)
        if stuck:
            _LOGGER.error("%d tasks of a closed connection ignored their cancellation", len(stuck))

    async def finish(self, grace: float) -> None:
        """Let in-flight work end within grace seconds, then cancel it (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        await self.disconnect()

    def _queue_work(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work after this connection's earlier work, so audio never interleaves."""
        task = asyncio.create_task(_after(self._last, work))
        self._last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never runs _after, which would close work:
        # close it here (a no-op for work that ran), or it is reported as never awaited.
        task.add_done_callback(lambda _: work.close())
        task.add_done_callback(self._touch)  # idle counts from the end of its work

    # --- one-shot synthesis ---

    async def _synthesize_once(self, request: Synthesize) -> None:
        try:
            await self._counted(self._speak_once(request))
        except Exception as err:
            await self._send_error(err)

    async def _speak_once(self, request: Synthesize) -> None:
        voice = self._synthesizer.resolve_voice(_voice_name(request.voice))
        parts = self._synthesizer.prepare(request.text, ssml=request.text_format == "ssml")
        await self._send_audio(
            self._synthesizer.synthesize(parts, voice, self._synthesizer.speech.speed)
        )

    # --- streaming synthesis ---

    def _start_stream(self, voice: SynthesizeVoice | None) -> None:
        if self._stream is not None:
            raise ValueError("synthesize-start inside an open stream; send synthesize-stop first")
        stream = self._stream = TextStream()
        self._queue_work(self._run_stream(stream, voice))

    async def _add_chunk(self, text: str) -> None:
        stream = self._stream
        if stream is None or stream.failed:
            return
        try:
            self._synthesizer.check_length(stream.chars + len(text))
        except TextError as err:
            stream.failed = True
            stream.refusal = err
            stream.stop()  # what came so far is still spoken
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

    async def _run_stream(self, stream: TextStream, voice: SynthesizeVoice | None) -> None:
        try:
            await self._counted(self._speak_stream(stream, voice))
        except Exception as err:
            stream.failed = True
            if err is not stream.refusal:  # a refusal was answered when it happened
                await self._send_error(err)
        # NOTE: Home Assistant ends a streamed request only on synthesize-stopped, which
        # must follow the client's synthesize-stop and all of the audio.
        await stream.stopped.wait()
        await self.write_event(SynthesizeStopped().event())

    async def _speak_stream(self, stream: TextStream, voice: SynthesizeVoice | None) -> None:
        resolved = self._synthesizer.resolve_voice(_voice_name(voice))
        await self._send_audio(
            self._synthesizer.synthesize(stream.parts(), resolved, self._synthesizer.speech.speed)
        )
        if stream.refusal is not None:
            raise stream.refusal

    # --- output ---

    async def _send_audio(self, pcm: AsyncGenerator[np.ndarray, None]) -> None:
        """Send audio-start, 1024-sample chunks and audio-stop (also after a late failure)."""
        chunker = Chunker()
        await self.write_event(AudioStart(SAMPLE_RATE, SAMPLE_WIDTH, CHANNELS, timestamp=0).event())
        try:
            async with contextlib.aclosing(pcm):
                async for samples in pcm:
                    for chunk in chunker.push(samples):
                        await self.write_event(chunk.event())
            for chunk in chunker.flush():
                await self.write_event(chunk.event())
        except ConnectionError:
            raise  # the client is gone: nothing more can reach it
        except Exception:
            # A late failure: end the audio the client has, then the error event follows.
            # NOTE: issue 25: not in a `finally`: on cancellation (a hang-up) this write
            # raised ConnectionResetError, which replaced the CancelledError.
            await self.write_event(AudioStop(timestamp=chunker.timestamp_ms).event())
            raise
        await self.write_event(AudioStop(timestamp=chunker.timestamp_ms).event())

    async def _counted(self, work: Awaitable[None]) -> None:
        """Run one synthesis; count and log how it ended (outcomes.record, shared with HTTP)."""
        try:
            await work
        except BaseException as err:
            record(self._synthesizer.metrics, _DOOR, err)
            raise
        record(self._synthesizer.metrics, _DOOR, None)

    async def _send_error(self, err: Exception) -> None:
        """Tell the client why its request failed (it was counted where it ended)."""
        if client_gone(err) or self.writer.is_closing():
            return
        await self.write_event(Error(text=error_text(err), code=error_code(err)).event())


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
