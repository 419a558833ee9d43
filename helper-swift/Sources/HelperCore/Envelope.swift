// The message envelope: `[tag, request_id, payload]` as one MessagePack array.
//
// Example:
//   let body = Envelope(requestId: 7, message: .ping(Ping(nonce: 42))).encode()
//   let env = try Envelope.decode(body)     // env.message == .ping(Ping(nonce: 42))

/// Wire tag of each message; values never change (ipc-schema/src/message.rs).
public enum Tag: UInt64, CaseIterable, Sendable {
    case hello = 1, ping = 2, pong = 3, shutdown = 4, shutdownAck = 5, error = 6, welcome = 7
    case attachRegion = 10, regionAttached = 11, detachRegion = 12, regionDetached = 13
    case compile = 20, compiled = 21, load = 22, loaded = 23, unload = 24, unloaded = 25
    case getComputePlan = 26, computePlan = 27
    case predict = 30, predicted = 31, inputsReleased = 32
    case getStats = 40, stats = 41

    /// The message name as in docs/protocol.md (`ShutdownAck`, `GetComputePlan`, ...).
    public var name: String {
        let s = String(describing: self)
        return s.prefix(1).uppercased() + s.dropFirst()
    }
}

/// Every v2 message.
public enum Message: Hashable, Sendable {
    case hello(Hello)
    case ping(Ping)
    case pong(Pong)
    case shutdown
    case shutdownAck
    case error(ErrorReply)
    case welcome(Welcome)
    case attachRegion(AttachRegion)
    case regionAttached(RegionId)
    case detachRegion(RegionId)
    case regionDetached(RegionId)
    case compile(Compile)
    case compiled(Compiled)
    case load(Load)
    case loaded(Loaded)
    case unload(ModelId)
    case unloaded(ModelId)
    case getComputePlan(ModelId)
    case computePlan(ComputePlan)
    case predict(Predict)
    case predicted(Predicted)
    case inputsReleased(ModelId)
    case getStats
    case stats(Stats)

    public var tag: Tag {
        switch self {
        case .hello: return .hello
        case .ping: return .ping
        case .pong: return .pong
        case .shutdown: return .shutdown
        case .shutdownAck: return .shutdownAck
        case .error: return .error
        case .welcome: return .welcome
        case .attachRegion: return .attachRegion
        case .regionAttached: return .regionAttached
        case .detachRegion: return .detachRegion
        case .regionDetached: return .regionDetached
        case .compile: return .compile
        case .compiled: return .compiled
        case .load: return .load
        case .loaded: return .loaded
        case .unload: return .unload
        case .unloaded: return .unloaded
        case .getComputePlan: return .getComputePlan
        case .computePlan: return .computePlan
        case .predict: return .predict
        case .predicted: return .predicted
        case .inputsReleased: return .inputsReleased
        case .getStats: return .getStats
        case .stats: return .stats
        }
    }

    public var payload: MsgPackValue {
        switch self {
        case .hello(let p): return p.wire
        case .ping(let p), .pong(let p): return p.wire
        case .shutdown, .shutdownAck, .getStats: return Empty().wire
        case .error(let p): return p.wire
        case .welcome(let p): return p.wire
        case .attachRegion(let p): return p.wire
        case .regionAttached(let p), .detachRegion(let p), .regionDetached(let p): return p.wire
        case .compile(let p): return p.wire
        case .compiled(let p): return p.wire
        case .load(let p): return p.wire
        case .loaded(let p): return p.wire
        case .unload(let p), .unloaded(let p), .getComputePlan(let p), .inputsReleased(let p): return p.wire
        case .computePlan(let p): return p.wire
        case .predict(let p): return p.wire
        case .predicted(let p): return p.wire
        case .stats(let p): return p.wire
        }
    }

    public init(tag: Tag, payload v: MsgPackValue) throws {
        switch tag {
        case .hello: self = .hello(try Hello(wire: v))
        case .ping: self = .ping(try Ping(wire: v))
        case .pong: self = .pong(try Pong(wire: v))
        case .shutdown: _ = try Empty(wire: v); self = .shutdown
        case .shutdownAck: _ = try Empty(wire: v); self = .shutdownAck
        case .error: self = .error(try ErrorReply(wire: v))
        case .welcome: self = .welcome(try Welcome(wire: v))
        case .attachRegion: self = .attachRegion(try AttachRegion(wire: v))
        case .regionAttached: self = .regionAttached(try RegionId(wire: v))
        case .detachRegion: self = .detachRegion(try RegionId(wire: v))
        case .regionDetached: self = .regionDetached(try RegionId(wire: v))
        case .compile: self = .compile(try Compile(wire: v))
        case .compiled: self = .compiled(try Compiled(wire: v))
        case .load: self = .load(try Load(wire: v))
        case .loaded: self = .loaded(try Loaded(wire: v))
        case .unload: self = .unload(try ModelId(wire: v))
        case .unloaded: self = .unloaded(try ModelId(wire: v))
        case .getComputePlan: self = .getComputePlan(try ModelId(wire: v))
        case .computePlan: self = .computePlan(try ComputePlan(wire: v))
        case .predict: self = .predict(try Predict(wire: v))
        case .predicted: self = .predicted(try Predicted(wire: v))
        case .inputsReleased: self = .inputsReleased(try ModelId(wire: v))
        case .getStats: _ = try Empty(wire: v); self = .getStats
        case .stats: self = .stats(try Stats(wire: v))
        }
    }
}

