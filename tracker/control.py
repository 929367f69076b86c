"""The local control channel between the CLI and the running bot.

A Unix socket beside the store (``users.json.sock``, mode 0600, so only the
owner of the data can talk to the bot). The protocol is one JSON object per
line each way: the client sends a request such as ``{"cmd": "ping"}``, the
server answers ``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``
and closes the connection. Every read and write has a bounded timeout, so a
stuck peer can never hang the CLI or pile up connections in the bot.

Anything a client sends (too long, not UTF-8, not JSON, nested too deeply, a
number too long to convert, not an object, an unknown or oversized ``cmd``) gets
one JSON error line back; only a handler's own bug is logged with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Largest request or reply line accepted, in bytes.
MAX_LINE = 64 * 1024
#: How long the server waits for a client's request line.
READ_TIMEOUT = 5.0
#: How long the server lets a handler run before answering with an error.
HANDLER_TIMEOUT = 60.0
#: Longest ``cmd`` accepted (every real command is a short word; errors quote it).
MAX_CMD = 64

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The control channel failed (timeout, bad reply, cannot listen); one-line message."""


class BotNotRunning(ControlError):
    """Nobody listens on the control socket: the bot is not running on this store."""


def socket_path_for(store_path: Path) -> Path:
    """The control socket of the bot that runs on ``store_path``: the store path + ``.sock``."""
    return Path(str(store_path) + ".sock")


#: Longest socket path bind()/connect() take as is (sun_path is 108 bytes on Linux, 104 on BSDs).
_SUN_PATH_MAX = 100


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """A name for ``path`` that fits a Unix socket address.

    A deep data folder easily exceeds the ~100 bytes of ``sun_path``. On Linux the
    folder can then be reached through an open descriptor, ``/proc/self/fd/N/name``,
    which is short and resolves to the same file (no process-wide ``chdir``).
    """
    text = str(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX or not os.path.isdir("/proc/self/fd"):
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _is_live(path: Path, timeout: float = 1.0) -> bool:
    """True when something accepts connections on the socket file ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        with _addressable(path) as address:
            probe.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        # Timeout (a full backlog) or permission: someone is there, or it is not ours.
        return True
    else:
        return True
    finally:
        probe.close()


class ControlServer:
    """Serves requests on a Unix socket; ``handler`` turns a request dict into a reply dict."""

    def __init__(self, socket_path: Path, handler: Handler) -> None:
        self.socket_path = Path(socket_path)
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._identity: tuple[int, int] | None = None

    async def start(self) -> None:
        """Listen on the socket (replacing a stale socket file); raises ControlError."""
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None:
            if not stat.S_ISSOCK(mode):
                raise ControlError(f"cannot listen on {path}: the path exists and is not a socket")
            if _is_live(path):
                raise ControlError(f"cannot listen on {path}: another process already serves it")
            log.info("removing stale control socket %s", path)
        # Bind under a temporary name, restrict it to the owner, then rename it into
        # place: the socket is never reachable at its public path with wider permissions,
        # and a stale file is replaced atomically.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with _addressable(tmp) as address:
                sock.bind(address)
            os.chmod(tmp, 0o600)
            sock.listen(16)
            os.replace(tmp, path)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ControlError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        info = path.stat()
        self._identity = (info.st_dev, info.st_ino)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)

    async def stop(self) -> None:
        """Stop listening and remove the socket file (only if it is still ours)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        try:
            info = self.socket_path.stat()
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._identity:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                reply = await self._reply(reader)
            except Exception as exc:  # no connection without an answer, no traceback from a client's bytes
                log.warning("control request failed: %s: %s", type(exc).__name__, exc)
                reply = {"ok": False, "error": f"bad request: {type(exc).__name__}"}
            writer.write(_encode_reply(reply))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.debug("control client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _reply(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": f"no request line within {READ_TIMEOUT:g} s"}
        except (asyncio.LimitOverrunError, ValueError):
            return {"ok": False, "error": f"request longer than {MAX_LINE} bytes"}
        request_obj, problem = _parse_request(line)
        if request_obj is None:
            return {"ok": False, "error": f"bad request: {problem}"}
        try:
            reply = await asyncio.wait_for(self._handler(request_obj), HANDLER_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": f"{request_obj['cmd']}: no result within {HANDLER_TIMEOUT:g} s"}
        except Exception as exc:  # a handler bug must not kill the server; the client gets one line
            log.exception("control command %r failed", request_obj.get("cmd"))
            return {"ok": False, "error": f"{request_obj['cmd']} failed: {type(exc).__name__}: {exc}"}
        if not isinstance(reply, dict) or "ok" not in reply:
            return {"ok": False, "error": f"{request_obj['cmd']}: the handler gave no valid reply"}
        return reply


def _parse_request(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The request object of one line, or None and what is wrong with it (one line)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"
    try:
        request_obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc})"
    except ValueError:  # not a JSONDecodeError: an integer beyond int_max_str_digits
        return None, "a number in it is too long"
    except RecursionError:
        return None, "nested too deeply"
    if not isinstance(request_obj, dict) or not isinstance(request_obj.get("cmd"), str):
        return None, 'expected an object like {"cmd": "ping"}'
    if len(request_obj["cmd"]) > MAX_CMD:
        return None, f"cmd longer than {MAX_CMD} characters"
    return request_obj, ""


def _encode_reply(reply: dict[str, Any]) -> bytes:
    """One reply line. ASCII escapes: a lone surrogate (valid in JSON input) cannot break UTF-8."""
    try:
        data = json.dumps(reply, ensure_ascii=True).encode("ascii") + b"\n"
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("control reply not encodable: %s: %s", type(exc).__name__, exc)
        data = b'{"ok": false, "error": "the reply could not be encoded"}\n'
    if len(data) > MAX_LINE:
        data = json.dumps({"ok": False, "error": f"reply longer than {MAX_LINE} bytes"}).encode() + b"\n"
    return data


def request(socket_path: Path, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the bot and return its reply (sync; for the CLI).

    Raises :class:`BotNotRunning` when nobody listens on ``socket_path`` (no file,
    or a stale one), :class:`ControlError` on a timeout or a malformed reply.
    """
    path = Path(socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            with _addressable(path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise BotNotRunning(f"no bot is listening on {path}") from None
        except PermissionError:
            raise ControlError(f"no permission to use the control socket {path}") from None
        except TimeoutError:
            raise ControlError(
                f"the bot did not accept a connection on {path} within {timeout:g} s"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n"
        buffer = bytearray()
        try:
            sock.sendall(data)
            while b"\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > MAX_LINE:
                    raise ControlError(f"reply from {path} is longer than {MAX_LINE} bytes")
        except TimeoutError:
            raise ControlError(f"the bot did not answer on {path} within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"control channel {path} failed: {exc.strerror or exc}") from None
    finally:
        sock.close()
    line = bytes(buffer).split(b"\n", 1)[0]
    if not line:
        raise ControlError(f"the bot closed {path} without answering")
    try:
        reply = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"malformed reply from {path}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError(f"malformed reply from {path}")
    return reply

