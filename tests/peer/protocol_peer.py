#!/usr/bin/env python3
"""A coreml-bridge helper written from docs/protocol.md alone (Python 3, stdlib only).

It serves toy models described by a JSON source file, so that the page can be
checked against the Rust supervisor by a second, independent implementation:

    $ cat add.toymodel
    {"op": "add", "shape": [2, 3]}
    $ protocol_peer.py --ipc-fd 3    # started by the supervisor

Models (all float32, the shape from the source file):
  add       inputs `a`, `b`  -> output `sum` = a + b
  identity  input  `x`       -> output `y`   = x
With `"pad": k` in the source (rank 2 or more), outputs are written with rows
padded by k elements inside the slot's room (docs/protocol.md section 5), as
Neural-Engine outputs are.
An input element that is NaN fails the prediction with PREDICT_FAILED, and a
source that is not a toy model fails Compile with COMPILE_FAILED, so typed
errors can be checked end to end. `COREML_PEER_PROTOCOL=M.m` makes the peer
announce another version in Hello (section 7), with an extra Hello field when
the minor is newer than 2.1; it exits with status 3 when the supervisor
refuses it.
"""

import json
import mmap
import os
import resource
import socket
import struct
import sys
import time

import msgpack_codec as mp
import peer_tensors as tensors

PROTOCOL = (2, 1)
HEADER = struct.Struct(">I")

# Tags (docs/protocol.md section 8).
HELLO, PING, PONG, SHUTDOWN, SHUTDOWN_ACK, ERROR, WELCOME = 1, 2, 3, 4, 5, 6, 7
ATTACH, ATTACHED, DETACH, DETACHED = 10, 11, 12, 13
COMPILE, COMPILED, LOAD, LOADED, UNLOAD, UNLOADED, GET_PLAN, PLAN = 20, 21, 22, 23, 24, 25, 26, 27
PREDICT, PREDICTED, INPUTS_RELEASED, GET_STATS, STATS = 30, 31, 32, 40, 41
NOT_REQUESTS = {HELLO, PONG, SHUTDOWN_ACK, ERROR, WELCOME, ATTACHED, DETACHED, COMPILED, LOADED,
                UNLOADED, PLAN, PREDICTED, INPUTS_RELEASED, STATS}

# Error codes (section 4).
BAD_REQUEST, UNKNOWN_MODEL, COMPILE_FAILED, LOAD_FAILED, SCHEMA_MISMATCH, TIMEOUT = 1, 2, 3, 4, 5, 6
UNSUPPORTED, INTERNAL, SHM_FAILED, UNKNOWN_MESSAGE, PREDICT_FAILED = 9, 10, 11, 13, 14
INCOMPATIBLE_VERSION = 15

F32 = 1
CPU_ONLY = 0
NEURALNETWORK = 2