/// Why a frame body is not a message.
public enum EnvelopeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not MessagePack, or not a 3-element array starting with two unsigned integers.
    case malformed(String)
    /// A tag this version does not know; the request id is kept for the error reply.
    case unknownTag(tag: UInt64, requestId: UInt64)
    /// The payload does not match the tag's schema.
    case payload(tag: Tag, requestId: UInt64, reason: String)

    public var requestId: UInt64? {
        switch self {
        case .malformed: return nil
        case .unknownTag(_, let r), .payload(_, let r, _): return r
        }
    }

    public var description: String {
        switch self {
        case .malformed(let m): return "malformed envelope: \(m)"
        case .unknownTag(let t, let r): return "unknown message tag \(t) (request \(r))"
        case .payload(let t, let r, let why): return "bad \(t.name) payload (request \(r)): \(why)"
        }
    }
}

public struct Envelope: Hashable, Sendable {
    public var requestId: UInt64
    public var message: Message

    public init(requestId: UInt64, message: Message) {
        self.requestId = requestId
        self.message = message
    }

    public var value: MsgPackValue { .array([.uint(message.tag.rawValue), .uint(requestId), message.payload]) }

    public func encode() -> [UInt8] { MsgPackWriter.encode(value) }

    /// Decodes a frame body. Once tag and request id are read, a bad payload (even one that
    /// is not MessagePack) is reported with the request id, so it can be answered.
    public static func decode(_ body: [UInt8]) throws -> Envelope {
        // docs/protocol.md: nesting deeper than 16 levels (payload = level 0) is rejected.
        var r = MsgPackReader(body, maxDepth: ProtocolVersion.maxPayloadDepth)
        let tagValue: MsgPackValue, idValue: MsgPackValue
        do {
            let n = try r.readArrayHeader()
            guard n == 3 else { throw EnvelopeError.malformed("array of \(n) elements, expected 3") }
            tagValue = try r.readValue()
            idValue = try r.readValue()
        } catch let e as MsgPackError {
            throw EnvelopeError.malformed("\(e)")
        }
        guard case .uint(let rawTag) = tagValue else { throw EnvelopeError.malformed("tag is \(tagValue.kind)") }
        guard case .uint(let requestId) = idValue else { throw EnvelopeError.malformed("request id is \(idValue.kind)") }
        guard let tag = Tag(rawValue: rawTag) else { throw EnvelopeError.unknownTag(tag: rawTag, requestId: requestId) }
        let payload: MsgPackValue
        do {
            payload = try r.readValue()
            if r.remaining != 0 { throw MsgPackError.trailingBytes(count: r.remaining) }
        } catch let e as MsgPackError {
            throw EnvelopeError.payload(tag: tag, requestId: requestId, reason: "\(e)")
        }
        do {
            return Envelope(requestId: requestId, message: try Message(tag: tag, payload: payload))
        } catch let e as WireError {
            throw EnvelopeError.payload(tag: tag, requestId: requestId, reason: "\(e)")
        }
    }

    public static func decode(value v: MsgPackValue) throws -> Envelope {
        guard case .array(let a) = v else { throw EnvelopeError.malformed("expected an array, got \(v.kind)") }
        guard a.count == 3 else { throw EnvelopeError.malformed("array of \(a.count) elements, expected 3") }
        guard case .uint(let rawTag) = a[0] else { throw EnvelopeError.malformed("tag is \(a[0].kind)") }
        guard case .uint(let requestId) = a[1] else { throw EnvelopeError.malformed("request id is \(a[1].kind)") }
        guard let tag = Tag(rawValue: rawTag) else { throw EnvelopeError.unknownTag(tag: rawTag, requestId: requestId) }
        do {
            return Envelope(requestId: requestId, message: try Message(tag: tag, payload: a[2]))
        } catch let e as WireError {
            throw EnvelopeError.payload(tag: tag, requestId: requestId, reason: "\(e)")
        }
    }
}
