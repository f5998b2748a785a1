"""The WeChat push protocol: signatures, safe-mode (AES) crypto, entity-safe XML in and out.

wechatpy gets the bytes right but compares digests with `!=`, trusts the PKCS#7 padding byte and the
length field, parses with whatever xmltodict does, and puts user text into CDATA without escaping
`]]>`. This module does the same protocol with those holes closed; tests pin it to the official
vectors in shared/wechat-protocol.md and to wechatpy's output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
import time
from typing import Any
from xml.parsers import expat

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TIMESTAMP_WINDOW_SECONDS = 300
_MAX_DEPTH = 6
_MAX_ELEMENTS = 400


class ProtocolError(ValueError):
    """A push that does not follow the protocol; `status` is the HTTP answer (400 or 403)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------- signatures


def signature(*parts: str) -> str:
    """sha1 over the parts sorted and joined, as WeChat signs `[token, timestamp, nonce(, Encrypt)]`."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def digest_equal(expected: str, given: str | None) -> bool:
    """Constant-time comparison of hex digests (`given` may be missing)."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("ascii", "replace"))


def check_timestamp(
    timestamp: str | None, now: float | None = None, window: int = TIMESTAMP_WINDOW_SECONDS
) -> None:
    """Refuse a missing, malformed or stale timestamp (a replay) with 403."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise ProtocolError("bad timestamp", 403)
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window:
        raise ProtocolError("timestamp outside the window", 403)


def verify_signature(token: str, sig: str | None, timestamp: str | None, nonce: str | None) -> None:
    """Check the plain `signature` query parameter (raises ProtocolError 403)."""
    if not sig or timestamp is None or nonce is None:
        raise ProtocolError("missing signature", 403)
    if not digest_equal(signature(token, timestamp, nonce), sig):
        raise ProtocolError("bad signature", 403)


# ---------------------------------------------------------------- AES (safe mode)


class WeChatAES:
    """AES-256-CBC of safe mode: key = b64decode(EncodingAESKey + '='), IV = key[:16], PKCS#7 to 32."""

    BLOCK = 32

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.key = base64.b64decode(encoding_aes_key + "=")
        if len(self.key) != 32:
            raise ValueError("EncodingAESKey does not decode to 32 bytes")
        self.app_id = app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, plaintext: str, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of 16 random bytes + length + message + AppID."""
        body = plaintext.encode("utf-8")
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        raw = prefix + struct.pack(">I", len(body)) + body + self.app_id.encode("utf-8")
        pad = self.BLOCK - len(raw) % self.BLOCK
        raw += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        """The message inside `encrypted`; ProtocolError(400) for anything malformed, 403 for a wrong AppID."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise ProtocolError("Encrypt has a bad length")
        decryptor = self._cipher().decryptor()
        raw = decryptor.update(data) + decryptor.finalize()
        pad = raw[-1]
        if not 1 <= pad <= self.BLOCK or raw[-pad:] != bytes([pad]) * pad:
            raise ProtocolError("bad padding")
        raw = raw[:-pad]
        if len(raw) < 20:
            raise ProtocolError("plaintext too short")
        (length,) = struct.unpack(">I", raw[16:20])
        if 20 + length > len(raw):
            raise ProtocolError("bad length field")
        message, app_id = raw[20 : 20 + length], raw[20 + length :]
        if not hmac.compare_digest(app_id, self.app_id.encode("utf-8")):
            raise ProtocolError("wrong AppID", 403)
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message is not UTF-8") from None


def verify_msg_signature(token: str, msg_sig: str | None, timestamp: str, nonce: str, encrypted: str) -> None:
    """Check `msg_signature` = sha1(sorted[token, timestamp, nonce, Encrypt]) (raises ProtocolError 403)."""
    if not digest_equal(signature(token, timestamp, nonce, encrypted), msg_sig):
        raise ProtocolError("bad msg_signature", 403)


def encrypt_reply(
    aes: WeChatAES, token: str, reply_xml: str, nonce: str | None = None, timestamp: str | None = None
) -> str:
    """The safe-mode envelope of a passive reply."""
    nonce = nonce or str(secrets.randbelow(10**10))
    timestamp = timestamp or str(int(time.time()))
    encrypted = aes.encrypt(reply_xml)
    sig = signature(token, timestamp, nonce, encrypted)
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )


# ---------------------------------------------------------------- XML in


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """Parse a push into a dict of the root's children (nested elements become dicts).

    Doctype and entity declarations, external entities, deep nesting and huge element counts are
    refused with ProtocolError(400): the parser never expands or fetches anything.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not body.strip():
        raise ProtocolError("empty body")
    parser = expat.ParserCreate("utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[tuple[str, dict[str, Any], list[str]]] = []
    result: dict[str, Any] = {}
    count = 0

    def refuse(*_args: Any) -> None:
        raise ProtocolError("DTD or entity declarations are not accepted")

    def start(name: str, _attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > _MAX_ELEMENTS or len(stack) >= _MAX_DEPTH:
            raise ProtocolError("XML too large or too deep")
        stack.append((name, {}, []))

    def end(name: str) -> None:
        _name, children, texts = stack.pop()
        value: Any = children if children else "".join(texts)
        if stack:
            parent = stack[-1][1]
            if name in parent:  # repeated element (e.g. Articles/item): keep them all
                existing = parent[name]
                parent[name] = existing + [value] if isinstance(existing, list) else [existing, value]
            else:
                parent[name] = value
        else:
            result["__root__"] = name
            result.update(children if isinstance(value, dict) else {})

    def chars(data: str) -> None:
        if stack:
            stack[-1][2].append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.SkippedEntityHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise ProtocolError(f"malformed XML: {exc}") from None
    except RecursionError:
        raise ProtocolError("XML too deep") from None
    if result.pop("__root__", None) != "xml":
        raise ProtocolError("root element must be <xml>")
    return result


# ---------------------------------------------------------------- XML out

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters, lone surrogates)."""
    return _CONTROL.sub("", text)


def cdata(text: str) -> str:
    """A CDATA section that survives any content: `]]>` is split across two sections."""
    return "<![CDATA[" + clean_text(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: Any) -> str:
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    return f"<{name}>{cdata(str(value))}</{name}>"


def text_reply(to_user: str, from_user: str, content: str, create_time: int | None = None) -> str:
    """A passive text reply."""
    return (
        "<xml>"
        + _element("ToUserName", to_user)
        + _element("FromUserName", from_user)
        + _element("CreateTime", create_time or int(time.time()))
        + _element("MsgType", "text")
        + _element("Content", content)
        + "</xml>"
    )


def news_reply(
    to_user: str, from_user: str, articles: list[dict[str, str]], create_time: int | None = None
) -> str:
    """A passive news (图文) reply; each article has title, description, picurl, url."""
    items = "".join(
        "<item>"
        + _element("Title", a.get("title", ""))
        + _element("Description", a.get("description", ""))
        + _element("PicUrl", a.get("picurl", ""))
        + _element("Url", a.get("url", ""))
        + "</item>"
        for a in articles
    )
    return (
        "<xml>"
        + _element("ToUserName", to_user)
        + _element("FromUserName", from_user)
        + _element("CreateTime", create_time or int(time.time()))
        + _element("MsgType", "news")
        + _element("ArticleCount", len(articles))
        + f"<Articles>{items}</Articles>"
        + "</xml>"
    )