class Fail(Exception):
    """A request fails with a typed `Error` reply."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Connection:
    """Frames over the socket, with the descriptor FIFO of section 6."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.fds = []

    def send(self, tag, request_id, payload):
        self.sock.sendall(mp.frame(mp.encode([tag, request_id, payload])))

    def _fill(self):
        data, ancdata, flags, _ = self.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(16 * 4), getattr(socket, "MSG_CMSG_CLOEXEC", 0))
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(raw) - len(raw) % 4
                self.fds.extend(struct.unpack("%di" % (usable // 4), raw[:usable]))
        if flags & socket.MSG_CTRUNC:
            sys.exit("descriptors were truncated (MSG_CTRUNC)")
        if not data:
            return False
        self.buf += data
        return True

    def next_body(self):
        """The next frame's body, or None at end of stream. Bad lengths are fatal."""
        while len(self.buf) < 4:
            if not self._fill():
                if self.buf:
                    sys.exit("stream ended inside a frame prefix")
                return None
        (length,) = HEADER.unpack_from(self.buf)
        if not 1 <= length <= mp.MAX_FRAME_LEN:
            sys.exit("frame length %d is out of range: stream lost sync" % length)
        while len(self.buf) < 4 + length:
            if not self._fill():
                sys.exit("stream ended inside a frame body")
        body = bytes(self.buf[4 : 4 + length])
        del self.buf[: 4 + length]
        return body

    def take_fd(self):
        return self.fds.pop(0) if self.fds else None


def field(payload, name, kind, optional=False):
    value = payload.get(name)
    if value is None and optional:
        return None
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise Fail(BAD_REQUEST, "field %s must be an unsigned integer" % name)
    if kind is not int and not isinstance(value, kind):
        raise Fail(BAD_REQUEST, "field %s must be %s" % (name, kind.__name__))
    return value


class Peer:
    def __init__(self, conn, version=PROTOCOL):
        self.conn = conn
        self.version = version
        self.regions = {}  # id -> mmap
        self.models = {}  # id -> (op, shape)
        self.requests = self.errors = self.predictions = 0
        self.minor = version[1]

    def handshake(self):
        self.conn.send(HELLO, 0, {
            "protocol_major": self.version[0], "protocol_minor": self.version[1],
            "helper_version": "protocol-peer 1", "os": os.uname().sysname,
            "os_build": os.uname().release, "chip": os.uname().machine,
            "coreml_version": None, "compute_units": [CPU_ONLY], "sandboxed": False,
            "sandbox_detail": "python peer; the supervisor's sandbox only",
            "engine": "diagnostic", "pid": os.getpid(),
            # A newer minor may append optional fields; Hello goes out before any
            # negotiation, so an announced 2.2+ peer shows one (the receiver ignores it).
            **({"future_field": [1, {"nested": None}]} if self.version[1] > PROTOCOL[1] else {}),
        })
        body = self.conn.next_body()
        if body is None:
            sys.exit("supervisor closed the socket before Welcome")
        tag, _, payload = mp.decode(body)
        if tag == ERROR:
            print("refused (code %r): %s" % (payload.get("code"), payload.get("message")), file=sys.stderr)
            sys.exit(3)
        if tag != WELCOME or payload.get("protocol_major") != self.version[0]:
            sys.exit("expected Welcome, got tag %r" % tag)
        # Both sides use the smaller minor from now on (this peer has nothing newer than 2.1).
        self.minor = min(self.version[1], payload["protocol_minor"])
        print("negotiated %d.%d" % (self.version[0], self.minor), file=sys.stderr)

    def serve(self):
        while True:
            body = self.conn.next_body()
            if body is None:
                return 0
            try:
                envelope = mp.decode(body)
                tag, request_id, payload = envelope
                if not (isinstance(tag, int) and isinstance(request_id, int) and isinstance(payload, dict)):
                    raise ValueError("envelope types")
            except (mp.DecodeError, ValueError, TypeError) as err:
                self.errors += 1
                self.conn.send(ERROR, 0, {"code": BAD_REQUEST, "message": "undecodable frame: %s" % err})
                continue
            self.requests += 1
            if tag == SHUTDOWN:
                self.conn.send(SHUTDOWN_ACK, request_id, {})
                return 0
            try:
                reply_tag, reply = self.dispatch(tag, payload)
            except Fail as fail:
                self.errors += 1
                self.conn.send(ERROR, request_id, {"code": fail.code, "message": fail.message})
                continue
            self.conn.send(reply_tag, request_id, reply)

    def dispatch(self, tag, p):
        if tag == PING:
            return PONG, {"nonce": field(p, "nonce", int)}
        if tag == ATTACH:
            return ATTACHED, {"region": self.attach(field(p, "region", int), field(p, "size", int))}
        if tag == DETACH:
            region = field(p, "region", int)
            if region not in self.regions:
                raise Fail(BAD_REQUEST, "region %d is not attached" % region)
            self.regions.pop(region).close()
            return DETACHED, {"region": region}
        if tag == COMPILE:
            return COMPILED, self.compile(p)
        if tag == LOAD:
            return LOADED, self.load(p)
        if tag == UNLOAD:
            model_id = field(p, "model_id", int)
            if self.models.pop(model_id, None) is None:
                raise Fail(UNKNOWN_MODEL, "model %d is not loaded" % model_id)
            return UNLOADED, {"model_id": model_id}
        if tag == GET_PLAN:
            model_id = self.model(p)[0]
            return PLAN, {"model_id": model_id, "ops": [], "ne_coverage": None,
                          "unavailable_reason": "the protocol peer has no compute plan"}
        if tag == PREDICT:
            return PREDICTED, self.predict(p)
        if tag == GET_STATS:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with open("/proc/self/statm") as statm:
                rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            return STATS, {"rss_bytes": rss, "peak_rss_bytes": usage.ru_maxrss * 1024,
                           "requests": self.requests, "errors": self.errors,
                           "predictions": self.predictions, "models_loaded": len(self.models),
                           "regions_attached": len(self.regions)}
        if tag in NOT_REQUESTS:
            raise Fail(BAD_REQUEST, "tag %d is not a request" % tag)
        raise Fail(UNKNOWN_MESSAGE, "unknown tag %d" % tag)

    def attach(self, region, size):
        fd = self.conn.take_fd()
        if fd is None:
            raise Fail(SHM_FAILED, "AttachRegion came without a descriptor")
        try:
            if region in self.regions or size == 0:
                raise Fail(BAD_REQUEST, "region %d already attached or of size 0" % region)
            if os.fstat(fd).st_size < size:
                raise Fail(SHM_FAILED, "region %d holds fewer than %d bytes" % (region, size))
            try:
                self.regions[region] = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            except (OSError, ValueError) as err:
                raise Fail(SHM_FAILED, "cannot map region %d: %s" % (region, err))
        finally:
            os.close(fd)
        return region

    def compile(self, p):
        started = time.monotonic()
        source = field(p, "source_path", str)
        staging = field(p, "staging_dir", str)
        field(p, "compute_units", int)
        field(p, "deadline_us", int, optional=True)
        model = read_toy_model(source, COMPILE_FAILED)
        name = os.path.splitext(os.path.basename(source))[0] or "model"
        bundle = os.path.join(os.path.realpath(staging), name + ".mlmodelc")
        try:
            os.makedirs(bundle, exist_ok=True)
            with open(os.path.join(bundle, "model.json"), "w") as out:
                json.dump(model, out)
        except OSError as err:
            raise Fail(COMPILE_FAILED, "cannot write %s: %s" % (bundle, err))
        return {"bundle_path": bundle, "backend": NEURALNETWORK,
                "compile_us": int((time.monotonic() - started) * 1e6)}

    def load(self, p):
        started = time.monotonic()
        model_id = field(p, "model_id", int)
        bundle = field(p, "bundle_path", str)
        units = field(p, "compute_units", int)
        field(p, "deadline_us", int, optional=True)
        if model_id in self.models:
            raise Fail(BAD_REQUEST, "model id %d is already loaded" % model_id)
        self.models[model_id] = read_toy_model(os.path.join(bundle, "model.json"), LOAD_FAILED)
        inputs, outputs = self.schema(model_id)
        spec = lambda name: {"name": name, "dtype": F32, "shape": self.models[model_id]["shape"],
                             "enumerated_shapes": [], "shape_ranges": [], "optional": False}
        del units  # only the CPU exists here
        return {"model_id": model_id, "inputs": [spec(n) for n in inputs],
                "outputs": [spec(n) for n in outputs], "compute_units": CPU_ONLY,
                "load_us": int((time.monotonic() - started) * 1e6)}

    def schema(self, model_id):
        op = self.models[model_id]["op"]
        return (["a", "b"], ["sum"]) if op == "add" else (["x"], ["y"])

    def model(self, p):
        model_id = field(p, "model_id", int)
        if model_id not in self.models:
            raise Fail(UNKNOWN_MODEL, "model %d is not loaded" % model_id)
        return model_id, self.models[model_id]

    def predict(self, p):
        received = time.monotonic()
        model_id, model = self.model(p)
        op, shape = model["op"], model["shape"]
        deadline_us = field(p, "deadline_us", int)
        want_in, want_out = self.schema(model_id)
        ins = self.named_refs(field(p, "inputs", list), want_in, shape)
        outs = self.named_refs(field(p, "outputs", list), want_out, shape)
        values = {}
        for name, ref in ins.items():
            values[name] = tensors.read_f32(self.regions[ref["region"]], ref)
            for i, v in enumerate(values[name]):
                if v != v:
                    raise Fail(PREDICT_FAILED, "input %s holds NaN at element %d" % (name, i))
        marshal_in = time.monotonic()
        if op == "add":
            result = {"sum": [a + b for a, b in zip(values["a"], values["b"])]}
        else:
            result = {"y": list(values["x"])}
        computed = time.monotonic()
        if deadline_us and (computed - received) * 1e6 > deadline_us:
            raise Fail(TIMEOUT, "deadline of %d us passed" % deadline_us)
        written = {}
        for name, slot in outs.items():
            ref = tensors.padded(slot, model.get("pad", 0))
            if tensors.check_ref(ref, self.regions) is not None or \
                    ref["len"] > tensors.room(slot["len"]):
                raise Fail(INTERNAL, "padded output %s does not fit its slot" % name)
            tensors.write_f32(self.regions[ref["region"]], ref, result[name])
            written[name] = ref
        self.predictions += 1
        reply = {"model_id": model_id,
                 "outputs": [{"name": n, "tensor": written[n]} for n in want_out],
                 "inputs_retained": False,
                 "marshal_in_us": int((marshal_in - received) * 1e6),
                 "predict_us": int((computed - marshal_in) * 1e6),
                 "marshal_out_us": int((time.monotonic() - computed) * 1e6)}
        reply["outputs_in_place"] = len(outs)  # since 2.0: every major-2 peer has it
        return reply

    def named_refs(self, named, want, shape):
        refs = {}
        for item in named:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                    or not isinstance(item.get("tensor"), dict):
                raise Fail(BAD_REQUEST, "a NamedTensor must be {name, tensor}")
            refs[item["name"]] = item["tensor"]
        if sorted(refs) != sorted(want) or len(named) != len(want):
            raise Fail(SCHEMA_MISMATCH, "features %s, the model has %s" % (sorted(refs), want))
        for name, ref in refs.items():
            problem = tensors.check_ref(ref, self.regions)
            if problem is not None:
                raise Fail(*problem)
            if ref["dtype"] != F32 or list(ref["shape"]) != list(shape):
                raise Fail(SCHEMA_MISMATCH, "%s: dtype %r shape %r, the model has f32 %r"
                           % (name, ref["dtype"], ref["shape"], shape))
        return refs


def read_toy_model(path, code):
    """{"op", "shape", "pad"} from a toy model source or compiled bundle."""
    try:
        with open(path) as src:
            model = json.load(src)
        op, shape, pad = model["op"], model["shape"], model.get("pad", 0)
        if op not in ("add", "identity") or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError("op %r shape %r" % (op, shape))
        if not isinstance(pad, int) or pad < 0 or (pad and len(shape) < 2):
            raise ValueError("pad %r needs a non-negative integer and rank 2 or more" % (pad,))
        return {"op": op, "shape": list(shape), "pad": pad}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise Fail(code, "%s is not a toy model: %s" % (path, err))


def connect(argv):
    fd = path = None
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag in ("--ipc-fd", "--socket", "--sandbox-read", "--sandbox-write"):
            if not args:
                sys.exit("%s needs a value" % flag)
            value = args.pop(0)
            if flag == "--ipc-fd":
                fd = int(value)
            elif flag == "--socket":
                path = value
        elif flag != "--no-sandbox":
            sys.exit("unknown argument %r" % flag)
    if fd is not None:
        return socket.socket(fileno=fd)
    if path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock
    sys.exit("usage: protocol_peer.py --ipc-fd N | --socket PATH")


def main(argv):
    version = PROTOCOL
    announced = os.environ.get("COREML_PEER_PROTOCOL")
    if announced:
        major, minor = announced.split(".")
        version = (int(major), int(minor))
    peer = Peer(Connection(connect(argv)), version)
    peer.handshake()
    return peer.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
