"""MessagePack subset of the coreml-bridge wire protocol (docs/protocol.md, section 3).

Written from docs/protocol.md alone, standard library only.

    >>> body = encode([2, 1, {"nonce": 0}])
    >>> frame(body).hex()
    '0000000b93020181a56e6f6e636500'
    >>> decode(body)
    [2, 1, {'nonce': 0}]

Encoding is canonical: unsigned integers in the shortest form, floats as
float64, strings and containers with the shortest header, map keys in the
order the dict holds them (callers build payloads in table order). Decoding
accepts any integer encoding, float32, bin and ext (as bytes), and rejects
nesting deeper than 16 levels below the payload map.
"""

import struct

MAX_FRAME_LEN = 1 << 20
MAX_PAYLOAD_DEPTH = 16


class DecodeError(Exception):
    """The bytes are not one well-formed MessagePack value of the supported kinds."""


def encode(value):
    out = bytearray()
    _encode_into(out, value)
    return bytes(out)


def frame(body):
    """Length prefix (u32 big-endian, body only) followed by the body."""
    if not 1 <= len(body) <= MAX_FRAME_LEN:
        raise ValueError("frame body of %d bytes is outside 1..%d" % (len(body), MAX_FRAME_LEN))
    return struct.pack(">I", len(body)) + body


def _encode_into(out, value):
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _encode_uint(out, value)
    elif isinstance(value, float):
        out.append(0xCB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        n = len(raw)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes([0xD9, n])
        elif n < 0x10000:
            out.append(0xDA)
            out += struct.pack(">H", n)
        else:
            out.append(0xDB)
            out += struct.pack(">I", n)
        out += raw
    elif isinstance(value, (list, tuple)):
        _container_header(out, len(value), 0x90, 0xDC, 0xDD)
        for item in value:
            _encode_into(out, item)
    elif isinstance(value, dict):
        _container_header(out, len(value), 0x80, 0xDE, 0xDF)
        for key, item in value.items():
            _encode_into(out, key)
            _encode_into(out, item)
    else:
        raise TypeError("cannot encode %r" % (value,))


def _encode_uint(out, n):
    if n < 0:
        raise ValueError("the protocol has no signed integers: %d" % n)
    if n < 0x80:
        out.append(n)
    elif n < 0x100:
        out += bytes([0xCC, n])
    elif n < 0x10000:
        out.append(0xCD)
        out += struct.pack(">H", n)
    elif n < 0x100000000:
        out.append(0xCE)
        out += struct.pack(">I", n)
    elif n < 0x10000000000000000:
        out.append(0xCF)
        out += struct.pack(">Q", n)
    else:
        raise ValueError("integer %d does not fit in u64" % n)


def _container_header(out, n, fix, sixteen, thirtytwo):
    if n < 16:
        out.append(fix | n)
    elif n < 0x10000:
        out.append(sixteen)
        out += struct.pack(">H", n)
    else:
        out.append(thirtytwo)
        out += struct.pack(">I", n)


def decode(body):
    """Decode one value filling `body` exactly (trailing bytes are an error)."""
    reader = _Reader(body)
    # The envelope array is not counted: its elements (the payload map) sit at depth 0.
    value = reader.value(-1)
    if reader.pos != len(body):
        raise DecodeError("%d trailing bytes after the value" % (len(body) - reader.pos))
    return value


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise DecodeError("value runs past the end of the body")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, depth):
        if depth > MAX_PAYLOAD_DEPTH:
            raise DecodeError("nesting deeper than %d" % MAX_PAYLOAD_DEPTH)
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        fixed = {
            0xCA: ">f", 0xCB: ">d",
            0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
        }
        if b in fixed:
            return self.unpack(fixed[b])
        if b in (0xC4, 0xC5, 0xC6):
            return bytes(self.take(self.unpack({0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[b])))
        if b in (0xD9, 0xDA, 0xDB):
            return self.text(self.unpack({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[b]))
        if b in (0xDC, 0xDD):
            return self.array(self.unpack(">H" if b == 0xDC else ">I"), depth)
        if b in (0xDE, 0xDF):
            return self.map(self.unpack(">H" if b == 0xDE else ">I"), depth)
        ext_fixed = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
        if b in ext_fixed:
            self.take(1)
            return bytes(self.take(ext_fixed[b]))
        if b in (0xC7, 0xC8, 0xC9):
            n = self.unpack({0xC7: ">B", 0xC8: ">H", 0xC9: ">I"}[b])
            self.take(1)
            return bytes(self.take(n))
        raise DecodeError("byte 0x%02x is not a MessagePack type" % b)

    def text(self, n):
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as err:
            raise DecodeError("string is not UTF-8: %s" % err)

    def array(self, n, depth):
        if n > len(self.data) - self.pos:
            raise DecodeError("array of %d elements in %d bytes" % (n, len(self.data) - self.pos))
        return [self.value(depth + 1) for _ in range(n)]

    def map(self, n, depth):
        if 2 * n > len(self.data) - self.pos:
            raise DecodeError("map of %d entries in %d bytes" % (n, len(self.data) - self.pos))
        out = {}
        for _ in range(n):
            key = self.value(depth + 1)
            if not isinstance(key, str):
                raise DecodeError("map key %r is not a string" % (key,))
            out[key] = self.value(depth + 1)
        return out
